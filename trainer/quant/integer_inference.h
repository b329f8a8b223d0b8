// Running a quantized model (trainer/quant/quantized_model.h) as the model's LinearHook:
//  * integer: int weights (2..8 bits, any granularity) and int inputs (per-token symmetric
//    or static per-tensor) → int8 × int8 GEMM with exact int32 sums, rescaled per channel
//    or group (kern::linear_int8);
//  * weight-only: int weights, float inputs (W4A16 / W8A16) → kern::linear_w4a16;
//  * simulated: anything else (FP8 — no CPU has FP8 arithmetic —, asymmetric per-token
//    inputs, layers whose fused partners differ in format): the dequantized weights in
//    fp32 GEMMs, the inputs fake-quantized. describe() says which layer ran how.
// q/k/v and gate/up stay fused: their codes are concatenated into one weight per GEMM.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "trainer/model/linear_hook.h"
#include "trainer/model/model_spec.h"
#include "trainer/quant/quantized_model.h"

namespace kd::quant {

class IntegerInference final : public LinearHook<float> {
 public:
  IntegerInference(const QuantizedModel& m, const ModelSpec& spec);
  ~IntegerInference() override;

  const float* forward(int layer, LinearInput site, float* x, float* buf, int rows, int cols) override;
  void backward(int layer, LinearInput site, float* dx, const float* x, int rows, int cols) override;
  bool linear(int layer, LinearInput site, float* y, float* x, const float* w, int rows, int n, int k,
              bool accumulate) override;

  // "integer: 28 GEMMs (W4A8), weight-only: 0, simulated: 1 (lm_head: fp8 ...)".
  std::string describe() const;
  bool any_simulated() const;

 private:
  struct Fused;
  Fused* find(int layer, LinearInput site);
  std::vector<std::unique_ptr<Fused>> fused_;
  std::vector<std::int8_t> xq_;   // input codes
  std::vector<float> xs_;         // input scales per row
  std::vector<std::int32_t> xz_;
};

}  // namespace kd::quant
