// Pruning inside a training run: the mask, when it is recomputed, and keeping pruned
// weights exactly zero. At the start of a step t that is a pruning step (t updates done)
// the mask is recomputed from the current weights; gradients are masked before the
// optimizer; after every update the mask is applied to the weights and to both Adam
// moments, so a pruned weight stays 0.0 and carries no optimizer state.
//
// Iterative magnitude pruning (schedule: imp) adds the rewind: at step k of the first
// round the whole parameter buffer is copied (the snapshot); at the start of every later
// round the mask grows, then the weights go back to the snapshot (rewind: init / step),
// stay as trained (rewind: lr, only the LR schedule is replayed from k), or are drawn
// afresh (control: random_reinit); the Adam moments and bias-correction count restart.
//
// Checkpoint groups: "masks" (one uint8 dataset per prunable tensor) and, once taken,
// "rewind" (the snapshot, every tensor as float32); the IMP round follows from the step.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/optim/adamw.h"
#include "trainer/prune/imp_schedule.h"
#include "trainer/prune/mask.h"
#include "trainer/prune/prune_config.h"
#include "trainer/prune/schedule.h"

namespace kd::prune {

// The IMP step arithmetic of a prune section (schedule: imp).
ImpSchedule imp_of(const PruneSection& p);
// Throws InputError naming the prune.* key.
void check_prune_section(const PruneSection& p, const ModelSpec& spec, std::int64_t train_steps);
// With a quant section: the configured order against quant.fake_quant_start (InputError).
void check_prune_order(const PruneSection& p, std::int64_t fake_quant_start);

class Pruner {
 public:
  // seed and init_std: the random re-initialisation of IMP's random_reinit control.
  Pruner(const PruneSection& cfg, const LlamaLayout& layout, const ParamTable& table, std::uint64_t seed,
         double init_std);
  // Depth pruning (criterion: layers) measures block importance with this.
  using BlockScorer = std::function<std::vector<double>(const float* params)>;
  void set_block_scorer(BlockScorer f) { scorer_ = std::move(f); }

  // The target sparsity after `steps_done` updates.
  double sparsity_at(std::int64_t steps_done) const;
  // Before the optimizer: gradients of pruned weights are zero. grads holds the elements
  // [begin, end) (the optimizer's shard; the whole buffer with one rank).
  void mask_gradients(float* grads, std::size_t begin, std::size_t end) const { mask_.apply(grads, begin, end); }
  // At the start of a step: take the rewind snapshot when due; recompute the mask on
  // pruning steps (IMP: and rewind); zero weights and moments when it changed. Returns a
  // line saying what happened ("" when nothing did). params: the whole buffer (every
  // data-parallel rank holds it and computes the same mask); the optimizer's moments
  // cover its shard.
  std::string begin_step(std::int64_t steps_done, float* params, AdamW<float>& opt);
  // After the optimizer: zero the pruned weights (the whole buffer) and the moments of the
  // optimizer's shard again (m, v may be null).
  void after_update(float* params, const AdamW<float>& opt, float* m, float* v) const;
  // The learning-rate schedule's (position, length) for a step: IMP replays the first
  // round's schedule in every round; otherwise (steps_done, train_steps).
  std::pair<std::int64_t, std::int64_t> lr_position(std::int64_t steps_done, std::int64_t train_steps) const;
  // IMP: whether this step ends a round (its weights are that round's result).
  bool ends_round(std::int64_t steps_done) const;
  // IMP: the round whose training produced the weights after `steps_done` updates.
  int round_done(std::int64_t steps_done) const { return imp_ ? imp_->round_done(steps_done) : 0; }
  bool iterative() const { return imp_.has_value(); }

  const Mask& mask() const { return mask_; }
  double sparsity() const { return mask_.sparsity(table_, kPrunable); }
  const std::vector<float>& snapshot() const { return snapshot_; }

  // group -> tensors: "masks" and, once taken, "rewind".
  std::vector<std::pair<std::string, std::vector<ckpt::TensorView>>> checkpoint_groups() const;
  // InputError naming the tensor. steps_done: the checkpoint's step (whether a snapshot is due).
  void load_state(const ckpt::CheckpointReader& r, std::int64_t steps_done);

 private:
  bool pruning_step(std::int64_t steps_done) const;
  bool snapshot_rewind() const;  // whether rounds rewind to the snapshot
  PruneTarget target(double sparsity, const float* params) const;
  Mask random_like(const Mask& want, int round) const;
  PruneSection cfg_;
  const LlamaLayout& layout_;
  const ParamTable& table_;
  std::uint64_t seed_;
  double init_std_;
  std::optional<ImpSchedule> imp_;
  Mask mask_;
  std::vector<float> snapshot_;
  BlockScorer scorer_;
};

}  // namespace kd::prune
