// One forward + backward of knowledge distillation on a micro-batch:
// teacher trunk (frozen) → student trunk → [row chunks: both heads → CE + divergence →
// head backward] → feature loss → student backward. Gradients accumulate.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/distill/distill_section.h"
#include "trainer/distill/teacher_topk.h"
#include "trainer/distill/teacher_tp.h"
#include "trainer/model/llama.h"

namespace kd {

struct StepLoss {
  double loss = 0;  // alpha·ce + (1−alpha)·T²·kd + beta·feat
  double ce = 0;    // mean over labelled tokens
  double kd = 0;    // mean divergence (0 without a teacher term)
  double feat = 0;  // mean over pairs of the feature loss
  std::int64_t tokens = 0;
  double ce_sum = 0, kd_sum = 0;  // over this micro-batch's labelled tokens
  // on-policy rows (kd_only): their count and divergence sum (inside tokens and kd_sum)
  std::int64_t on_tokens = 0;
  double kd_on_sum = 0;
};

// The batch a micro-batch's loss is a part of: a step's loss is the sum of token losses
// over the labelled tokens of the whole global batch (every micro-batch of every
// data-parallel rank), never a mean of per-micro-batch means; the feature loss, a mean
// over positions, is weighted by the micro-batch's share of the positions.
struct BatchTotals {
  double tokens = 0;     // labelled tokens of the global batch
  double positions = 0;  // positions (batch · seq) of the global batch
};

struct PhaseTimes {
  double teacher_fwd = 0, student_fwd = 0, loss = 0, backward = 0;
  // one micro-batch's phases from its five timestamps
  void add(double t0, double t1, double t2, double t3, double t4) {
    teacher_fwd += t1 - t0;
    student_fwd += t2 - t1;
    loss += t3 - t2;
    backward += t4 - t3;
  }
};

// The feature-loss projections: auxiliary tensors "distill.feature_proj.{k}.weight"
// [d_student, d_teacher] appended to the student's table. Returns their offsets.
std::vector<std::size_t> declare_feature_projections(ParamTable& table, const DistillSection& spec,
                                                     const ModelSpec& student,
                                                     const ModelSpec* teacher);

template <class T>
class DistillStep {
 public:
  // teacher may be null: the student trains on CE alone (alpha is then ignored), unless
  // top_k_targets: the divergence then comes from top-k targets passed to run() (a teacher
  // cache, teacher ranks) and teacher must be null.
  // hook (nullable): transforms the student's linear inputs, head included (QAT); it
  // must outlive the step.
  DistillStep(const LlamaLayout& student, const LlamaLayout* teacher, DistillSection spec,
              std::vector<std::size_t> projection_offsets, int batch, int seq, int threads,
              LinearHook<T>* hook = nullptr, bool top_k_targets = false, bool measure_only = false);

  // tokens, labels: (batch, seq). Adds loss_scale · ∂loss/∂θ to grads, where loss is this
  // micro-batch's own loss, or with `totals` its part of the global batch's loss.
  // kd_only (batch, seq; nullable): 1 at an on-policy position (its label sampled by the
  // student): the divergence alone, weighted T², no CE (distill.on_policy).
  StepLoss run(const T* student_params, T* student_grads, const T* teacher_params,
               const std::int32_t* tokens, const std::int32_t* labels, double loss_scale,
               PhaseTimes* times = nullptr, const BatchTotals* totals = nullptr,
               const TopKTargets* targets = nullptr, const std::uint8_t* kd_only = nullptr);

  // The activation and loss arenas (with measure_only: what they would take; such a step
  // cannot run).
  std::size_t arena_bytes() const;
  // A tensor-parallel teacher: `teacher` (the constructor's) is then this rank's shard and
  // the forward and logits run through tp (float only). Must outlive the step.
  void set_tensor_parallel(TeacherTp* tp) { tp_ = tp; }
  // After a step's micro-batches, before the optimizer: the vocab-parallel head's gradient
  // rows gathered over the tensor-parallel group into grads (a no-op otherwise).
  void finish_step(T* grads);
  // The teacher's linear layers run through this (a bf16 teacher; not with tp).
  void set_teacher_hook(LinearHook<T>* h) { teacher_hook_ = h; }

 private:
  // the teacher's logits are needed for the divergence: of the data rows (alpha < 1) or of
  // on-policy rows (their loss is the divergence alone, whatever alpha)
  bool uses_teacher_logits() const {
    return teacher_ != nullptr && (spec_.alpha < 1.0 || spec_.on_policy.enabled());
  }
  bool has_teacher_term() const { return teacher_ != nullptr || top_k_; }
  void logits_chunk(T* out, const T* hidden, const T* head, int rows, int vocab, int d) const;
  void teacher_logits(const T* hidden, const T* teacher_params, int rows);  // into zt_
  // Tensor parallel, forward KL, equal vocabularies: the head and loss on this rank's
  // vocabulary slice (vocab_parallel_loss.cpp). Fills rows_ and dfinal_.
  bool vocab_parallel() const {
    return tp_ != nullptr && (teacher_ == nullptr || (spec_.divergence == kern::Divergence::forward_kl &&
                                                      teacher_->spec().vocab == student_.spec().vocab));
  }
  void vocab_parallel_head(const T* head_in, const T* sp, const T* tp, const std::int32_t* labels,
                           const kern::DistillLossParams& lp, bool kd);

  const LlamaLayout& student_;
  const LlamaLayout* teacher_;
  DistillSection spec_;
  std::vector<std::size_t> proj_;
  LinearHook<T>* hook_;
  TeacherTp* tp_ = nullptr;
  LinearHook<T>* teacher_hook_ = nullptr;
  bool top_k_;
  int batch_, seq_;
  TrainActivations<T> sact_;
  FrozenActivations<T> tact_;
  Arena<T> loss_arena_;
  T *zs_ = nullptr, *zt_ = nullptr, *dfinal_ = nullptr, *target_ = nullptr, *dtarget_ = nullptr;
  std::vector<T*> dhidden_;  // per student hidden index (null when unused)
  std::vector<const T*> dhidden_view_;
  std::vector<kern::LossRow> rows_;
  std::vector<T> head_grad_;  // vocab-parallel: this slice's head rows, over a step
};

// Defined for float only (vocab_parallel_loss.cpp); the double step never runs tensor parallel.
template <>
void DistillStep<float>::vocab_parallel_head(const float*, const float*, const float*, const std::int32_t*,
                                             const kern::DistillLossParams&, bool);
template <>
void DistillStep<double>::vocab_parallel_head(const double*, const double*, const double*, const std::int32_t*,
                                              const kern::DistillLossParams&, bool);
template <>
void DistillStep<float>::finish_step(float* grads);
template <>
void DistillStep<double>::finish_step(double* grads);

}  // namespace kd
