// The trainer's state as checkpoint tensors, shared by the training run (save, resume) and
// `kdtrain bench --checkpoint`: each data-parallel rank writes and reads only its ZeRO shard
// of the model and the Adam moments, and an even share of the replicated groups.
#pragma once

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/train/trainer.h"

namespace kd {

// Adds model, adam_m, adam_v (this rank's shard), quant and the pruner's groups and, when
// `with_teacher`, the teacher (an even share each) to `c`.
void add_trainer_tensors(Trainer& trainer, bool with_teacher, ckpt::CheckpointContents& c);
// The CRC-32s the last step's update took of the weights' shard and the moments, when the
// run asked for them (Trainer::sum_next_update) and the state is still as it left them:
// c.known_crc32 (cleared otherwise). add_trainer_tensors calls it.
void add_state_sums(const Trainer& trainer, ckpt::CheckpointContents& c);

// train.checkpoint_copy as the background writer's mode.
ckpt::StateCopy checkpoint_state_copy(CheckpointCopy copy);

// Reads the whole model and this rank's shard of the moments. `skip_missing_quant`: LSQ
// scales ("quant." tensors) absent from the checkpoint keep their values (a float run
// resumed as QAT).
void read_model_and_moments(const ckpt::CheckpointReader& r, Trainer& trainer, bool skip_missing_quant);

}  // namespace kd
