// A quantized student's quantization parameters as extra safetensors tensors, beside its
// dequantized weights (export --format hf; docs/interop.md):
//   <module>.weight_scale       F32  [1] per tensor, [rows] per channel, [rows, cols/group] per group
//   <module>.weight_zero_point  I32  same shape; asymmetric integer formats only, on the
//                                    format's own grid (0 … 2^bits − 1)
//   <module>.input_scale        F32  [1]  static (per-tensor) input quantizers
//   <module>.input_zero_point   I32  [1]  the same, asymmetric only
// so that code = round(w / scale) + zero_point gives kdtrain's integer codes back from the
// dequantized weight w (FP8: w / scale is exactly an FP8 value). The formats themselves go
// into the file's metadata under "kdtrain.quantization" (JSON: module → format text as in
// kdtrain's quant config). A tied head's quantizer is module "lm_head".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "trainer/interop/safetensors.h"
#include "trainer/quant/quantized_model.h"

namespace kd::interop {

struct QuantTensors {
  std::vector<SafeTensorOut> tensors;  // views into the buffers below
  std::map<std::string, std::string> metadata;
  std::vector<std::vector<float>> floats;
  std::vector<std::vector<std::int32_t>> ints;
};
QuantTensors quant_tensors(const quant::QuantizedModel& m);

// Whether `name` is one of the suffixes above (import-hf reads past them, with the metadata).
bool is_quant_tensor_name(const std::string& name);
inline constexpr const char* kQuantMetadataKey = "kdtrain.quantization";

}  // namespace kd::interop
