// AdamW with decoupled weight decay, in the same operation order as torch.optim.AdamW
// (single-tensor path), so that a step is reproducible against it to rounding.
#include <cmath>

#include "kernels/kernels.h"

namespace kd::kern {

template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamWStep& s) {
  const T decay = T(1.0 - s.lr * s.weight_decay);
  // 1 − β in double, rounded once (as torch passes it): float(1) − float(0.999) is off by 1.3e-5.
  const T b1 = T(s.beta1), b2 = T(s.beta2), omb1 = T(1.0 - s.beta1), omb2 = T(1.0 - s.beta2);
  const T step_size = T(s.lr / s.bias_correction1);
  const T bc2_sqrt = T(std::sqrt(s.bias_correction2));
  const T eps = T(s.eps), gs = T(s.grad_scale);
#pragma omp parallel for simd schedule(static)
  for (std::size_t i = 0; i < n; ++i) {
    const T g = grad[i] * gs;
    T p = param[i] * decay;
    const T mi = m[i] * b1 + omb1 * g;
    const T vi = v[i] * b2 + omb2 * g * g;
    m[i] = mi;
    v[i] = vi;
    p -= step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    param[i] = p;
  }
}

template void adamw_update<float>(float*, const float*, float*, float*, std::size_t,
                                  const AdamWStep&);
template void adamw_update<double>(double*, const double*, double*, double*, std::size_t,
                                   const AdamWStep&);

}  // namespace kd::kern
