#include "trainer/quant/quant_plan.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include "trainer/quant/quant_format.h"
#include "base/errors.h"

namespace kd::quant {

Target target_of(const kern::QuantFormat& f) {
  Target t;
  t.grid = common::int_grid(f.bits, f.symmetric);
  t.symmetric = f.symmetric;
  if (f.kind == kern::QuantKind::fp8_e4m3) t.fp8 = common::Fp8Format::e4m3;
  if (f.kind == kern::QuantKind::fp8_e5m2) t.fp8 = common::Fp8Format::e5m2;
  return t;
}

namespace {

struct Linear {
  std::string module;
  std::string tensor;
  int rows, cols;
  int layer;                // -1 outside the blocks
  bool reads_input;         // this linear owns an input site (q_proj, o_proj, gate_proj, down_proj, head)
  LinearInput site;
  bool optional_kind;       // head / embedding: only with quant.head / quant.embedding
};

std::vector<Linear> linears(const ModelSpec& m) {
  std::vector<Linear> out;
  const int d = m.d_model, f = m.d_ff;
  out.push_back({"model.embed_tokens", "model.embed_tokens.weight", m.vocab, d, -1, false, LinearInput::head, true});
  for (int l = 0; l < m.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    out.push_back({p + "self_attn.q_proj", "", m.q_dim(), d, l, true, LinearInput::qkv, false});
    out.push_back({p + "self_attn.k_proj", "", m.kv_dim(), d, l, false, LinearInput::qkv, false});
    out.push_back({p + "self_attn.v_proj", "", m.kv_dim(), d, l, false, LinearInput::qkv, false});
    out.push_back({p + "self_attn.o_proj", "", d, m.q_dim(), l, true, LinearInput::o, false});
    out.push_back({p + "mlp.gate_proj", "", f, d, l, true, LinearInput::gate_up, false});
    out.push_back({p + "mlp.up_proj", "", f, d, l, false, LinearInput::gate_up, false});
    out.push_back({p + "mlp.down_proj", "", d, f, l, true, LinearInput::down, false});
  }
  out.push_back({"lm_head", m.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", m.vocab, d, -1, true,
                 LinearInput::head, true});
  for (auto& L : out) {
    if (L.tensor.empty()) L.tensor = L.module + ".weight";
  }
  return out;
}

bool matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

}  // namespace

QuantPlan plan_quantization(const QuantSection& q, const ModelSpec& model, const std::string& weight_key,
                            const std::string& activation_key) {
  QuantPlan plan;
  plan.weight_calibrator = parse_calibrator(q.weight_calibrator, "quant.weight_calibrator");
  KD_CHECK_INPUT(plan.weight_calibrator == Calibrator::minmax || plan.weight_calibrator == Calibrator::mse,
                 "quant.weight_calibrator is '{}': weights are observed whole each time, so minmax or mse",
                 q.weight_calibrator);
  plan.observer.kind = parse_calibrator(q.activation_calibrator, "quant.activation_calibrator");
  plan.observer.averaging_constant = q.averaging_constant;
  plan.observer.percentile = q.percentile;
  plan.observer.bins = q.histogram_bins;
  plan.observer.validate("quant");
  plan.learn_scales = q.learn_scales;
  plan.fake_quant_start = q.fake_quant_start;
  plan.freeze_observers = q.freeze_observers;

  const kern::QuantFormat base_w = parse_format(q.weight, weight_key);
  const kern::QuantFormat base_a = parse_format(q.activation, activation_key);
  struct Rule {
    std::string pattern;
    bool has_w, has_a;
    kern::QuantFormat w, a;
    bool used = false;
  };
  std::vector<Rule> rules;
  for (const auto& [pattern, o] : q.overrides) {
    const std::string key = "quant.overrides." + pattern;
    Rule r{pattern, !o.weight.empty(), !o.activation.empty(), {}, {}};
    if (r.has_w) r.w = parse_format(o.weight, key + ".weight");
    if (r.has_a) r.a = parse_format(o.activation, key + ".activation");
    rules.push_back(r);
  }

  bool tied_head_done = false;
  for (const Linear& L : linears(model)) {
    kern::QuantFormat w = base_w, a = base_a;
    std::string wkey = weight_key, akey = activation_key;
    bool enabled = !L.optional_kind || (L.module == "lm_head" ? q.head : q.embedding);
    for (Rule& r : rules) {
      if (!matches(r.pattern, L.module)) continue;
      if (L.optional_kind && !enabled &&
          r.pattern.find(L.module == "lm_head" ? "lm_head" : "embed_tokens") == std::string::npos) {
        continue;  // "*" does not opt the head / embedding in
      }
      r.used = true;
      if (r.has_w) w = r.w, wkey = "quant.overrides." + r.pattern + ".weight";
      if (r.has_a) a = r.a, akey = "quant.overrides." + r.pattern + ".activation";
      // a rule naming the head / embedding itself opts it in ("*" alone does not)
      if (r.pattern.find(L.module == "lm_head" ? "lm_head" : "embed_tokens") != std::string::npos) enabled = true;
      break;
    }
    if (!enabled && L.optional_kind) continue;
    if (L.module == "model.embed_tokens") a = {};  // an embedding reads token ids, not activations
    if (w.enabled()) {
      // a tied head is the embedding: one weight, quantized once
      const bool dup = model.tie_embeddings && (L.module == "lm_head" || L.module == "model.embed_tokens");
      if (!(dup && tied_head_done)) {
        check_format_for(w, true, L.cols, L.module, wkey);
        KD_CHECK_INPUT(!(q.learn_scales && w.is_fp8()), "{}: quant.learn_scales (LSQ) needs integer formats, got '{}'",
                       wkey, to_string(w));
        plan.weights.push_back({L.module, L.tensor, L.rows, L.cols, w});
        if (dup) tied_head_done = true;
      }
    }
    if (L.reads_input && a.enabled()) {
      check_format_for(a, false, L.cols, L.module, akey);
      KD_CHECK_INPUT(!(q.learn_scales && a.is_fp8()), "{}: quant.learn_scales (LSQ) needs integer formats, got '{}'",
                     akey, to_string(a));
      plan.inputs.push_back({L.module, L.layer, L.site, L.cols, a});
    }
  }
  for (const Rule& r : rules) {
    KD_CHECK_INPUT(r.used, "quant.overrides.{}: the pattern matches no layer of the model (layers are named like "
                   "model.layers.0.self_attn.q_proj, model.layers.0.mlp.down_proj, lm_head, model.embed_tokens)",
                   r.pattern);
  }
  return plan;
}

}  // namespace kd::quant
