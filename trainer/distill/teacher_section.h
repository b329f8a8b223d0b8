// The `teacher` section of a config: the frozen teacher a distillation runs.
#pragma once

#include <string>

#include "base/schema.h"
#include "trainer/model/model_section.h"

namespace kd {

// The frozen teacher: a kdtrain checkpoint (its shape is read from it), or a shape given
// here (randomly initialised: benchmarks, synthetic tasks with teacher_pretrain_steps).
struct TeacherSection {
  std::string checkpoint;
  std::string cache;
  bool bf16 = false;
  ModelSpec spec;
  template <class V>
  void visit(V& v) {
    v.field("checkpoint", checkpoint, "kdtrain checkpoint of a trained teacher (its model shape overrides the keys below)");
    v.field("cache", cache,
            "a teacher cache made by kdtrain cache-teacher: distill reads its top-k logits instead of running a "
            "teacher (forward KL only; no feature loss); with checkpoint also set, the cache must be of that teacher");
    v.field("bf16", bf16,
            "hold the checkpoint teacher's linear weights in bfloat16 (converted to float32 per GEMM tile): about half "
            "its memory; its logits change by the rounding of the weights");
    kd::visit(v, spec);
  }
};

}  // namespace kd
