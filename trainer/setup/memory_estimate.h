// Memory per rank of a distillation or training run, estimated before it starts
// (`kdtrain validate CONFIG --ranks N`): parameters, gradients, AdamW moments (ZeRO-1:
// divided by the data-parallel ranks), QAT and pruning state, the teacher (whole, a
// tensor-parallel shard, or none on student ranks with teacher ranks or a cache), and the
// activation arenas measured by laying them out without allocating.
#pragma once

#include <string>
#include <vector>

#include "trainer/config/config.h"

namespace kd {

struct MemoryLine {
  std::string what;
  double bytes = 0;
};
struct MemoryEstimate {
  std::string layout;             // "4 ranks: 2 data-parallel x 2 tensor-parallel"
  std::vector<MemoryLine> lines;  // a student rank's
  double total = 0;
  double teacher_rank_total = 0;  // with parallel.teacher_ranks: a teacher rank's
};

// cfg: validated, with the teacher's shape resolved (from its checkpoint). InputError when
// the ranks do not fit the config's parallel layout.
MemoryEstimate estimate_memory(const Config& cfg, int ranks);
std::string format_memory(const MemoryEstimate& e);

// What one process of this machine can hold: its physical memory, or RLIMIT_AS when that is
// lower. `source` says which ("this machine's physical memory", "RLIMIT_AS (ulimit -v)").
struct MemoryLimit {
  double bytes = 0;
  std::string source;
};
MemoryLimit process_memory_limit();

// InputError "{what} need X GiB, more than <the limit> (Y GiB): {advice}" when `bytes` exceed
// process_memory_limit(): a check before anything of that size is allocated.
void check_fits_in_memory(double bytes, const std::string& what, const std::string& advice);

// InputError, before any allocation, when one rank's estimate exceeds process_memory_limit():
// names the estimate, the limit, the largest items and the model sizes that make them. A
// config whose ranks do not fit its parallel layout is left to the checks that name that.
void check_memory_fits(const Config& cfg, int ranks, const std::string& where);

}  // namespace kd
