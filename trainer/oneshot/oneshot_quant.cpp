#include "trainer/oneshot/oneshot_quant.h"

#include <omp.h>

#include <algorithm>

#include <fmt/format.h>

#include "base/errors.h"
#include "trainer/oneshot/activation_scales.h"
#include "trainer/oneshot/block_sequential.h"
#include "trainer/oneshot/rtn.h"
#include "trainer/quant/quant_format.h"

namespace kd::oneshot {

QuantMethod parse_quant_method(const std::string& text, const std::string& key) {
  if (text == "rtn") return QuantMethod::rtn;
  if (text == "gptq") return QuantMethod::gptq;
  if (text == "awq") return QuantMethod::awq;
  if (text == "smoothquant") return QuantMethod::smoothquant;
  if (text == "sparsegpt") return QuantMethod::sparsegpt;
  throw InputError(fmt::format("{}: '{}' is not a method: rtn | gptq | awq | smoothquant | sparsegpt", key, text));
}

const char* method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::rtn: return "rtn";
    case QuantMethod::gptq: return "gptq";
    case QuantMethod::awq: return "awq";
    case QuantMethod::smoothquant: return "smoothquant";
    case QuantMethod::sparsegpt: return "sparsegpt";
  }
  return "?";
}

void check_method_for_plan(const OneshotQuantOptions& o, const quant::QuantPlan& plan) {
  const char* m = method_name(o.method);
  if (o.method == QuantMethod::gptq || o.method == QuantMethod::awq || o.method == QuantMethod::sparsegpt) {
    for (const quant::WeightPlan& w : plan.weights) {
      if (w.module == "lm_head" || w.module == "model.embed_tokens") continue;  // the head: round to nearest
      KD_CHECK_INPUT(w.format.kind == kern::QuantKind::integer,
                     "--method {}: {} quantizes weights to integer formats; {} is {} (use --method rtn for FP8)", m,
                     m, w.module, quant::to_string(w.format));
      const bool groups = w.format.granularity == kern::QuantGranularity::group;
      KD_CHECK_INPUT(!(o.method == QuantMethod::gptq && o.obs.act_order && groups && !o.obs.static_groups),
                     "--act-order with {} ({}) needs --static-groups: a quantized checkpoint keeps one group per {} "
                     "consecutive inputs, not a group index per column", quant::to_string(w.format), w.module,
                     w.format.group);
    }
  }
  if (o.method == QuantMethod::smoothquant) {
    const bool any_static = std::any_of(plan.inputs.begin(), plan.inputs.end(), [](const quant::InputPlan& i) {
      return i.format.granularity == kern::QuantGranularity::tensor;
    });
    KD_CHECK_INPUT(any_static, "--method smoothquant: the activation format has no static per-tensor scales (e.g. "
                               "--activation int8:tensor), which is what SmoothQuant eases; with per-token or no "
                               "activation quantization use --method rtn, gptq or awq");
  }
}

namespace {

const quant::WeightPlan* plan_of(const quant::QuantPlan& plan, const std::string& module) {
  for (const quant::WeightPlan& w : plan.weights) {
    if (w.module == module) return &w;
  }
  return nullptr;
}

class MethodCompressor final : public SiteCompressor {
 public:
  MethodCompressor(const OneshotQuantOptions& o, const quant::QuantPlan& plan, const LlamaLayout& lay,
                   const ParamTable& table, OneshotReport& rep)
      : o_(o), plan_(plan), lay_(lay), table_(table), rep_(rep) {}

  void compress(const Site& site, const InputStats& stats, float* params) override {
    switch (o_.method) {
      case QuantMethod::gptq: gptq_site(site, stats, params); break;
      case QuantMethod::awq: awq_site(site, stats, params); break;
      case QuantMethod::smoothquant: smooth_site(site, stats, params); break;
      case QuantMethod::sparsegpt: sparsegpt_site(site, stats, params); break;
      case QuantMethod::rtn: break;
    }
  }

 private:
  struct Linear {
    std::string module;
    float* w;
    int rows, cols;
    const quant::WeightPlan* plan;  // null: not quantized
  };
  std::vector<Linear> linears(const Site& site, float* params) const {
    std::vector<Linear> out;
    for (const std::string& m : site.modules) {
      const auto& t = table_.at(m + ".weight");
      out.push_back({m, params + t.offset, int(t.shape[0]), int(t.shape[1]), plan_of(plan_, m)});
    }
    return out;
  }

  void gptq_site(const Site& site, const InputStats& stats, float* params) {
    const std::vector<double> h = stats.hessian();
    for (const Linear& l : linears(site, params)) {
      if (!l.plan) continue;
      const std::uint8_t* keep = o_.keep ? o_.keep + (l.w - params) : nullptr;
      CompressedWeight c = gptq(l.w, l.rows, l.cols, h, l.plan->format, o_.obs, l.module, rep_.notes, keep);
      std::copy(c.w.begin(), c.w.end(), l.w);
      rep_.scales[l.module + ".weight"] = {std::move(c.scale), std::move(c.zero)};
    }
  }

  // every linear of the site pruned; the planned ones quantized in the same pass
  void sparsegpt_site(const Site& site, const InputStats& stats, float* params) {
    const std::vector<double> h = stats.hessian();
    for (const Linear& l : linears(site, params)) {
      check_sparsity_for(o_.sparsity, l.cols, l.module, o_.sparsity.nm() ? "--nm" : "--sparsity");
      CompressedWeight c = sparsegpt(l.w, l.rows, l.cols, h, o_.sparsity, l.plan ? l.plan->format : kern::QuantFormat{},
                                     o_.obs, l.module, rep_.notes);
      std::copy(c.w.begin(), c.w.end(), l.w);
      if (l.plan) rep_.scales[l.module + ".weight"] = {std::move(c.scale), std::move(c.zero)};
      rep_.masks[l.module + ".weight"] = std::move(c.mask);
    }
  }

