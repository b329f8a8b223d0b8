// What the distillation loss is made of:
//   loss = alpha·CE(student, labels) + (1 − alpha)·T²·D(teacher_T ‖ student_T) + beta·feature
#pragma once

#include <vector>

#include "kernels/kernels.h"

namespace kd {

// A student hidden state matched to a projected teacher hidden state. Index k names the
// residual stream after block k−1 (0 = the embeddings), as Hugging Face hidden_states.
struct FeaturePair {
  int student_hidden = 0;
  int teacher_hidden = 0;
};

struct DistillSpec {
  double alpha = 0.5;
  double temperature = 2.0;
  kern::Divergence divergence = kern::Divergence::forward_kl;
  double jsd_beta = 0.5;
  double feature_beta = 0.0;
  kern::FeatureLoss feature_kind = kern::FeatureLoss::mse;
  std::vector<FeaturePair> pairs;
  // Rows of logits computed, reduced and back-propagated at a time: bounds the
  // [rows × vocab] buffers of both models (2 × rows × vocab floats in all).
  int logit_chunk_rows = 256;
};

// The step's loss from its mean terms: alpha·ce + (1 − alpha)·T²·kd (kd: whether there is a
// divergence) + beta·feat (feature: whether there is a feature loss).
inline double distill_total_loss(const DistillSpec& spec, double alpha, bool kd, bool feature, double ce,
                                 double kd_mean, double feat) {
  return alpha * ce + (kd ? (1.0 - alpha) * spec.temperature * spec.temperature * kd_mean : 0.0) +
         (feature ? spec.feature_beta * feat : 0.0);
}

// The loss kernels' weights for one micro-batch (every backend): CE weighted alpha, the
// divergence (1 − alpha)·T² (kd: whether there is one), both over n_loss labelled tokens.
inline kern::DistillLossParams distill_loss_params(const DistillSpec& spec, double alpha, bool kd, double n_loss,
                                                   double loss_scale) {
  kern::DistillLossParams lp;
  lp.temperature = spec.temperature;
  lp.divergence = spec.divergence;
  lp.jsd_beta = spec.jsd_beta;
  lp.ce_scale = alpha / n_loss * loss_scale;
  lp.kd_scale = kd ? (1.0 - alpha) * spec.temperature * spec.temperature / n_loss * loss_scale : 0.0;
  return lp;
}

}  // namespace kd
