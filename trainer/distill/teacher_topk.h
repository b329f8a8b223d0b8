// A teacher as top-k targets: per token position, its k largest logits (raw values and
// their vocabulary indices) and the log-sum-exp of all its logits at each of a list of
// temperatures. This is what a teacher cache stores (kdtrain cache-teacher) and what
// teacher ranks send to student ranks; the student's loss is kern::topk_distill_loss_rows.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/model/llama.h"

namespace kd {

// The targets of one micro-batch of m positions, for the loss at one temperature.
struct TopKTargets {
  int k = 0;
  int kd_vocab = 0;                  // the student logits compared (indices are below it)
  std::vector<float> values;         // (m, k), descending per row (ties: lower index first)
  std::vector<std::int32_t> indices; // (m, k)
  std::vector<float> lse;            // (m) at the loss's temperature
  // Instead of the top k: the teacher's full logits (m, kd_vocab) in bfloat16 (teacher
  // ranks with parallel.teacher_sends: logits). Any divergence then applies.
  std::vector<std::uint16_t> full_bf16;
  void resize(std::size_t m, int k_) {
    k = k_;
    values.resize(m * std::size_t(k_));
    indices.resize(m * std::size_t(k_));
    lse.resize(m);
  }
};

class TeacherTopK {
 public:
  // kd_vocab: the logits compared with the student's (the shared prefix of padded
  // vocabularies); top-k and log-sum-exps run over those.
  TeacherTopK(const LlamaLayout& teacher, int batch, int seq, int threads, int k, int kd_vocab,
              std::vector<double> temperatures, int chunk_rows);
  // The teacher's forward on tokens (batch, seq): values, indices (m, k) and lse (m, T)
  // for the T temperatures, row-major.
  void run(const float* params, const std::int32_t* tokens, float* values, std::int32_t* indices, float* lse);
  int k() const { return k_; }
  // The teacher's forward on tokens, its full logits (m, kd_vocab) in bfloat16.
  void run_logits(const float* params, const std::int32_t* tokens, std::uint16_t* logits);
  // The teacher's linear layers run through this (a bf16 teacher); null: float GEMMs.
  void set_hook(LinearHook<float>* h) { hook_ = h; }
  const std::vector<double>& temperatures() const { return temps_; }

 private:
  const LlamaLayout& teacher_;
  int batch_, seq_, k_, kd_vocab_, chunk_;
  std::vector<double> temps_;
  LinearHook<float>* hook_ = nullptr;
  FrozenActivations<float> act_;
  std::vector<float> logits_;
};

}  // namespace kd
