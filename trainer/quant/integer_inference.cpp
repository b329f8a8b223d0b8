#include "trainer/quant/integer_inference.h"

#include <fmt/format.h>

#include "kernels/common/quant_math.h"
#include "base/errors.h"

namespace kd::quant {

enum class Path { integer, weight_only, simulated };

struct IntegerInference::Fused {
  int layer = -1;
  LinearInput site = LinearInput::head;
  std::string name;
  Path path = Path::simulated;
  std::string why;                  // simulated: the reason
  bool has_input = false;
  kern::QuantFormat in_format;      // the input quantizer (if any)
  float in_scale = 1.0f;
  std::int32_t in_zero = 0;         // on the format's grid
  // the fused weight: codes / scales / zeros concatenated over the fused tensors
  std::vector<std::int8_t> q8;
  std::vector<std::uint8_t> q4;
  std::vector<float> scale;
  std::vector<std::int32_t> zero;
  kern::QuantWeight stored;
  kern::PreparedWeight prepared;
};

namespace {

bool int_input_ok(const kern::QuantFormat& f) {
  if (f.kind != kern::QuantKind::integer) return false;
  if (f.granularity == kern::QuantGranularity::token) return f.symmetric;  // one zero point per GEMM
  return f.granularity == kern::QuantGranularity::tensor;
}

std::string fused_name(int layer, LinearInput s) {
  switch (s) {
    case LinearInput::qkv: return fmt::format("model.layers.{}.self_attn.qkv", layer);
    case LinearInput::o: return fmt::format("model.layers.{}.self_attn.o_proj", layer);
    case LinearInput::gate_up: return fmt::format("model.layers.{}.mlp.gate_up", layer);
    case LinearInput::down: return fmt::format("model.layers.{}.mlp.down_proj", layer);
    case LinearInput::head: return "lm_head";
  }
  return "?";
}

}  // namespace

IntegerInference::IntegerInference(const QuantizedModel& m, const ModelSpec& spec) {
  auto build = [&](int layer, LinearInput site, std::vector<std::string> tensors) {
    auto f = std::make_unique<Fused>();
    f->layer = layer;
    f->site = site;
    f->name = fused_name(layer, site);
    for (const auto& in : m.inputs) {
      if (in.plan.layer == layer && in.plan.site == site) {
        f->has_input = true;
        f->in_format = in.plan.format;
        f->in_scale = in.scale;
        f->in_zero = in.zero;
      }
    }
    std::vector<const QuantizedTensor*> ws;
    for (const auto& t : tensors) ws.push_back(m.weight(t));
    bool all = true, none = true;
    for (auto* w : ws) (w ? none : all) = false;
    if (none) {
      // float weights: only the input may be quantized (simulated by forward())
      if (!f->has_input) return;
      f->why = "float weights";
    } else if (!all) {
      f->why = "fused tensors quantized differently";
    } else {
      const kern::QuantFormat wf = ws[0]->plan.format;
      bool same = true;
      for (auto* w : ws) {
        const auto& g = w->plan.format;
        same = same && g.kind == wf.kind && g.bits == wf.bits && g.symmetric == wf.symmetric &&
               g.granularity == wf.granularity && g.group == wf.group;
      }
      if (!same) {
        f->why = "fused tensors quantized differently";
      } else if (wf.kind != kern::QuantKind::integer) {
        f->why = "fp8 weights (no fp8 arithmetic on this CPU)";
      } else if (f->has_input && !int_input_ok(f->in_format)) {
        f->why = f->in_format.is_fp8() ? "fp8 inputs (no fp8 arithmetic on this CPU)" : "asymmetric per-token inputs";
      } else {
        f->path = f->has_input ? Path::integer : Path::weight_only;
        const int k = ws[0]->plan.cols;
        int n = 0;
        for (auto* w : ws) n += w->plan.rows;
        const bool four = wf.bits == 4;
        const int group = wf.granularity == kern::QuantGranularity::group ? wf.group : k;
        for (auto* w : ws) {
          if (four) {
            f->q4.insert(f->q4.end(), w->bytes.begin(), w->bytes.end());
          } else {
            f->q8.insert(f->q8.end(), w->codes.begin(), w->codes.end());
          }
          // per-tensor scales become per-channel ones (the kernel's coarsest granularity)
          const std::size_t per_rows = wf.granularity == kern::QuantGranularity::tensor ? std::size_t(w->plan.rows) : 1;
          for (std::size_t j = 0; j < w->scale.size(); ++j) {
            for (std::size_t rep = 0; rep < per_rows; ++rep) {
              f->scale.push_back(w->scale[j]);
              if (!w->zero.empty()) f->zero.push_back(w->zero[j]);
            }
          }
        }
        kern::QuantWeight& q = f->stored;
        q.n = n;
        q.k = k;
        q.bits = four ? 4 : 8;
        q.group = group;
        q.q8 = four ? nullptr : f->q8.data();
        q.q4 = four ? f->q4.data() : nullptr;
        q.scale = f->scale.data();
        q.zero = f->zero.empty() ? nullptr : f->zero.data();
        kern::check_weight(q);
        if (f->path == Path::integer) f->prepared = kern::prepare_weight(q);
      }
    }
    fused_.push_back(std::move(f));
  };
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    build(l, LinearInput::qkv, {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"});
    build(l, LinearInput::o, {p + "self_attn.o_proj.weight"});
    build(l, LinearInput::gate_up, {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
    build(l, LinearInput::down, {p + "mlp.down_proj.weight"});
  }
  build(-1, LinearInput::head, {spec.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"});
}

IntegerInference::~IntegerInference() = default;

IntegerInference::Fused* IntegerInference::find(int layer, LinearInput site) {
  for (auto& f : fused_) {
    if (f->layer == layer && f->site == site) return f.get();
  }
  return nullptr;
}

const float* IntegerInference::forward(int layer, LinearInput site, float* x, float* buf, int rows, int cols) {
  KD_ASSERT(buf == nullptr, "integer inference runs frozen forwards only");
  Fused* f = find(layer, site);
  if (f == nullptr || !f->has_input) return x;
  const kern::QuantFormat& fmt = f->in_format;
  if (fmt.granularity == kern::QuantGranularity::tensor) {
    kern::fake_quant_forward(x, x, &f->in_scale, &f->in_zero, fmt, rows, cols);
  } else {
    xs_.resize(std::size_t(rows));
    xz_.resize(std::size_t(rows));
    kern::quant_dynamic_scales(xs_.data(), xz_.data(), x, fmt, rows, cols);
    kern::fake_quant_forward(x, x, xs_.data(), xz_.data(), fmt, rows, cols);
  }
  return x;
}

void IntegerInference::backward(int, LinearInput, float*, const float*, int, int) {
  KD_ASSERT(false, "integer inference has no backward");
}

bool IntegerInference::linear(int layer, LinearInput site, float* y, float* x, const float*, int rows, int n, int k,
                              bool accumulate) {
  Fused* f = find(layer, site);
  if (f == nullptr || f->path == Path::simulated) return false;
  KD_ASSERT(f->stored.n == n && f->stored.k == k, "{}: quantized weight is {}x{}, the layer {}x{}", f->name,
            f->stored.n, f->stored.k, n, k);
  if (f->path == Path::weight_only) {
    kern::linear_w4a16(y, x, f->stored, rows, accumulate);
    return true;
  }
  // input codes exactly as FakeQuant rounds them, shifted onto the signed int8 grid
  const kern::QuantFormat& fmt = f->in_format;
  const std::size_t m = std::size_t(rows);
  xq_.resize(m * k);
  const bool per_row = fmt.granularity == kern::QuantGranularity::token;
  if (per_row) {
    xs_.resize(m);
    xz_.resize(m);
    kern::quant_dynamic_scales(xs_.data(), xz_.data(), x, fmt, rows, k);
  } else {
    xs_.assign(1, f->in_scale);
    xz_.assign(1, f->in_zero);
  }
  const int shift = storage_shift(fmt);
  kern::quantize_codes_int8(xq_.data(), x, xs_.data(), xz_.data(), per_row, fmt.bits, fmt.symmetric, shift, rows, k);
  kern::linear_int8(y, xq_.data(), xs_.data(), per_row, per_row ? 0 : int(xz_[0]) - shift, f->prepared, rows,
                    accumulate);
  return true;
}

bool IntegerInference::any_simulated() const {
  for (const auto& f : fused_) {
    if (f->path == Path::simulated) return true;
  }
  return false;
}

std::string IntegerInference::describe() const {
  int counts[3] = {0, 0, 0};
  std::string sim;
  for (const auto& f : fused_) {
    ++counts[int(f->path)];
    if (f->path == Path::simulated && sim.size() < 200) sim += fmt::format("{}{} ({})", sim.empty() ? "" : ", ", f->name, f->why);
  }
  std::string s = fmt::format("integer GEMMs: {} layers | weight-only: {} | simulated in fp32: {}", counts[0],
                              counts[1], counts[2]);
  if (!sim.empty()) s += " — " + sim;
  return s;
}

}  // namespace kd::quant
