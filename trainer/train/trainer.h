// The training loop's one step: grad_accum micro-batches through the distillation step,
// the NaN/Inf policy, global-norm clipping, the LR schedule and AdamW.
//
// Data parallel (a Comm of W ranks): each rank runs its slice of every global micro-batch
// (data::DataParallelSource), the loss is the sum of token losses over the global batch's
// labelled tokens, and the optimizer is ZeRO stage 1 over the flat buffer: padded to
// W · shard elements, gradients reduce-scattered so rank r holds the sum for its shard
// [r · shard, (r + 1) · shard), AdamW's moments and update for that shard only (pruning
// masks and LSQ scales live in the same buffer, so they follow), then the parameters
// all-gathered. Every rank holds the whole parameter buffer (for the forward).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/batch_source.h"
#include "data/dp_source.h"
#include "trainer/dist/comm.h"
#include "trainer/config/config.h"
#include "trainer/distill/distill_step.h"
#include "trainer/distill/on_policy.h"
#include "trainer/distill/bf16_teacher.h"
#include "trainer/distill/target_source.h"
#include "trainer/eval/evaluator.h"
#include "trainer/model/llama.h"
#include "trainer/optim/adamw.h"
#include "trainer/prune/block_importance.h"
#include "trainer/prune/pruner.h"
#include "trainer/quant/qat.h"
#include "trainer/util/aligned_buffer.h"
#include "base/errors.h"

namespace kd {

class CudaDistillStep;  // trainer/distill/cuda_distill_step.h (CUDA builds)

struct StepReport {
  std::int64_t step = 0;  // 0-based index of this optimizer step
  StepLoss loss;          // averaged over the micro-batches
  double grad_norm = 0;   // before clipping
  double lr = 0;
  bool skipped = false;   // non-finite, nan_policy: skip
  std::string nonfinite;  // what went non-finite, when skipped
  std::string prune_event;  // what pruning did at the start of the step ("" when nothing)
  double comm_seconds = 0;  // waiting in collectives (data parallel)
  double comm_bytes = 0;    // sent by this rank in the step's collectives (an estimate: ring algorithms)
  PhaseTimes phases;
  RolloutStats rollouts;  // distill.on_policy: this rank's sampled sequences and tokens, and their time
  double optim_seconds = 0;
  double seconds = 0;
};

class Trainer {
 public:
  // dp: the data-parallel group (null: one process); tp: the tensor-parallel group of the
  // teacher (null: the whole teacher here), whose ranks share every micro-batch. Both must
  // outlive the trainer. With tp, teacher_params() is this rank's shard.
  // runtime.backend: cuda runs the micro-batches on the GPU (trainer/distill/cuda_distill_step.h);
  // start_backend (trainer/setup/backend.h) must have succeeded first.
  explicit Trainer(const Config& cfg, dist::Comm* dp = nullptr, dist::Comm* tp = nullptr);
  ~Trainer();

  // One optimizer step (reads grad_accum micro-batches). With data parallelism `source`
  // is the whole stream; the trainer reads its rank's slice. Throws RuntimeFailure on a
  // non-finite loss or gradient under nan_policy: stop. Collective over the group.
  StepReport step(data::BatchSource& source);

  const Config& config() const { return cfg_; }
  const ParamTable& student_table() const { return stable_; }
  const ParamTable& teacher_table() const { return ttable_; }
  const LlamaLayout& student() const { return *student_; }
  const LlamaLayout* teacher() const { return teacher_.get(); }
  float* student_params() { return sparams_.data(); }
  float* teacher_params() { return tparams_.data(); }
  // Once the teacher's weights are final: with teacher.bf16 its linear layers are converted
  // and their float32 copies released. Returns a line for the log ("" when nothing done).
  std::string freeze_teacher();
  LinearHook<float>* teacher_hook() { return bf16_teacher_.get(); }
  // The teacher's weights (teacher.checkpoint: the trainer does not allocate them itself),
  // laid out by teacher_table() (with tensor parallelism: this rank's shard).
  void adopt_teacher_params(AlignedBuffer<float>&& p) {
    KD_CHECK_INPUT(p.size() == ttable_.total(), "the teacher's weights hold {} values; its table {}", p.size(),
                   ttable_.total());
    tparams_ = std::move(p);
  }
  const float* grads() const { return grads_.data(); }
  AdamW<float>& optimizer() { return *adamw_; }
  dist::Comm& comm() { return *dp_; }
  // This rank's ZeRO shard of AdamW's moments: elements [begin, end) of the flat buffer,
  // m[0] and v[0] being element `begin` (a checkpoint writes and reads only these).
  struct MomentShard {
    std::size_t begin = 0, end = 0;
    float* m = nullptr;
    float* v = nullptr;
  };
  MomentShard moment_shard() { return {shard_begin_, shard_end_, adamw_->m(), adamw_->v()}; }
  std::int64_t steps_done() const { return step_; }
  // Resume: the step counter and skipped-step count of the checkpoint.
  void restore_counters(std::int64_t steps_done, std::int64_t skipped) {
    sums_step_ = -1;  // the state was read in: no update's sums describe it
    step_ = steps_done;
    skipped_ = skipped;
  }
  std::int64_t skipped_steps() const { return skipped_; }
  // The step's activation and loss buffers (CUDA: everything the step holds on the GPU).
  std::size_t arena_bytes() const;
  // Quantization-aware training state (null without a quant section).
  quant::QatState* qat() { return qat_.get(); }
  // Pruning state (null without a prune section).
  prune::Pruner* pruner() { return pruner_.get(); }
  // Distillation from top-k targets (a teacher cache, teacher ranks): no teacher in this
  // process; the caller gives the source, checked against the run.
  bool uses_topk_targets() const {
    return cfg_.has_teacher && (!cfg_.teacher.cache.empty() || cfg_.parallel.teacher_ranks > 0);
  }
  void set_targets(std::unique_ptr<TargetSource> s) { targets_src_ = std::move(s); }
  const TargetSource* targets() const { return targets_src_.get(); }
  // distill.on_policy: the token the student's samples stop at and the rows are padded with
  // (the tokenizer's end of text; before this is called, or -1: no stop, padding 0).
  void set_end_of_text(int eot);
  // The batches depth pruning scores blocks on (synthetic data: made by the trainer).
  void set_prune_calibration(std::unique_ptr<data::BatchSource> s) { prune_calibration_ = std::move(s); }

