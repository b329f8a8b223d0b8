#include "trainer/run/trainer_state.h"

#include <algorithm>

#include "trainer/dist/comm.h"
#include "trainer/prune/pruner.h"
#include "trainer/quant/qat.h"

namespace kd {

void add_trainer_tensors(Trainer& trainer, bool with_teacher, ckpt::CheckpointContents& c) {
  const Trainer::MomentShard ms = trainer.moment_shard();
  // the table's tensors cut to this rank's shard [ms.begin, ms.end); base[0] is element `first`
  auto shard_views = [&](const float* base, std::size_t first) {
    std::vector<ckpt::TensorView> v;
    for (const auto& t : trainer.student_table().tensors()) {
      const std::size_t b = std::clamp(ms.begin, t.offset, t.offset + t.numel);
      const std::size_t e = std::max(b, std::clamp(ms.end, t.offset, t.offset + t.numel));
      v.push_back({t.name, t.shape, base + (b - first), ckpt::DType::f32, std::int64_t(b - t.offset),
                   std::int64_t(e - t.offset)});
    }
    return v;
  };
  const int rank = trainer.comm().rank(), world = trainer.comm().size();
  auto split = [&](std::vector<ckpt::TensorView> v) {  // replicated on every rank: each writes a share
    ckpt::split_among_ranks(v, rank, world);
    return v;
  };
  c.tensors["model"] = shard_views(trainer.student_params(), 0);
  c.tensors["adam_m"] = shard_views(ms.m, ms.begin);
  c.tensors["adam_v"] = shard_views(ms.v, ms.begin);
  if (trainer.qat()) c.tensors["quant"] = split(trainer.qat()->state_tensors());
  if (trainer.pruner()) {
    for (auto& [group, list] : trainer.pruner()->checkpoint_groups()) c.tensors[group] = split(std::move(list));
  }
  if (with_teacher) {
    std::vector<ckpt::TensorView> v;
    for (const auto& t : trainer.teacher_table().tensors()) v.push_back({t.name, t.shape, trainer.teacher_params() + t.offset});
    c.tensors["teacher"] = split(std::move(v));
  }
  // All of it is the trainer's own memory, changed only inside Trainer::step after its state
  // gate (before the update, or at the step's start when QAT or pruning write earlier): a
  // background checkpoint reads it in place, copying nothing (no second copy of the state).
  for (auto& [group, list] : c.tensors) {
    for (ckpt::TensorView& t : list) t.live = true;
  }
  add_state_sums(trainer, c);
}

void add_state_sums(const Trainer& trainer, ckpt::CheckpointContents& c) {
  c.known_crc32.clear();
  if (const AdamW<float>::StateSums* sums = trainer.state_sums()) c.known_crc32 = {&sums->params, &sums->m, &sums->v};
}

ckpt::StateCopy checkpoint_state_copy(CheckpointCopy copy) {
  switch (copy) {
    case CheckpointCopy::first: return ckpt::StateCopy::first;
    case CheckpointCopy::none: return ckpt::StateCopy::none;
    case CheckpointCopy::at_update: break;
  }
  return ckpt::StateCopy::at_update;
}

void read_model_and_moments(const ckpt::CheckpointReader& r, Trainer& trainer, bool skip_missing_quant) {
  const Trainer::MomentShard ms = trainer.moment_shard();
  for (const char* group : {"model", "adam_m", "adam_v"}) r.expect_only(group, trainer.student_table().names(), "the student");
  // group by group, in the order the writer lays them out (groups by name, then the table's
  // order): one sweep through the file, which from disk streams where tensor by tensor
  // across the three groups jumped back and forth
  std::vector<const TensorInfo*> stored;
  for (const auto& t : trainer.student_table().tensors()) {
    if (!(skip_missing_quant && t.name.rfind("quant.", 0) == 0 && !r.has_tensor("model", t.name))) stored.push_back(&t);
  }
  const std::pair<const char*, float*> groups[] = {{"adam_m", ms.m}, {"adam_v", ms.v}, {"model", nullptr}};
  for (const auto& [group, moments] : groups) {
    for (const auto* t : stored) {
      if (moments == nullptr) {
        r.read(group, t->name, t->shape, trainer.student_params() + t->offset);
        continue;
      }
      const std::size_t b = std::max(ms.begin, t->offset), e = std::min(ms.end, t->offset + t->numel);
      if (b < e) r.read_range(group, t->name, t->shape, ckpt::DType::f32, b - t->offset, e - t->offset, moments + (b - ms.begin));
    }
  }
}

}  // namespace kd
