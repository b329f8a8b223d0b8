#include "trainer/quant/quantized_model.h"

#include <fmt/format.h>

#include "kernels/common/quant_math.h"
#include "kernels/kernels.h"
#include "base/errors.h"

namespace kd::quant {

namespace {

bool packed4(const kern::QuantFormat& f) { return f.kind == kern::QuantKind::integer && f.bits == 4; }
common::Fp8Format fp8_of(const kern::QuantFormat& f) {
  return f.kind == kern::QuantKind::fp8_e4m3 ? common::Fp8Format::e4m3 : common::Fp8Format::e5m2;
}
// Scale slot of element (r, c).
std::size_t slot(const kern::QuantFormat& f, int r, int c, int cols) {
  switch (f.granularity) {
    case kern::QuantGranularity::tensor: return 0;
    case kern::QuantGranularity::group: return std::size_t(r) * (cols / f.group) + c / f.group;
    default: return std::size_t(r);
  }
}

}  // namespace

int QuantizedTensor::code(std::size_t i) const {
  if (packed4(plan.format)) {
    const std::uint8_t b = bytes[i / 2];
    const int nib = (i % 2 == 0) ? (b & 0xF) : (b >> 4);
    return nib >= 8 ? nib - 16 : nib;
  }
  return codes[i];
}

void QuantizedTensor::dequantize(float* out) const {
  const auto& f = plan.format;
  const int rows = plan.rows, cols = plan.cols;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const std::size_t i = std::size_t(r) * cols + c, j = slot(f, r, c, cols);
      if (f.is_fp8()) {
        out[i] = common::fp8_decode(bytes[i], fp8_of(f)) * scale[j];
      } else {
        const int z = zero.empty() ? 0 : zero[j];
        out[i] = float(code(i) - z) * scale[j];
      }
    }
  }
}

std::size_t QuantizedTensor::stored_bytes() const {
  return codes.size() + bytes.size() + 4 * scale.size() + 4 * zero.size();
}

const QuantizedTensor* QuantizedModel::weight(const std::string& tensor) const {
  for (const auto& w : weights) {
    if (w.plan.tensor == tensor) return &w;
  }
  return nullptr;
}

QuantizedTensor quantize_tensor(const WeightPlan& p, const float* w, const float* scale, const std::int32_t* zero) {
  QuantizedTensor t;
  t.plan = p;
  const auto& f = p.format;
  const std::size_t n = std::size_t(p.rows) * p.cols, slots = f.scale_count(p.rows, p.cols);
  t.scale.assign(scale, scale + slots);
  const int shift = storage_shift(f);
  if (f.kind == kern::QuantKind::integer && !f.symmetric) {
    t.zero.resize(slots);
    for (std::size_t j = 0; j < slots; ++j) t.zero[j] = zero[j] - shift;
  }
  std::vector<std::int8_t> codes(f.is_fp8() ? 0 : n);
  if (f.is_fp8()) t.bytes.resize(n);
  const common::IntGrid g = common::int_grid(f.bits, f.symmetric);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < p.rows; ++r) {
    for (int c = 0; c < p.cols; ++c) {
      const std::size_t i = std::size_t(r) * p.cols + c, j = slot(f, r, c, p.cols);
      const float inv = 1.0f / scale[j];
      if (f.is_fp8()) {
        t.bytes[i] = common::fp8_encode(w[i] * inv, fp8_of(f));
      } else {
        std::int64_t q = common::quant_code(w[i], inv, zero ? zero[j] : 0);
        q = q < g.qmin ? g.qmin : (q > g.qmax ? g.qmax : q);
        codes[i] = std::int8_t(q - shift);
      }
    }
  }
  if (packed4(f)) {
    t.bytes.resize(n / 2);
    kern::pack_int4(t.bytes.data(), codes.data(), n);
  } else if (!f.is_fp8()) {
    t.codes = std::move(codes);
  }
  return t;
}

