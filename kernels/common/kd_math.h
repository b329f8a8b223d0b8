// Per-element derivatives of the distillation divergences with respect to the
// student's logits s_v, given the tempered distributions q = softmax(s/τ) (student)
// and p = softmax(t/τ) (teacher). `it` = 1/τ. Shared by every backend.
#pragma once

#include "kernels/common/scalar_math.h"

namespace kd::common {

// KL(p‖q):  ∂/∂s_v = (q_v − p_v)/τ
template <class T>
KD_HD inline T forward_kl_grad(T q, T p, T it) {
  return (q - p) * it;
}

// KL(q‖p) = Σ q f, f = log q − log p:  ∂/∂s_v = q_v (f_v − KL)/τ
template <class T>
KD_HD inline T reverse_kl_grad(T q, T f, T kl, T it) {
  return q * (f - kl) * it;
}

// Generalized JSD_β = β KL(p‖m) + (1−β) KL(q‖m), m = βp + (1−β)q.
// ∂JSD/∂q_u = (1−β) log(q_u/m_u) (the +1 terms cancel), so through the softmax
// ∂/∂s_v = (1−β)/τ · q_v (log(q_v/m_v) − KL(q‖m)).
template <class T>
KD_HD inline T jsd_grad(T q, T lq_minus_lm, T kl_qm, T one_minus_beta, T it) {
  return one_minus_beta * it * q * (lq_minus_lm - kl_qm);
}

}  // namespace kd::common
