// `kdtrain import-hf DIR --out CKPT`: a Hugging Face Llama directory (trainer/interop) as a
// kdtrain checkpoint, usable as teacher.checkpoint or train.init_from.
#include <filesystem>

#include <fmt/format.h>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/config/config.h"
#include "trainer/interop/hf_model.h"

namespace kd::cli {

int run_import_hf(const ImportHfOptions& o) {
  refuse_input_as_output("import-hf", o.out, {o.dir});
  refuse_existing_output("import-hf", o.out, o.overwrite);
  const interop::HfModel m = interop::read_hf_model(o.dir);
  Config cfg;
  cfg.model = m.spec;
  ckpt::CheckpointContents c;
  c.kind = "import-hf";
  c.config_yaml = config_to_yaml(cfg);
  c.provenance = {{"imported_from", std::filesystem::absolute(o.dir).string()}};
  c.state = {{"step", 0}};
  if (m.tokenizer) c.tokenizer_json = m.tokenizer->to_json_text();
  for (const auto& t : m.table.tensors()) c.tensors["model"].push_back({t.name, t.shape, m.params.data() + t.offset});
  ckpt::write_checkpoint(o.out, c);
  fmt::print("import-hf: {} -> {}\n  Llama: vocab {} d_model {} n_layers {} n_heads {} n_kv_heads {} head_dim {} "
             "d_ff {} tie_embeddings {} rope_theta {} rms_norm_eps {}; {} parameters\n", o.dir, o.out, m.spec.vocab,
             m.spec.d_model, m.spec.n_layers, m.spec.n_heads, m.spec.n_kv_heads, m.spec.head_dim(), m.spec.d_ff,
             m.spec.tie_embeddings, m.spec.rope_theta, m.spec.norm_eps, m.table.total());
  if (m.spec.rope_scaling.factor > 0) {
    fmt::print("  RoPE: llama3 scaling, factor {} low_freq_factor {} high_freq_factor {} original context {}\n",
               m.spec.rope_scaling.factor, m.spec.rope_scaling.low_freq_factor, m.spec.rope_scaling.high_freq_factor,
               m.spec.rope_scaling.original_context);
  }
  if (m.skipped_quant_tensors > 0)
    fmt::print("  a kdtrain quantized export: imported as its dequantized weights; its {} quantization tensors are "
               "not imported (run kdtrain ptq again to quantize)\n", m.skipped_quant_tensors);
  if (m.tokenizer) {
    fmt::print("  tokenizer.json: {} tokens, {} merges, end of text id {}{}\n", m.tokenizer->vocab_size(),
               m.tokenizer->merges().size(), m.tokenizer->eot_id(),
               m.tokenizer->bos_id() >= 0 ? fmt::format(", each text starts with id {}", m.tokenizer->bos_id()) : "");
  } else {
    fmt::print("  no tokenizer.json: the checkpoint has no tokenizer\n");
  }
  return 0;
}

}  // namespace kd::cli
