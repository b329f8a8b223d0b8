// Trains a teacher from scratch on labels (CE only), for synthetic tasks where no
// trained teacher exists yet. Writes the trained weights into `teacher_params`, which
// must be laid out by a LlamaLayout of cfg.teacher.
#pragma once

#include <cstdint>

#include "data/batch_source.h"
#include "trainer/config/config.h"

namespace kd {

// Returns the teacher's CE on its last training step.
double pretrain_teacher(const Config& cfg, std::int64_t steps, data::BatchSource& source,
                        float* teacher_params);

}  // namespace kd
