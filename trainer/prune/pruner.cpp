#include "trainer/prune/pruner.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "base/errors.h"

namespace kd::prune {

ImpSchedule imp_of(const PruneSection& p) {
  return {p.rounds, p.round_steps, p.rate, p.rewind == RewindKind::init ? 0 : p.rewind_step};
}

namespace {

GradualSchedule gradual_of(const PruneSection& p) { return {p.initial, p.sparsity, p.start, p.end, p.every}; }
PruneTarget target_of(const PruneSection& p, double sparsity) { return {p.criterion, sparsity, p.n, p.m, p.targets, {}}; }

// The last step whose start changes the mask.
std::int64_t last_pruning_step(const PruneSection& p) {
  switch (p.schedule) {
    case PruneScheduleKind::oneshot: return p.at;
    case PruneScheduleKind::gradual: return p.end;
    case PruneScheduleKind::imp: return imp_of(p).round_start(p.rounds);
  }
  return 0;
}

}  // namespace

void check_prune_section(const PruneSection& p, const ModelSpec& spec, std::int64_t train_steps) {
  check_target(target_of(p, p.sparsity), spec, "prune");
  KD_CHECK_INPUT(p.criterion != Criterion::hold || p.schedule == PruneScheduleKind::oneshot,
                 "prune.criterion hold keeps the zeros the weights start with: it takes prune.schedule oneshot (at "
                 "prune.at, usually 0), not a schedule that prunes more");
  switch (p.schedule) {
    case PruneScheduleKind::gradual:
      check_schedule(gradual_of(p), "prune");
      break;
    case PruneScheduleKind::oneshot:
      KD_CHECK_INPUT(p.at < train_steps, "prune.at ({}) is not before train.steps ({}): the run would never prune",
                     p.at, train_steps);
      break;
    case PruneScheduleKind::imp:
      KD_CHECK_INPUT(p.criterion == Criterion::magnitude_global || p.criterion == Criterion::magnitude_layer,
                     "prune.criterion must be magnitude_global or magnitude_layer with prune.schedule: imp "
                     "(iterative magnitude pruning)");
      KD_CHECK_INPUT(p.rewind != RewindKind::init || p.rewind_step == 0,
                     "prune.rewind_step is {} but prune.rewind is init, which rewinds to step 0: use rewind: step "
                     "(late rewinding) or drop rewind_step", p.rewind_step);
      check_imp(imp_of(p), train_steps, "prune");
      break;
  }
}

void check_prune_order(const PruneSection& p, std::int64_t fake_quant_start) {
  if (p.criterion == Criterion::hold) return;  // the mask never changes: any quantization start is after it
  KD_CHECK_INPUT(p.schedule != PruneScheduleKind::imp,
                 "prune.schedule: imp does not combine with a quant section (the rewind would restart the "
                 "quantizers' observers); quantize the winning ticket afterwards: kdtrain ptq, or a QAT run with "
                 "train.init_from: the ticket and a one-shot magnitude prune at step 0 to its sparsity");
  const std::int64_t last = last_pruning_step(p);
  if (p.order == PruneOrder::prune_distill_quantize) {
    KD_CHECK_INPUT(fake_quant_start > last,
                   "quant.fake_quant_start ({}) is not after the last pruning step ({}): prune.order "
                   "prune_distill_quantize (the default) distills the pruned model in float before quantizing. Start "
                   "the quantizers later, or set prune.order to prune_quantize_distill or concurrent",
                   fake_quant_start, last);
  } else if (p.order == PruneOrder::prune_quantize_distill) {
    KD_CHECK_INPUT(fake_quant_start == last,
                   "quant.fake_quant_start ({}) is not the last pruning step ({}): prune.order prune_quantize_distill "
                   "quantizes the pruned model right away and distills it quantized",
                   fake_quant_start, last);
  }
}

Pruner::Pruner(const PruneSection& cfg, const LlamaLayout& layout, const ParamTable& table, std::uint64_t seed,
               double init_std)
    : cfg_(cfg), layout_(layout), table_(table), seed_(seed), init_std_(init_std),
      mask_(Mask::dense(table.total())) {
  if (cfg_.schedule == PruneScheduleKind::imp) imp_ = imp_of(cfg_);
}

double Pruner::sparsity_at(std::int64_t steps_done) const {
  switch (cfg_.schedule) {
    case PruneScheduleKind::gradual: return gradual_sparsity(gradual_of(cfg_), steps_done);
    case PruneScheduleKind::oneshot: return steps_done >= cfg_.at ? cfg_.sparsity : 0.0;
    case PruneScheduleKind::imp: return imp_->sparsity_of_round(imp_->round_of(steps_done));
  }
  return 0.0;
}

bool Pruner::pruning_step(std::int64_t steps_done) const {
  switch (cfg_.schedule) {
    case PruneScheduleKind::gradual: return is_pruning_step(gradual_of(cfg_), steps_done);
    case PruneScheduleKind::oneshot: return steps_done == cfg_.at;
    case PruneScheduleKind::imp: return imp_->is_boundary(steps_done);
  }
  return false;
}

bool Pruner::snapshot_rewind() const {
  return imp_ && cfg_.rewind != RewindKind::lr && cfg_.control != ImpControl::random_reinit;
}

bool Pruner::ends_round(std::int64_t steps_done) const {
  return imp_ && (imp_->is_boundary(steps_done) || steps_done == imp_->total_steps());
}

std::pair<std::int64_t, std::int64_t> Pruner::lr_position(std::int64_t steps_done, std::int64_t train_steps) const {
  if (!imp_) return {steps_done, train_steps};
  return {imp_->lr_position(steps_done), imp_->round_steps};
}

PruneTarget Pruner::target(double sparsity, const float* params) const {
  PruneTarget t = target_of(cfg_, sparsity);
  if (cfg_.criterion == Criterion::layers) {
    KD_ASSERT(scorer_, "depth pruning without a block scorer");
    t.block_importance = scorer_(params);
  }
  return t;
}

// A random mask with want's pruned count in every tensor; what is pruned stays pruned.
// The draw depends on the seed and the round only, so a resumed run draws the same.
Mask Pruner::random_like(const Mask& want, int round) const {
  std::mt19937_64 rng(seed_ ^ (0x9e3779b97f4a7c15ull * std::uint64_t(round + 1)));
  std::vector<std::uint8_t> bytes(mask_.data(), mask_.data() + mask_.size());
  for (const auto& t : table_.tensors()) {
    if (!t.has(kPrunable)) continue;
    const std::size_t need = want.pruned(t.offset, t.offset + t.numel), have = mask_.pruned(t.offset, t.offset + t.numel);
    if (need <= have) continue;
    std::vector<std::size_t> kept;
    for (std::size_t i = t.offset; i < t.offset + t.numel; ++i) {
      if (mask_.kept(i)) kept.push_back(i);
    }
    for (std::size_t j = 0; j < need - have; ++j) {  // partial Fisher–Yates
      std::uniform_int_distribution<std::size_t> pick(j, kept.size() - 1);
      std::swap(kept[j], kept[pick(rng)]);
      bytes[kept[j]] = 0;
    }
  }
  return Mask::from_bytes(std::move(bytes), "random mask");
}

std::string Pruner::begin_step(std::int64_t steps_done, float* params, AdamW<float>& opt) {
  if (snapshot_rewind() && steps_done == imp_->rewind_to && snapshot_.empty()) {
    snapshot_.assign(params, params + table_.total());
  }
  if (!pruning_step(steps_done)) return {};
  Mask next = prune(target(sparsity_at(steps_done), params), layout_, table_, params, mask_, "prune");
  if (!imp_) {
    if (next == mask_) return {};  // between changes after_update keeps pruned positions at zero
    mask_ = std::move(next);
    after_update(params, opt, opt.m(), opt.v());
    return fmt::format("prune: step {}: {:.2f}% of the linear weights pruned", steps_done, 100.0 * sparsity());
  }
  const int round = imp_->round_of(steps_done);
  mask_ = cfg_.control == ImpControl::random_mask ? random_like(next, round) : std::move(next);
  const char* how = "";
  if (cfg_.control == ImpControl::random_reinit) {
    layout_.init(params, seed_ + 1000003ull * std::uint64_t(round), init_std_);
    how = "weights drawn afresh (random_reinit control)";
  } else if (cfg_.rewind == RewindKind::lr) {
    how = "weights kept, learning rate rewound";
  } else {
    KD_ASSERT(snapshot_.size() == table_.total(), "IMP round {} without a rewind snapshot", round);
    std::copy(snapshot_.begin(), snapshot_.end(), params);
    how = cfg_.rewind == RewindKind::init ? "weights rewound to initialization" : "weights rewound";
  }
  std::fill_n(opt.m(), opt.shard_size(), 0.0f);
  std::fill_n(opt.v(), opt.shard_size(), 0.0f);
  opt.set_steps_taken(0);
  after_update(params, opt, nullptr, nullptr);
  return fmt::format("prune: IMP round {}/{} at step {}: {:.2f}% of the linear weights pruned{}; {} to step {}", round,
                     cfg_.rounds, steps_done, 100.0 * sparsity(),
                     cfg_.control == ImpControl::random_mask ? " (random mask control)" : "", how, imp_->rewind_to);
}

void Pruner::after_update(float* params, const AdamW<float>& opt, float* m, float* v) const {
  mask_.apply(params, mask_.size());
  const std::size_t begin = opt.shard_begin(), end = begin + opt.shard_size();
  if (m) mask_.apply(m, begin, end);
  if (v) mask_.apply(v, begin, end);
}

std::vector<std::pair<std::string, std::vector<ckpt::TensorView>>> Pruner::checkpoint_groups() const {
  std::vector<std::pair<std::string, std::vector<ckpt::TensorView>>> out(1);
  out[0].first = "masks";
  for (const auto& t : table_.tensors()) {
    if (t.has(kPrunable)) out[0].second.push_back({t.name, t.shape, mask_.data() + t.offset, ckpt::DType::u8});
  }
  if (!snapshot_.empty()) {
    out.emplace_back("rewind", std::vector<ckpt::TensorView>{});
    for (const auto& t : table_.tensors()) out[1].second.push_back({t.name, t.shape, snapshot_.data() + t.offset});
  }
  return out;
}

void Pruner::load_state(const ckpt::CheckpointReader& r, std::int64_t steps_done) {
  std::vector<std::uint8_t> bytes(table_.total(), 1);
  for (const auto& t : table_.tensors()) {
    if (!t.has(kPrunable)) continue;
    KD_CHECK_INPUT(r.has_tensor("masks", t.name), "{}: no pruning mask for \"{}\" (group \"masks\"): the checkpoint "
                   "was written without a prune section", r.path(), t.name);
    r.read_typed("masks", t.name, t.shape, ckpt::DType::u8, bytes.data() + t.offset);
  }
  mask_ = Mask::from_bytes(std::move(bytes), r.path() + ": masks");
  snapshot_.clear();
  if (snapshot_rewind() && steps_done > imp_->rewind_to) {
    snapshot_.resize(table_.total());
    for (const auto& t : table_.tensors()) {
      KD_CHECK_INPUT(r.has_tensor("rewind", t.name), "{}: no rewind snapshot of \"{}\" (group \"rewind\"), which IMP "
                     "needs after step {}", r.path(), t.name, imp_->rewind_to);
      r.read("rewind", t.name, t.shape, snapshot_.data() + t.offset);
    }
  }
}

}  // namespace kd::prune
