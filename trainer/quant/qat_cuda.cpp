#include "trainer/quant/qat_cuda.h"

#include "base/errors.h"

namespace kd::quant {

namespace cu = kern::cuda;

void CudaQatHook::scales(const QatState::TrainSite& t, const float* x, int rows, int cols, const float** scale,
                         const std::int32_t** zero) {
  const std::size_t n = t.dynamic ? t.format->scale_count(rows, cols) : 1;
  if (scale_.size() < n) {  // grows in the first step only: the shapes repeat
    scale_.resize(n);
    zero_.resize(n);
  }
  if (t.dynamic) {
    cu::quant_dynamic_scales(scale_.data(), zero_.data(), x, *t.format, rows, cols);
  } else {
    cu::copy_to_device(zero_.data(), &t.zero, sizeof t.zero);
    if (t.lsq == SIZE_MAX) cu::copy_to_device(scale_.data(), &t.scale, sizeof t.scale);
  }
  *scale = t.lsq != SIZE_MAX ? params_ + t.lsq : scale_.data();
  *zero = zero_.data();
}

const float* CudaQatHook::forward(int layer, LinearInput site, float* x, float* buf, int rows, int cols) {
  const std::size_t n = std::size_t(rows) * std::size_t(cols);
  const QatState::TrainSite t = qat_.train_site(layer, site, rows, cols);
  if (t.observe) {
    host_x_.resize(n);
    cu::copy_to_host(host_x_.data(), x, n * sizeof(float));
    qat_.observe_step_input(layer, site, host_x_.data(), n);
  }
  if (t.format == nullptr || !t.quantize) {
    if (buf == nullptr) return x;
    cu::copy_device(buf, x, n * sizeof(float));
    return buf;
  }
  KD_ASSERT(params_ != nullptr, "the CUDA QAT hook used before bind()");
  const float* scale = nullptr;
  const std::int32_t* zero = nullptr;
  scales(t, x, rows, cols, &scale, &zero);
  float* out = buf ? buf : x;
  cu::fake_quant_forward(out, x, scale, zero, *t.format, rows, cols);
  return out;
}

void CudaQatHook::backward(int layer, LinearInput site, float* dx, const float* x, int rows, int cols) {
  const QatState::TrainSite t = qat_.train_site(layer, site, rows, cols);
  if (t.format == nullptr || !t.quantize) return;  // the forward passed a plain copy
  const float* scale = nullptr;
  const std::int32_t* zero = nullptr;
  scales(t, x, rows, cols, &scale, &zero);  // dynamic: this batch's scales again (deterministic)
  if (t.lsq != SIZE_MAX) {
    KD_ASSERT(grads_ != nullptr, "LSQ backward outside a training step");
    cu::fake_quant_backward_lsq(dx, grads_ + t.lsq, dx, x, scale, zero, *t.format, rows, cols, t.lsq_grad_factor);
  } else {
    cu::fake_quant_backward_ste(dx, dx, x, scale, zero, *t.format, rows, cols);
  }
}

}  // namespace kd::quant
