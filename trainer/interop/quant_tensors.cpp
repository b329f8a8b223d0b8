#include "trainer/interop/quant_tensors.h"

#include <nlohmann/json.hpp>

#include "trainer/quant/quant_format.h"

namespace kd::interop {

namespace {

std::vector<std::int64_t> scale_shape(const kern::QuantFormat& f, int rows, int cols) {
  switch (f.granularity) {
    case kern::QuantGranularity::channel: return {rows};
    case kern::QuantGranularity::group: return {rows, cols / f.group};
    default: return {1};
  }
}

}  // namespace

QuantTensors quant_tensors(const quant::QuantizedModel& m) {
  QuantTensors q;
  q.floats.reserve(2 * (m.weights.size() + m.inputs.size()));
  q.ints.reserve(2 * (m.weights.size() + m.inputs.size()));
  nlohmann::ordered_json formats = nlohmann::ordered_json::object();
  const auto add_f = [&](const std::string& name, std::vector<std::int64_t> shape, std::vector<float> v) {
    q.floats.push_back(std::move(v));
    q.tensors.push_back({name, std::move(shape), q.floats.back().data(), "F32"});
  };
  const auto add_i = [&](const std::string& name, std::vector<std::int64_t> shape, std::vector<std::int32_t> v) {
    q.ints.push_back(std::move(v));
    q.tensors.push_back({name, std::move(shape), q.ints.back().data(), "I32"});
  };
  for (const quant::QuantizedTensor& w : m.weights) {
    const auto& f = w.plan.format;
    const auto shape = scale_shape(f, w.plan.rows, w.plan.cols);
    add_f(w.plan.module + ".weight_scale", shape, w.scale);
    if (!f.is_fp8() && !f.symmetric) {
      std::vector<std::int32_t> zero(w.scale.size(), 0);
      for (std::size_t i = 0; i < w.zero.size(); ++i) zero[i] = w.zero[i] + quant::storage_shift(f);
      add_i(w.plan.module + ".weight_zero_point", shape, std::move(zero));
    }
    formats[w.plan.module + ".weight"] = quant::to_string(f);
  }
  for (const quant::QuantizedInput& in : m.inputs) {
    const auto& f = in.plan.format;
    formats[in.plan.module + ".input"] = quant::to_string(f);
    if (f.granularity != kern::QuantGranularity::tensor) continue;  // per-token scales come from each input
    add_f(in.plan.module + ".input_scale", {1}, {in.scale});
    if (!f.is_fp8() && !f.symmetric) add_i(in.plan.module + ".input_zero_point", {1}, {in.zero});
  }
  q.metadata[kQuantMetadataKey] = formats.dump();
  return q;
}

bool is_quant_tensor_name(const std::string& name) {
  for (const char* s : {".weight_scale", ".weight_zero_point", ".input_scale", ".input_zero_point"})
    if (name.ends_with(s)) return true;
  return false;
}

}  // namespace kd::interop