  // diag(s)⁻¹ into what produces the site's input: the norm in front, or the producer's rows
  bool fold_into_producer(const Site& site, const std::vector<double>& s, float* params) {
    if (!site.norm.empty()) {
      float* g = params + table_.at(site.norm).offset;
      for (std::size_t j = 0; j < s.size(); ++j) g[j] = float(double(g[j]) / s[j]);
      return true;
    }
    const ModelSpec& spec = lay_.spec();
    if (site.input == LinearInput::o && spec.n_kv_heads != spec.n_heads) return false;  // grouped KV heads
    const auto& t = table_.at(site.producer + ".weight");
    float* w = params + t.offset;
    const int cols = int(t.shape[1]);
    for (std::size_t r = 0; r < s.size(); ++r) {
      for (int j = 0; j < cols; ++j) w[r * cols + j] = float(double(w[r * cols + j]) / s[r]);
    }
    return true;
  }

  void scale_columns(const Linear& l, const std::vector<double>& s) {
    for (int r = 0; r < l.rows; ++r) {
      for (int j = 0; j < l.cols; ++j) l.w[std::size_t(r) * l.cols + j] = float(double(l.w[std::size_t(r) * l.cols + j]) * s[j]);
    }
  }

  void awq_site(const Site& site, const InputStats& stats, float* params) {
    const std::vector<Linear> ls = linears(site, params);
    std::vector<GroupWeight> group;
    for (const Linear& l : ls) {
      if (l.plan) group.push_back({l.w, l.rows, l.plan->format});
    }
    if (!group.empty()) {
      const ModelSpec& spec = lay_.spec();
      if (site.input == LinearInput::o && spec.n_kv_heads != spec.n_heads) {
        rep_.notes.push_back(fmt::format("{}: no AWQ scales (v_proj feeds grouped query heads: {} KV heads for {} "
                                         "query heads, so no per-channel scale folds into it)", site.modules[0],
                                         spec.n_kv_heads, spec.n_heads));
      } else {
        const AwqScales a = awq_search(group, ls[0].cols, stats);
        KD_ASSERT(fold_into_producer(site, a.scales, params), "AWQ fold at {}", site.modules[0]);
        for (const Linear& l : ls) scale_columns(l, a.scales);  // every reader of the input, quantized or not
        if (o_.clip) {
          for (const Linear& l : ls) {
            if (!l.plan) continue;
            std::vector<double> ws(l.w, l.w + std::size_t(l.rows) * l.cols);
            awq_clip(ws.data(), l.rows, l.cols, a.scales, stats, l.plan->format);
            std::copy(ws.begin(), ws.end(), l.w);
          }
        }
        rep_.awq_alphas.push_back(a.alpha);
      }
    }
    if (site.input == LinearInput::down) quantize_block(site.layer, params);
  }

  // the block's planned weights rounded to nearest in place, their scales fixed
  void quantize_block(int layer, float* params) {
    for (const Site& s : block_sites(lay_.spec(), layer)) {
      for (const Linear& l : linears(s, params)) {
        if (!l.plan) continue;
        std::vector<double> v(l.w, l.w + std::size_t(l.rows) * l.cols);
        quant::WeightScales fs;
        round_to_nearest(v.data(), l.rows, l.cols, l.plan->format, &fs.scale, &fs.zero);
        std::copy(v.begin(), v.end(), l.w);
        rep_.scales[l.module + ".weight"] = std::move(fs);
      }
    }
  }

  void smooth_site(const Site& site, const InputStats& stats, float* params) {
    if (site.norm.empty()) return;  // o and down: nothing in front to fold into (the paper smooths qkv and fc1)
    const std::vector<Linear> ls = linears(site, params);
    std::vector<GroupWeight> group;
    for (const Linear& l : ls) group.push_back({l.w, l.rows});
    const std::vector<double> s = smoothquant_scales(group, ls[0].cols, stats, o_.alpha);
    fold_into_producer(site, s, params);
    for (const Linear& l : ls) scale_columns(l, s);
  }

  const OneshotQuantOptions& o_;
  const quant::QuantPlan& plan_;
  const LlamaLayout& lay_;
  const ParamTable& table_;
  OneshotReport& rep_;
};

}  // namespace

OneshotReport quantize_oneshot(const OneshotQuantOptions& o, const quant::QuantPlan& plan, const LlamaLayout& lay,
                               const ParamTable& table, float* params, const std::vector<std::int32_t>& tokens,
                               int samples, int seq_len, int threads,
                               const std::function<void(const std::string&)>& progress) {
  OneshotReport rep;
  if (o.method == QuantMethod::rtn) return rep;
  const double t0 = omp_get_wtime();
  MethodCompressor c(o, plan, lay, table, rep);
  compress_block_sequential(lay, params, tokens, samples, seq_len, threads, c, progress);
  const std::vector<double>& al = rep.awq_alphas;
  if (!al.empty()) {
    double mean = 0;
    for (double a : al) mean += a;
    rep.notes.push_back(fmt::format("AWQ: α chosen per site from {:.2f} to {:.2f} (mean {:.2f}) over {} sites",
                                    *std::min_element(al.begin(), al.end()), *std::max_element(al.begin(), al.end()),
                                    mean / al.size(), al.size()));
  }
  rep.seconds = omp_get_wtime() - t0;
  return rep;
}

}  // namespace kd::oneshot
