// The training loop's one step: grad_accum micro-batches through the distillation step,
// the NaN/Inf policy, global-norm clipping, the LR schedule and AdamW.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/batch_source.h"
#include "trainer/config/config.h"
#include "trainer/distill/distill_step.h"
#include "trainer/eval/evaluator.h"
#include "trainer/model/llama.h"
#include "trainer/optim/adamw.h"
#include "trainer/prune/block_importance.h"
#include "trainer/prune/pruner.h"
#include "trainer/quant/qat.h"
#include "trainer/util/aligned_buffer.h"

namespace kd {

struct StepReport {
  std::int64_t step = 0;  // 0-based index of this optimizer step
  StepLoss loss;          // averaged over the micro-batches
  double grad_norm = 0;   // before clipping
  double lr = 0;
  bool skipped = false;   // non-finite, nan_policy: skip
  std::string nonfinite;  // what went non-finite, when skipped
  std::string prune_event;  // what pruning did at the start of the step ("" when nothing)
  PhaseTimes phases;
  double optim_seconds = 0;
  double seconds = 0;
};

class Trainer {
 public:
  explicit Trainer(const Config& cfg);

  // One optimizer step (reads grad_accum micro-batches). Throws RuntimeFailure on a
  // non-finite loss or gradient under nan_policy: stop.
  StepReport step(data::BatchSource& source);

  const Config& config() const { return cfg_; }
  const ParamTable& student_table() const { return stable_; }
  const ParamTable& teacher_table() const { return ttable_; }
  const LlamaLayout& student() const { return *student_; }
  const LlamaLayout* teacher() const { return teacher_.get(); }
  float* student_params() { return sparams_.data(); }
  float* teacher_params() { return tparams_.data(); }
  const float* grads() const { return grads_.data(); }
  AdamW<float>& optimizer() { return *adamw_; }
  std::int64_t steps_done() const { return step_; }
  // Resume: the step counter and skipped-step count of the checkpoint.
  void restore_counters(std::int64_t steps_done, std::int64_t skipped) {
    step_ = steps_done;
    skipped_ = skipped;
  }
  std::int64_t skipped_steps() const { return skipped_; }
  std::size_t arena_bytes() const { return dstep_->arena_bytes(); }
  // Quantization-aware training state (null without a quant section).
  quant::QatState* qat() { return qat_.get(); }
  // Pruning state (null without a prune section).
  prune::Pruner* pruner() { return pruner_.get(); }
  // The batches depth pruning scores blocks on (synthetic data: made by the trainer).
  void set_prune_calibration(std::unique_ptr<data::BatchSource> s) { prune_calibration_ = std::move(s); }

  // Held-out CE of the student on `batches` batches (no gradients kept).
  double evaluate(data::BatchSource& source, int batches);

 private:
  std::string first_nonfinite_gradient() const;  // "" when every gradient is finite

  Config cfg_;
  ParamTable stable_, ttable_;
  std::unique_ptr<LlamaLayout> student_, teacher_;
  std::vector<std::size_t> proj_;
  AlignedBuffer<float> sparams_, tparams_, grads_;
  std::unique_ptr<quant::QatState> qat_;
  std::unique_ptr<AdamW<float>> adamw_;
  std::unique_ptr<prune::Pruner> pruner_;
  std::unique_ptr<data::BatchSource> prune_calibration_;
  std::unique_ptr<DistillStep<float>> dstep_;
  std::unique_ptr<Evaluator> evaluator_;  // forward only, student alone, same shapes
  std::vector<std::int32_t> tokens_, labels_;
  std::int64_t step_ = 0, skipped_ = 0;
};

// Applies the thread count: OpenMP and OpenBLAS (one pool). 0 = keep OMP_NUM_THREADS
// or all cores. Returns the count in effect.
int set_threads(int threads);
// "OpenBLAS 0.3.21 ... USE_OPENMP ..., core Zen, parallel=openmp" — what actually ran.
std::string blas_description();

}  // namespace kd
