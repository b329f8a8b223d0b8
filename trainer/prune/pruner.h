// Pruning inside a training run: the mask, when it is recomputed, and keeping pruned
// weights exactly zero. At the start of a step t that is a pruning step (t updates done)
// the mask is recomputed from the current weights; gradients are masked before the
// optimizer; after every update the mask is applied to the weights and to both Adam
// moments, so a pruned weight stays 0.0 and carries no optimizer state.
// The mask is checkpointed (group "masks", one uint8 dataset per prunable tensor).
#pragma once

#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/prune/mask.h"
#include "trainer/prune/prune_config.h"
#include "trainer/prune/schedule.h"

namespace kd::prune {

// Throws InputError naming the prune.* key.
void check_prune_section(const PruneSection& p, const ModelSpec& spec, std::int64_t train_steps);

class Pruner {
 public:
  Pruner(const PruneSection& cfg, const LlamaLayout& layout, const ParamTable& table);
  // The target sparsity after `steps_done` updates.
  double sparsity_at(std::int64_t steps_done) const;
  // Before the optimizer: gradients of pruned weights are zero.
  void mask_gradients(float* grads) const { mask_.apply(grads, mask_.size()); }
  // At the start of a step: recompute the mask on pruning steps; zero weights and moments
  // when it changed.
  // Returns true when the mask changed.
  bool begin_step(std::int64_t steps_done, float* params, float* m, float* v);
  // After the optimizer: zero the pruned weights and moments again.
  void after_update(float* params, float* m, float* v) const;
  const Mask& mask() const { return mask_; }
  double sparsity() const { return mask_.sparsity(table_, kPrunable); }

  std::vector<ckpt::TensorView> state_tensors() const;
  void load_state(const ckpt::CheckpointReader& r);  // InputError naming the tensor

 private:
  bool pruning_step(std::int64_t steps_done) const;
  PruneSection cfg_;
  const LlamaLayout& layout_;
  const ParamTable& table_;
  Mask mask_;
};

}  // namespace kd::prune
