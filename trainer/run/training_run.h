// One training run of `kdtrain train` or `kdtrain distill`, once its inputs are gathered and
// checked and its backend started (trainer/cli/train_cmd.cpp), as named phases: groups
// (run_groups.h), the teacher's targets, the run directory, the teacher's weights
// (run_teacher.h), resume (run_resume.h), then the step loop with its evaluations and
// checkpoints (run_recorder.h).
#pragma once

#include "trainer/dist/comm.h"
#include "trainer/setup/provenance.h"
#include "trainer/setup/run_inputs.h"

namespace kd {

// Every rank of the job runs it. `prov`: this run's provenance (inputs and runtime).
// Returns the exit code: 0 done, kExitPreempted after a checkpoint on SIGTERM/SIGUSR1.
int run_training(RunInputs& in, dist::Comm& world, int threads, const Provenance& prov);

}  // namespace kd
