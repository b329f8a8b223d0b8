// The teacher phase of a training run: where the distillation targets come from. In two
// parts, because input errors must come before the run directory exists and the teacher's
// weights are only moved into the trainer after it does.
#pragma once

#include "trainer/run/run_groups.h"
#include "trainer/setup/run_inputs.h"
#include "trainer/train/trainer.h"
#include "trainer/util/progress.h"

namespace kd {

// Before the run directory: a teacher cache (teacher.cache) or the teacher ranks become the
// trainer's top-k targets when the run reads its teacher that way. InputError when a cache
// does not belong to the run.
void connect_teacher_targets(RunInputs& in, Trainer& trainer, dist::Comm& world, const RunGroups& g);

// After: the teacher's weights into the trainer — whole, this rank's tensor-parallel shard
// read straight from the checkpoint, or pretrained here on labels
// (distill.teacher_pretrain_steps) — and a line saying which.
void load_teacher(RunInputs& in, Trainer& trainer, const RunGroups& g, Progress& progress);

}  // namespace kd