  // Held-out CE of the student on `batches` batches (no gradients kept).
  double evaluate(data::BatchSource& source, int batches);

  // A checkpoint written in the background reads the weights and moments in place until
  // the next change to them: step() calls `gate` (when set) once before it first writes them
  // (before the optimizer update; with QAT or pruning, which change them earlier, at the
  // start of the step), and `gate` returns once the writer is done with them.
  void set_state_gate(std::function<void()> gate) { state_gate_ = std::move(gate); }
  // True when only the optimizer update changes the trainer's state (no QAT scales, observers
  // or pruning masks written before it): the state gate then sits before the update, and a
  // background checkpoint overlaps the next step's forward and backward passes; otherwise
  // it sits at the step's start.
  bool state_changes_only_in_update() const { return !qat_ && !pruner_; }
  // A checkpoint follows the next step: its update takes the CRC-32s of this rank's shard of
  // the weights and moments as it leaves them (AdamW::StateSums), so that the checkpoint's
  // writer need not read 12 bytes a parameter from memory again for them. Only where the
  // update is the state's last change (state_changes_only_in_update()); a skipped step
  // takes none.
  void sum_next_update() { sum_next_ = true; }
  // The CRC-32s the last step's update took, while the state is still as it left them (no
  // step since); null otherwise.
  const AdamW<float>::StateSums* state_sums() const { return sums_step_ == step_ ? &sums_ : nullptr; }

 private:
  // "" when every gradient of [begin, end) is finite; g holds those elements.
  std::string first_nonfinite_gradient(const float* g, std::size_t begin, std::size_t end) const;

  void pass_state_gate() {
    if (state_gate_) state_gate_();
  }

  Config cfg_;
  std::function<void()> state_gate_;
  std::unique_ptr<dist::Comm> own_comm_;  // one process: the trainer's own
  dist::Comm* dp_;
  std::size_t shard_ = 0, shard_begin_ = 0, shard_end_ = 0;  // ZeRO: [begin, end) ∩ the table
  int local_batch_ = 0;                                         // this rank's sequences per micro-batch
  AlignedBuffer<float> gshard_;
  ParamTable stable_, ttable_;
  std::unique_ptr<LlamaLayout> student_, teacher_;
  std::vector<std::size_t> proj_;
  AlignedBuffer<float> sparams_, tparams_, grads_;
  std::unique_ptr<quant::QatState> qat_;
  std::unique_ptr<AdamW<float>> adamw_;
  std::unique_ptr<prune::Pruner> pruner_;
  std::unique_ptr<data::BatchSource> prune_calibration_;
  std::unique_ptr<DistillStep<float>> dstep_;          // runtime.backend: cpu
  std::unique_ptr<CudaDistillStep> cuda_step_;          // runtime.backend: cuda
  bool teacher_on_device_ = false;
  std::unique_ptr<Evaluator> evaluator_;  // forward only, student alone, same shapes
  std::vector<std::int32_t> tokens_, labels_;  // the step's micro-batches (this rank's slices)
  std::vector<std::uint8_t> kd_only_;          // on-policy positions of the micro-batches (distill.on_policy)
  std::unique_ptr<OnPolicyRollouts> rollouts_;
  std::unique_ptr<data::DataParallelSource> dp_source_;
  std::int64_t dp_first_ = 0;               // this rank's first sequence within a global micro-batch
  std::vector<std::int64_t> micro_first_;   // the global index of each micro-batch's first sequence
  std::unique_ptr<TargetSource> targets_src_;
  std::unique_ptr<TeacherTp> teacher_tp_;
  std::unique_ptr<Bf16Teacher> bf16_teacher_;
  TopKTargets targets_;
  data::BatchSource* dp_inner_ = nullptr;  // what dp_source_ slices
  std::int64_t step_ = 0, skipped_ = 0;
  bool sum_next_ = false;
  AdamW<float>::StateSums sums_;
  std::int64_t sums_step_ = -1;  // the step_ after the update that took sums_
};

// Applies the thread count: OpenMP and OpenBLAS (one pool). 0 = keep OMP_NUM_THREADS
// or all cores. A count above the machine's cores or OpenBLAS's maximum is capped, with a
// line on stderr naming `what` (the key or option it came from). Returns the count in effect.
int set_threads(int threads, std::string_view what = "threads");
// "OpenBLAS 0.3.21 ... USE_OPENMP ..., core Zen, parallel=openmp" — what actually ran.
std::string blas_description();

}  // namespace kd
