// The groups phase of a training run: the communicators its ranks work in. With teacher
// ranks (parallel.teacher_ranks) the students form a data-parallel group of their own; with
// a tensor-parallel teacher (parallel.tensor_parallel) consecutive ranks share a teacher and
// a micro-batch, and the ranks with the same place in their groups form the data-parallel
// groups. Collective over the world.
#pragma once

#include <memory>

#include "trainer/config/config.h"
#include "trainer/dist/comm.h"
#include "trainer/teacher/teacher_ranks.h"

namespace kd {

struct RunGroups {
  TeacherRanks layout;
  bool teacher_rank = false;                   // this rank only serves the teacher
  std::unique_ptr<dist::Comm> student_group;   // teacher ranks: the students (or the teachers)
  std::unique_ptr<dist::Comm> tp_group;        // tensor parallel: the ranks sharing a teacher
  std::unique_ptr<dist::Comm> dp_across;       // tensor parallel: the same place in every group
  dist::Comm* dp = nullptr;                    // the data-parallel group the student reduces over
  // Every collective of the run waits at most `seconds` (the watchdog's limit).
  void set_timeout(dist::Comm& world, double seconds) const;
};

// InputError when the ranks do not divide into the configured groups, or leave a
// data-parallel rank without a sequence of each micro-batch.
RunGroups make_run_groups(const Config& cfg, dist::Comm& world);

}  // namespace kd
