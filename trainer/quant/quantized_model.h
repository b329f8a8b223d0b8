// A model quantized for real: integer (or FP8) codes with their scales and zero points,
// as `kdtrain ptq` writes it and `kdtrain eval` / `generate` run it. Stored in checkpoint
// group "quantized" (docs/checkpoint-format.md):
//   <tensor>.codes   int8 (rows, cols)       integer formats of 2..8 bits except 4
//                    uint8 (rows, cols/2)    int4: two codes per byte, element 2j in the low
//                                            nibble, each nibble two's complement (-8..7)
//                    uint8 (rows, cols)      FP8: the OCP E4M3 / E5M2 bit patterns
//   <tensor>.scale   float32 (scale_count)   per tensor 1, per channel rows, per group rows·cols/g
//   <tensor>.zero    int32 (scale_count)     asymmetric integer formats only
//   <layer>.input_scale / .input_zero        static (:tensor) input quantizers
// Integer codes are stored signed: an unsigned (asymmetric) grid 0..2^b-1 is shifted by
// -2^(b-1), its zero points with it, so every element is (code - zero) · scale, exactly
// the value FakeQuant computes. The formats themselves are the `quant` section of the
// stored config.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/quant/quant_plan.h"

namespace kd::quant {

struct QuantizedTensor {
  WeightPlan plan;
  std::vector<std::int8_t> codes;    // integer, bits != 4: rows·cols
  std::vector<std::uint8_t> bytes;   // int4: rows·cols/2 packed; FP8: rows·cols codes
  std::vector<float> scale;
  std::vector<std::int32_t> zero;    // asymmetric integer formats; empty = 0
  // The code of element i as a signed integer (integer formats).
  int code(std::size_t i) const;
  // out (rows, cols) = (code - zero) · scale (FP8: decode(code) · scale).
  void dequantize(float* out) const;
  std::size_t stored_bytes() const;
};

// A weight's scale slots fixed by a one-shot method (GPTQ, AWQ): used instead of the
// weight calibrator, so the stored codes are the method's own (trainer/oneshot).
struct WeightScales {
  std::vector<float> scale;
  std::vector<std::int32_t> zero;  // unshifted, as FakeQuant's; empty = 0
};

struct QuantizedInput {
  InputPlan plan;
  float scale = 1.0f;        // static formats
  std::int32_t zero = 0;
};

struct QuantizedModel {
  QuantPlan plan;
  std::vector<QuantizedTensor> weights;
  std::vector<QuantizedInput> inputs;  // static ones carry scale/zero; :token ones the format only
  const QuantizedTensor* weight(const std::string& tensor) const;
};

// The shift that stores an unsigned (asymmetric) grid 0..2^b-1 as signed codes: 2^(b-1);
// 0 for symmetric (signed) grids. Zero points shift with their codes.
inline int storage_shift(const kern::QuantFormat& f) { return f.symmetric ? 0 : 1 << (f.bits - 1); }

// Codes of weight `w` (rows, cols) under `scale`/`zero` (the fake-quant's own, unshifted).
QuantizedTensor quantize_tensor(const WeightPlan& p, const float* w, const float* scale, const std::int32_t* zero);

// Tensor views for checkpoint group "quantized" (valid while `m` lives).
std::vector<ckpt::TensorView> quantized_views(const QuantizedModel& m);
// Reads group "quantized" for `plan`; InputError naming the path and tensor on anything
// missing, of another shape or type, or codes off the format's grid.
QuantizedModel read_quantized(const ckpt::CheckpointReader& r, const QuantPlan& plan);

}  // namespace kd::quant
