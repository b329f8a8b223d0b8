// The `parallel` section of a config: how MPI ranks share the work (tensor-parallel teacher
// groups, teacher ranks) and the watchdog's limits on every collective.
#pragma once

#include "base/schema.h"

namespace kd {

enum class TeacherSends { topk, logits };

struct ParallelSection {
  int tensor_parallel = 1;
  int teacher_ranks = 0;
  TeacherSends teacher_sends = TeacherSends::topk;
  double watchdog_min_s = 300;
  double watchdog_step_factor = 20;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("tensor_parallel", tensor_parallel,
            "distill: ranks per tensor-parallel teacher group (consecutive ranks; the teacher's KV groups and FFN "
            "neurons split across them, logits vocab-parallel); the student is replicated inside a group and data "
            "parallel across groups; 1 = off", between(1, 1 << 16));
    v.field("teacher_ranks", teacher_ranks,
            "distill: the last N MPI ranks run only the teacher and send each student rank, per micro-batch, the "
            "teacher's top-k logits (distill.top_k) and log-sum-exp; the student ranks never load the teacher "
            "(forward KL only, no feature loss); 0 = every rank runs its own teacher", between(0, 1 << 20));
    v.choice("teacher_sends", teacher_sends,
             "what teacher ranks send per micro-batch: topk (distill.top_k logits + log-sum-exp; forward KL only) or "
             "logits (the full logits in bfloat16, 2 bytes per position and vocabulary entry: any divergence; for "
             "small vocabularies)",
             Choices<TeacherSends>{{"topk", TeacherSends::topk}, {"logits", TeacherSends::logits}});
    v.field("watchdog_min_s", watchdog_min_s,
            "seconds any collective may wait at least before the watchdog aborts the job (exit 3, naming the "
            "collective and the late rank); also the limit before the first step's time is known", above(0));
    v.field("watchdog_step_factor", watchdog_step_factor,
            "the limit is this many times the slowest step so far, when that is above watchdog_min_s", above(0));
  }
};

}  // namespace kd
