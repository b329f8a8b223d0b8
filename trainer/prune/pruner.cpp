#include "trainer/prune/pruner.h"

#include <fmt/format.h>

#include "trainer/util/errors.h"

namespace kd::prune {

namespace {
GradualSchedule gradual_of(const PruneSection& p) { return {p.initial, p.sparsity, p.start, p.end, p.every}; }
PruneTarget target_of(const PruneSection& p, double sparsity) { return {p.criterion, sparsity, p.n, p.m}; }
}  // namespace

void check_prune_section(const PruneSection& p, const ModelSpec& spec, std::int64_t train_steps) {
  check_target(target_of(p, p.sparsity), spec, "prune");
  if (p.schedule == PruneScheduleKind::gradual) {
    check_schedule(gradual_of(p), "prune");
  } else {
    KD_CHECK_INPUT(p.at < train_steps, "prune.at ({}) is not before train.steps ({}): the run would never prune", p.at,
                   train_steps);
  }
}

Pruner::Pruner(const PruneSection& cfg, const LlamaLayout& layout, const ParamTable& table)
    : cfg_(cfg), layout_(layout), table_(table), mask_(Mask::dense(table.total())) {}

double Pruner::sparsity_at(std::int64_t steps_done) const {
  if (cfg_.schedule == PruneScheduleKind::gradual) return gradual_sparsity(gradual_of(cfg_), steps_done);
  return steps_done >= cfg_.at ? cfg_.sparsity : 0.0;
}

bool Pruner::pruning_step(std::int64_t steps_done) const {
  if (cfg_.schedule == PruneScheduleKind::gradual) return is_pruning_step(gradual_of(cfg_), steps_done);
  return steps_done == cfg_.at;
}

bool Pruner::begin_step(std::int64_t steps_done, float* params, float* m, float* v) {
  bool changed = false;
  if (pruning_step(steps_done)) {
    Mask next = prune(target_of(cfg_, sparsity_at(steps_done)), layout_, table_, params, mask_, "prune");
    changed = !(next == mask_);
    mask_ = std::move(next);
  }
  // between pruning steps after_update already keeps the pruned positions at zero
  if (changed) after_update(params, m, v);
  return changed;
}

void Pruner::after_update(float* params, float* m, float* v) const {
  const std::size_t n = mask_.size();
  mask_.apply(params, n);
  if (m) mask_.apply(m, n);
  if (v) mask_.apply(v, n);
}

std::vector<ckpt::TensorView> Pruner::state_tensors() const {
  std::vector<ckpt::TensorView> out;
  for (const auto& t : table_.tensors()) {
    if (t.has(kPrunable)) out.push_back({t.name, t.shape, mask_.data() + t.offset, ckpt::DType::u8});
  }
  return out;
}

void Pruner::load_state(const ckpt::CheckpointReader& r) {
  std::vector<std::uint8_t> bytes(table_.total(), 1);
  for (const auto& t : table_.tensors()) {
    if (!t.has(kPrunable)) continue;
    KD_CHECK_INPUT(r.has_tensor("masks", t.name), "{}: no pruning mask for \"{}\" (group \"masks\"): the checkpoint "
                   "was written without a prune section", r.path(), t.name);
    r.read_typed("masks", t.name, t.shape, ckpt::DType::u8, bytes.data() + t.offset);
  }
  mask_ = Mask::from_bytes(std::move(bytes), r.path() + ": masks");
}

}  // namespace kd::prune
