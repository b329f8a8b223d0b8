// The element math of the distillation divergences: each term of a KL sum, and the
// derivatives with respect to the student's logits s_v, given the tempered distributions
// q = softmax(s/τ) (student) and p = softmax(t/τ) (teacher). `it` = 1/τ. Shared by every
// backend and every form of the loss: the full-vocabulary kernels (cpu/distill_loss.cpp,
// cuda/distill_loss.cu), the top-k kernel (cpu/topk_distill_loss.cpp) and the
// vocab-parallel loss of a tensor-parallel group (trainer/distill/vocab_parallel_loss.cpp).
#pragma once

#include "kernels/common/scalar_math.h"

namespace kd::common {

// One term of KL(a‖b) = Σ a_v (log a_v − log b_v), from a_v and the two logs. (A term with
// a_v = 0 and a finite log a_v is 0; callers skip log 0 = −∞ themselves.)
template <class T>
KD_HD inline T kl_term(T a, T la, T lb) {
  return a * (la - lb);
}

// KL(p‖q):  ∂/∂s_v = (q_v − p_v)/τ
template <class T>
KD_HD inline T forward_kl_grad(T q, T p, T it) {
  return (q - p) * it;
}

// The top-k forward KL keeps the teacher's k largest probabilities and puts the rest of its
// mass, p_tail, in one bucket against the student's mass outside K, q_tail. Its gradient at
// an s_v outside K is forward_kl_grad's with the teacher's probability of v taken as the
// bucket's mass shared in the student's proportions: q_v · p_tail / q_tail (`tail_ratio`, once
// per row).
template <class T>
KD_HD inline T tail_share(T q, T tail_ratio) {
  return q * tail_ratio;
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
