// Where a student's top-k teacher targets come from when the teacher is not in its
// process: a teacher cache (trainer/distill/teacher_cache.h) or teacher ranks
// (trainer/teacher/teacher_ranks.h). The trainer asks once per micro-batch, in order.
#pragma once

#include <cstdint>
#include <string>

#include "trainer/distill/teacher_topk.h"

namespace kd {

class TargetSource {
 public:
  virtual ~TargetSource() = default;
  // The targets of `batch` sequences of `seq` tokens, the first of them sequence `first` of
  // the global stream, whose tokens are given (a source may check them).
  virtual void fetch(std::int64_t first, int batch, int seq, const std::int32_t* tokens, TopKTargets& out) = 0;
  // For the log: "the cache DIR (top-64 of ...)".
  virtual std::string describe() const = 0;
};

}  // namespace kd