std::vector<ckpt::TensorView> quantized_views(const QuantizedModel& m) {
  std::vector<ckpt::TensorView> v;
  for (const auto& w : m.weights) {
    const std::int64_t rows = w.plan.rows, cols = w.plan.cols, slots = std::int64_t(w.scale.size());
    if (packed4(w.plan.format)) {
      v.push_back({w.plan.tensor + ".codes", {rows, cols / 2}, w.bytes.data(), ckpt::DType::u8});
    } else if (w.plan.format.is_fp8()) {
      v.push_back({w.plan.tensor + ".codes", {rows, cols}, w.bytes.data(), ckpt::DType::u8});
    } else {
      v.push_back({w.plan.tensor + ".codes", {rows, cols}, w.codes.data(), ckpt::DType::i8});
    }
    v.push_back({w.plan.tensor + ".scale", {slots}, w.scale.data(), ckpt::DType::f32});
    if (!w.zero.empty()) v.push_back({w.plan.tensor + ".zero", {slots}, w.zero.data(), ckpt::DType::i32});
  }
  for (const auto& in : m.inputs) {
    if (in.plan.format.granularity != kern::QuantGranularity::tensor) continue;
    v.push_back({in.plan.module + ".input_scale", {1}, &in.scale, ckpt::DType::f32});
    v.push_back({in.plan.module + ".input_zero", {1}, &in.zero, ckpt::DType::i32});
  }
  return v;
}

QuantizedModel read_quantized(const ckpt::CheckpointReader& r, const QuantPlan& plan) {
  const std::string g = "quantized";
  QuantizedModel m;
  m.plan = plan;
  for (const WeightPlan& p : plan.weights) {
    QuantizedTensor t;
    t.plan = p;
    const auto& f = p.format;
    const std::int64_t rows = p.rows, cols = p.cols, slots = std::int64_t(f.scale_count(p.rows, p.cols));
    const std::string name = p.tensor + ".codes";
    if (packed4(f)) {
      t.bytes.resize(std::size_t(rows * cols / 2));
      r.read_typed(g, name, {rows, cols / 2}, ckpt::DType::u8, t.bytes.data());
    } else if (f.is_fp8()) {
      t.bytes.resize(std::size_t(rows * cols));
      r.read_typed(g, name, {rows, cols}, ckpt::DType::u8, t.bytes.data());
    } else {
      t.codes.resize(std::size_t(rows * cols));
      r.read_typed(g, name, {rows, cols}, ckpt::DType::i8, t.codes.data());
      const common::IntGrid grid = common::int_grid(f.bits, true);  // stored signed
      for (std::size_t i = 0; i < t.codes.size(); ++i) {
        KD_CHECK_INPUT(t.codes[i] >= grid.qmin && t.codes[i] <= grid.qmax,
                       "{}: tensor \"{}/{}\" element {} is code {}, outside the {}-bit grid {}..{}", r.path(), g,
                       name, i, int(t.codes[i]), f.bits, grid.qmin, grid.qmax);
      }
    }
    t.scale.resize(std::size_t(slots));
    r.read_typed(g, p.tensor + ".scale", {slots}, ckpt::DType::f32, t.scale.data());
    for (std::size_t j = 0; j < t.scale.size(); ++j) {
      KD_CHECK_INPUT(std::isfinite(t.scale[j]) && t.scale[j] > 0, "{}: tensor \"{}/{}.scale\" element {} is {}, not a positive scale",
                     r.path(), g, p.tensor, j, t.scale[j]);
    }
    if (f.kind == kern::QuantKind::integer && !f.symmetric) {
      t.zero.resize(std::size_t(slots));
      r.read_typed(g, p.tensor + ".zero", {slots}, ckpt::DType::i32, t.zero.data());
    }
    m.weights.push_back(std::move(t));
  }
  for (const InputPlan& p : plan.inputs) {
    QuantizedInput in;
    in.plan = p;
    if (p.format.granularity == kern::QuantGranularity::tensor) {
      r.read_typed(g, p.module + ".input_scale", {1}, ckpt::DType::f32, &in.scale);
      r.read_typed(g, p.module + ".input_zero", {1}, ckpt::DType::i32, &in.zero);
    }
    m.inputs.push_back(in);
  }
  return m;
}

}  // namespace kd::quant
