#include "trainer/train/teacher_pretrain.h"

#include <cstring>

#include "trainer/train/trainer.h"

namespace kd {

double pretrain_teacher(const Config& cfg, std::int64_t steps, data::BatchSource& source,
                        float* teacher_params) {
  Config tc = cfg;
  tc.model = cfg.teacher.spec;
  tc.has_quant = false;  // the teacher trains in full precision, dense
  tc.has_prune = false;
  tc.has_teacher = false;
  tc.distill.feature.beta = 0;
  tc.distill.feature.layers.clear();
  tc.train.steps = steps;
  tc.train.seed = cfg.train.seed + 7;
  tc.optim.warmup_steps = std::min<std::int64_t>(cfg.optim.warmup_steps, steps);
  Trainer t(tc);
  double ce = 0;
  for (std::int64_t s = 0; s < steps; ++s) ce = t.step(source).loss.ce;
  std::memcpy(teacher_params, t.student_params(), sizeof(float) * t.student_table().total());
  return ce;
}

}  // namespace kd
