// QAT's linear-input hook on the CUDA backend: the same decisions as QatState's host hook
// (QatState::train_site says, per site and step, whether to observe and how to quantize),
// applied to device activations with kernels/cuda's FakeQuant, STE and LSQ kernels.
// Observers stay on the host (they keep histograms): while they run, a static site's input
// is copied to the host for its step observer; once observers freeze nothing is copied.
// Weight fake quantization and its STE/LSQ backward stay in QatState, on the host flat
// buffer, around the device step (trainer/distill/cuda_distill_step.h).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "trainer/quant/qat.h"

namespace kd::quant {

class CudaQatHook final : public LinearHook<float> {
 public:
  explicit CudaQatHook(QatState& qat) : qat_(qat) {}
  // This step's device parameters (the buffer the forward reads, LSQ scales included) and
  // gradients (LSQ input-scale gradients accumulate there).
  void bind(const float* params, float* grads) {
    params_ = params;
    grads_ = grads;
  }
  const float* forward(int layer, LinearInput site, float* x, float* buf, int rows, int cols) override;
  void backward(int layer, LinearInput site, float* dx, const float* x, int rows, int cols) override;

 private:
  // the scale and zero point pointers (device) of a site for this call
  void scales(const QatState::TrainSite& t, const float* x, int rows, int cols, const float** scale,
              const std::int32_t** zero);
  QatState& qat_;
  const float* params_ = nullptr;
  float* grads_ = nullptr;
  kern::cuda::DeviceBuffer<float> scale_;       // per-row scales, or one static scale
  kern::cuda::DeviceBuffer<std::int32_t> zero_;
  std::vector<float> host_x_;                   // what a host observer reads
};

}  // namespace kd::quant
