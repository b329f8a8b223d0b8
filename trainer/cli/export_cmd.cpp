// kdtrain export --compact: a structured-pruned checkpoint written physically smaller
// (pruned KV groups and FFN neurons cut out, shapes and config updated).
// kdtrain export --format hf: the model as a Hugging Face directory (trainer/interop).
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/interop/gguf.h"
#include "trainer/interop/hf_model.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/prune/compact.h"
#include "trainer/setup/model_loader.h"
#include "base/errors.h"

namespace kd::cli {

namespace {

int export_hf(const ExportOptions& o) {
  KD_CHECK_INPUT(!o.compact, "export: --format hf exports the checkpoint as it is; run --compact first, into its own "
                 "checkpoint, then export that");
  const auto model = load_model(o.checkpoint);
  const data::BpeTokenizer* tok = model->tokenizer ? &*model->tokenizer : nullptr;
  std::optional<interop::QuantTensors> quant;
  if (model->quantized) quant = interop::quant_tensors(*model->quantized);
  // the directory is written whole under a temporary name beside it, then put in place of
  // --out: a failure leaves --out as it was
  namespace fs = std::filesystem;
  fs::path out = fs::path(o.out).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "dir/"
  const fs::path tmp = out.string() + ".tmp", old = out.string() + ".old";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    interop::write_hf_model(tmp.string(), model->config.model, model->table, model->params.data(), tok,
                            quant ? &*quant : nullptr);
  } catch (...) {
    fs::remove_all(tmp, ec);  // nothing half-written left beside --out
    throw;
  }
  fs::remove_all(old, ec);
  if (fs::exists(fs::symlink_status(out))) fs::rename(out, old);  // --overwrite, or an empty directory
  fs::rename(tmp, out);
  fs::remove_all(old, ec);
  fmt::print("export --format hf: {} -> {}/ (config.json, model.safetensors: {} tensors, {} parameters, float32{}{})\n",
             o.checkpoint, o.out, model->table.tensors().size(), model->table.total(),
             quant ? fmt::format("; quantized: weights dequantized, {} quantization tensors beside them",
                                 quant->tensors.size())
                   : "",
             tok ? fmt::format("; tokenizer.json, tokenizer_config.json: {} tokens", tok->vocab_size()) : "");
  return 0;
}

int export_gguf(const ExportOptions& o) {
  KD_CHECK_INPUT(!o.compact, "export: --format gguf exports the checkpoint as it is; run --compact first, into its "
                 "own checkpoint, then export that");
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(model->tokenizer.has_value(), "export --format gguf: {} holds no tokenizer, and llama.cpp needs one "
                 "(train on shards from kdtrain prepare, or import a model with its tokenizer.json)", o.checkpoint);
  const interop::GgufType type = interop::parse_gguf_type(
      o.gguf_type.empty() ? (model->quantized ? "q8_0" : "f16") : o.gguf_type, "--gguf-type");
  const int context = o.context_length > 0 ? o.context_length : model->config.train.seq_len;
  const std::string name = std::filesystem::path(o.checkpoint).stem().string();
  const interop::GgufSummary s = interop::write_gguf(o.out, model->config.model, model->table, model->params.data(),
                                                     *model->tokenizer, type, context, name);
  fmt::print("export --format gguf: {} -> {} ({} tensors, {} metadata keys, {} bytes{})\n", o.checkpoint, o.out,
             s.tensors, s.metadata_keys, s.bytes,
             type == interop::GgufType::q8_0
                 ? fmt::format("; matrices: {} in Q8_0, {} in F16 (rows not a multiple of 32); largest Q8_0 error "
                               "{:.3g} of a block's max",
                               s.q8_tensors, s.f16_fallbacks, s.q8_max_rel_error)
                 : "");
  return 0;
}

}  // namespace

int run_export(const ExportOptions& o) {
  refuse_input_as_output("export", o.out, {o.checkpoint}, o.format == "hf");
  refuse_existing_output("export", o.out, o.overwrite);
  if (o.format == "hf") return export_hf(o);
  if (o.format == "gguf") return export_gguf(o);
  KD_CHECK_INPUT(o.gguf_type.empty() && o.context_length == 0, "export: --gguf-type and --context-length go with "
                 "--format gguf");
  KD_CHECK_INPUT(o.compact, "export: give --compact (a structured-pruned checkpoint made smaller), --format hf or "
                 "--format gguf");
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(!model->quantized, "export --compact: {} is quantized; compact the float checkpoint, then run ptq",
                 o.checkpoint);
  ckpt::CheckpointReader r(o.checkpoint);
  const prune::Mask mask = load_mask(r, *model);
  const prune::Compacted c = prune::compact(*model->layout, model->params.data(), mask);
  KD_CHECK_INPUT(c.removed_layers > 0 || c.removed_kv_groups > 0 || c.removed_neurons > 0,
                 "export --compact: {} has no whole block, KV group or FFN neuron pruned, so nothing can be cut out "
                 "(unstructured and N:M sparsity keep the shapes; prune with criterion layers, heads or neurons)",
                 o.checkpoint);
  Config cfg = model->config;
  cfg.model = c.spec;
  cfg.has_prune = false;  // the pruned structures are gone
  ckpt::CheckpointContents out = derived_checkpoint(r, "compact", cfg, model->step);
  for (const auto& t : c.table.tensors()) out.tensors["model"].push_back({t.name, t.shape, c.params.data() + t.offset});
  ckpt::write_checkpoint(o.out, out);
  fmt::print("export --compact: {} -> {}\n  removed: {} of {} blocks; per block {} of {} KV groups ({} query heads), "
             "{} of {} FFN neurons\n"
             "  shape: n_layers {} n_heads {} n_kv_heads {} head_dim {} d_ff {} | parameters {} -> {} ({:.1f}%)\n",
             o.checkpoint, o.out, c.removed_layers, model->config.model.n_layers, c.removed_kv_groups,
             model->config.model.n_kv_heads,
             c.removed_kv_groups * model->config.model.n_heads / model->config.model.n_kv_heads, c.removed_neurons,
             model->config.model.d_ff, c.spec.n_layers, c.spec.n_heads, c.spec.n_kv_heads, c.spec.head_dim(), c.spec.d_ff,
             model->table.total(), c.table.total(), 100.0 * double(c.table.total()) / double(model->table.total()));
  return 0;
}

}  // namespace kd::cli
