// The `distill` section of a config, which is also what the distillation step is made of:
//   loss = alpha·CE(student, labels) + (1 − alpha)·T²·D(teacher_T ‖ student_T) + beta·feature
// and the loss kernels' weights that follow from it, for every backend.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "base/schema.h"
#include "kernels/kernels.h"

namespace kd {

struct FeatureSection {
  double beta = 0.0;
  kern::FeatureLoss kind = kern::FeatureLoss::mse;
  // (student_hidden, teacher_hidden): index k names the residual stream after block k − 1
  // (0 = the embeddings), as Hugging Face's hidden_states
  std::vector<std::pair<int, int>> layers;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("beta", beta, "weight of the feature loss (0 = off)", at_least(0));
    v.choice("kind", kind, "distance between student and projected teacher hidden states",
             Choices<kern::FeatureLoss>{{"mse", kern::FeatureLoss::mse}, {"cosine", kern::FeatureLoss::cosine}});
    v.field("layers", layers,
            "layer map: [student_hidden, teacher_hidden] pairs; index k = residual stream after "
            "block k-1, 0 = embeddings (Hugging Face hidden_states numbering)");
  }
};

// GKD-style on-policy distillation (Agarwal et al. 2024): in each global micro-batch a
// fraction λ of the sequences keep only their first prompt_tokens; the student (its training
// weights: fake quantization and masks applied) samples max_new_tokens after them, the teacher
// scores prompt + sample, and the divergence alone is applied on the sampled positions (no
// CE: alpha applies to the off-policy sequences). reverse_kl here is GKD's token-level form,
// a surrogate of MiniLLM's sequence-level objective, not its policy gradient.
struct OnPolicySection {
  double fraction = 0.0;  // λ; 0 = off
  int max_new_tokens = 64;
  double temperature = 1.0;  // the student's sampling temperature
  int prompt_tokens = 32;
  bool enabled() const { return fraction > 0; }
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("fraction", fraction, "share λ of each batch's sequences the student generates (GKD's λ; 0 = off)",
            between(0, 1));
    v.field("max_new_tokens", max_new_tokens, "tokens the student samples after each prompt", between(1, 1 << 20));
    v.field("temperature", temperature, "the student's sampling temperature (GKD samples at 1)", open_between(0, 100));
    v.field("prompt_tokens", prompt_tokens, "the prompt: the first tokens of the sequence's own data",
            between(1, 1 << 20));
  }
};

struct DistillSection {
  double alpha = 0.5;
  double temperature = 2.0;
  kern::Divergence divergence = kern::Divergence::forward_kl;
  double jsd_beta = 0.5;
  // Rows of logits computed, reduced and back-propagated at a time: bounds the
  // [rows × vocab] buffers of both models (2 × rows × vocab floats in all).
  int logit_chunk_rows = 256;
  std::int64_t teacher_pretrain_steps = 0;
  int top_k = 64;
  std::vector<double> cache_temperatures;
  bool cache_bf16 = false;
  FeatureSection feature;
  OnPolicySection on_policy;
  int sample_prompts = 16;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("alpha", alpha, "weight of CE on the labels; the divergence gets 1 - alpha", between(0, 1));
    v.field("temperature", temperature, "softmax temperature T of both models (loss scaled by T^2)", open_between(0, 100));
    v.choice("divergence", divergence,
             "forward_kl: KL(teacher||student) (Hinton); reverse_kl: KL(student||teacher) (MiniLLM); "
             "jsd: generalized Jensen-Shannon (GKD, DistiLLM)",
             Choices<kern::Divergence>{{"forward_kl", kern::Divergence::forward_kl},
                                       {"reverse_kl", kern::Divergence::reverse_kl},
                                       {"jsd", kern::Divergence::jensen_shannon}});
    v.field("jsd_beta", jsd_beta, "teacher weight in the JSD mixture m = beta p + (1-beta) q", open_between(0, 0.999999));
    v.field("logit_chunk_rows", logit_chunk_rows, "token rows whose logits are held at once (both models)", between(1, 1 << 20));
    v.field("teacher_pretrain_steps", teacher_pretrain_steps,
            "train the teacher from scratch on labels for this many steps before distilling "
            "(synthetic tasks without a trained teacher); 0 = use the teacher as given", at_least(0));
    v.field("top_k", top_k,
            "logits per position a teacher cache keeps (kdtrain cache-teacher; the rest of the vocabulary is "
            "one bucket of the top-k KL); capped at the vocabulary", between(1, 1 << 24));
    v.field("cache_temperatures", cache_temperatures,
            "temperatures kdtrain cache-teacher stores log-sum-exps for (distill then accepts only these); "
            "[] = 1 and distill.temperature", open_between(0, 100));
    v.field("cache_bf16", cache_bf16, "kdtrain cache-teacher stores the top-k values in bfloat16 (half the size)");
    v.section("feature", feature, "hidden-state matching through a learned projection (TinyBERT)");
    v.section("on_policy", on_policy, "GKD: a share of each batch generated by the student, scored by the teacher");
    v.field("sample_prompts", sample_prompts,
            "validation prompts the student continues at every evaluation (on_policy.prompt_tokens + max_new_tokens, "
            "at temperature 1): the teacher's NLL of the samples, the student's entropy, distinct bigrams; 0 = off",
            between(0, 4096));
  }
};

// The step's loss from its mean terms: alpha·ce + (1 − alpha)·T²·kd (kd: whether there is a
// divergence) + beta·feat (feature: whether there is a feature loss).
inline double distill_total_loss(const DistillSection& spec, double alpha, bool kd, bool feature, double ce,
                                 double kd_mean, double feat) {
  return alpha * ce + (kd ? (1.0 - alpha) * spec.temperature * spec.temperature * kd_mean : 0.0) +
         (feature ? spec.feature.beta * feat : 0.0);
}

// With on-policy rows: [Σ_data (alpha·CE + (1 − alpha)·T²·D) + Σ_sampled T²·D] / tokens + beta·feat,
// from the sums over all scored tokens (kd_sum includes the sampled ones' kd_on_sum).
inline double on_policy_total_loss(const DistillSection& spec, double alpha, bool feature, double ce_sum,
                                   double kd_sum, double kd_on_sum, double tokens, double feat) {
  const double t2 = spec.temperature * spec.temperature;
  return (alpha * ce_sum + (1.0 - alpha) * t2 * (kd_sum - kd_on_sum) + t2 * kd_on_sum) / tokens +
         (feature ? spec.feature.beta * feat : 0.0);
}

// The loss kernels' weights for one micro-batch (every backend): CE weighted alpha, the
// divergence (1 − alpha)·T² (kd: whether there is one), both over n_loss labelled tokens.
inline kern::DistillLossParams distill_loss_params(const DistillSection& spec, double alpha, bool kd, double n_loss,
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
