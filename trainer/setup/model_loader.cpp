#include "trainer/setup/model_loader.h"

#include <algorithm>

#include "trainer/quant/quant_plan.h"
#include "base/errors.h"

namespace kd {

prune::Mask load_mask(const ckpt::CheckpointReader& r, const LoadedModel& model) {
  std::vector<std::uint8_t> keep(model.table.total(), 1);
  const bool has_masks = !r.tensor_names("masks").empty();
  for (const auto& t : model.table.tensors()) {
    if (!t.has(kPrunable)) continue;
    if (has_masks) {
      r.read_typed("masks", t.name, t.shape, ckpt::DType::u8, keep.data() + t.offset);
    } else {
      for (std::size_t i = t.offset; i < t.offset + t.numel; ++i) keep[i] = model.params[i] != 0.0f;
    }
  }
  return prune::Mask::from_bytes(std::move(keep), r.path() + ": masks");
}

void read_tensors(const ckpt::CheckpointReader& r, const std::string& group, const ParamTable& table,
                  float* dst, std::uint32_t skip_flags) {
  r.expect_only(group, table.names(), "the config's model");
  for (const auto& t : table.tensors()) {
    if ((t.flags & skip_flags) != 0) continue;
    r.read(group, t.name, t.shape, dst + t.offset);
  }
}

void check_teacher_vocab(int model_vocab, int teacher_vocab, std::int64_t tokenizer_vocab,
                         const std::string& teacher_path) {
  if (model_vocab == teacher_vocab) return;
  KD_CHECK_INPUT(tokenizer_vocab > 0 && tokenizer_vocab <= std::min(model_vocab, teacher_vocab),
                 "teacher {} has a vocabulary of {} tokens but model.vocab is {}: the divergence compares "
                 "distributions over the same tokens (sizes may differ only by padding rows beyond the "
                 "tokenizer's {} tokens)",
                 teacher_path, teacher_vocab, model_vocab,
                 tokenizer_vocab > 0 ? std::to_string(tokenizer_vocab) : std::string("(unknown)"));
}

ckpt::CheckpointContents derived_checkpoint(const ckpt::CheckpointReader& source, std::string kind,
                                            const Config& config, std::int64_t step) {
  ckpt::CheckpointContents c;
  c.kind = std::move(kind);
  c.config_yaml = config_to_yaml(config);
  c.tokenizer_json = source.tokenizer_json();
  c.metrics_jsonl = source.metrics_jsonl();
  c.provenance = source.provenance();
  c.state = {{"step", step}};
  return c;
}

std::unique_ptr<LoadedModel> load_model(const std::string& path, bool weights) {
  auto m = std::make_unique<LoadedModel>();
  m->path = path;
  ckpt::CheckpointReader r(path);
  try {
    m->config = load_config_text(r.config_yaml(), path + ":/config");
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: the stored config does not load: {}", path, e.what()));
  }
  const std::string tok = r.tokenizer_json();
  if (!tok.empty()) m->tokenizer = data::BpeTokenizer::from_json_text(tok, path + ":/tokenizer");
  m->provenance = r.provenance();
  m->step = r.has_state("step") ? r.state("step") : 0;
  m->layout = std::make_unique<LlamaLayout>(m->config.model, m->table);
  if (!weights) return m;
  m->params.resize(m->table.total(), "the checkpoint's parameters");
  if (r.kind() != "quantized") {
    read_tensors(r, "model", m->table, m->params.data());
    return m;
  }
  // quantized: float tensors in "model", the rest as codes in "quantized"
  KD_CHECK_INPUT(m->config.has_quant, "{}: a quantized checkpoint without a quant section in its config", path);
  r.expect_only("model", m->table.names(), "the config's model");
  const quant::QuantPlan plan = quant::plan_quantization(m->config.quant, m->config.model);
  m->quantized = std::make_unique<quant::QuantizedModel>(quant::read_quantized(r, plan));
  for (const auto& t : m->table.tensors()) {
    if (const auto* q = m->quantized->weight(t.name)) {
      q->dequantize(m->params.data() + t.offset);
    } else {
      r.read("model", t.name, t.shape, m->params.data() + t.offset);
    }
  }
  return m;
}

}  // namespace kd
