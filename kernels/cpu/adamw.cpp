// AdamW with decoupled weight decay, in the same operation order as torch.optim.AdamW
// (single-tensor path), so that a step is reproducible against it to rounding.
#include <cmath>

#include "kernels/kernels.h"

namespace kd::kern {

namespace {

template <class T>
struct Coefficients {
  T decay, b1, b2, omb1, omb2, step_size, bc2_sqrt, eps, gs;
};

template <class T>
Coefficients<T> coefficients_of(const AdamWStep& s) {
  // 1 − β in double, rounded once (as torch passes it): float(1) − float(0.999) is off by 1.3e-5.
  return {T(1.0 - s.lr * s.weight_decay), T(s.beta1), T(s.beta2), T(1.0 - s.beta1), T(1.0 - s.beta2),
          T(s.lr / s.bias_correction1), T(std::sqrt(s.bias_correction2)), T(s.eps), T(s.grad_scale)};
}

template <class T>
inline void update_element(const Coefficients<T>& c, T* param, const T* grad, T* m, T* v, std::size_t i) {
  const T g = grad[i] * c.gs;
  T p = param[i] * c.decay;
  const T mi = m[i] * c.b1 + c.omb1 * g;
  const T vi = v[i] * c.b2 + c.omb2 * g * g;
  m[i] = mi;
  v[i] = vi;
  p -= c.step_size * mi / (std::sqrt(vi) / c.bc2_sqrt + c.eps);
  param[i] = p;
}

}  // namespace

template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamWStep& s) {
  const Coefficients<T> c = coefficients_of<T>(s);
#pragma omp parallel for simd schedule(static)
  for (std::size_t i = 0; i < n; ++i) update_element(c, param, grad, m, v, i);
}

template <class T>
void adamw_update_on_caller(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamWStep& s) {
  const Coefficients<T> c = coefficients_of<T>(s);
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) update_element(c, param, grad, m, v, i);
}

template void adamw_update<float>(float*, const float*, float*, float*, std::size_t, const AdamWStep&);
template void adamw_update<double>(double*, const double*, double*, double*, std::size_t, const AdamWStep&);
template void adamw_update_on_caller<float>(float*, const float*, float*, float*, std::size_t, const AdamWStep&);
template void adamw_update_on_caller<double>(double*, const double*, double*, double*, std::size_t,
                                             const AdamWStep&);

}  // namespace kd::kern
