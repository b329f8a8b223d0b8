// Preemption: SIGTERM and SIGUSR1 (what SLURM sends before a time limit or a preemption)
// ask the run to finish its current step, write a checkpoint and exit with
// kExitPreempted (99), which a batch script takes as "requeue me". The handler only sets a
// flag; a second signal while the checkpoint is written changes nothing (the write is
// atomic and the flag is already set). Data-parallel ranks agree on the step to stop at
// (the flag is max-reduced after every step).
#pragma once

namespace kd {

inline constexpr int kExitPreempted = 99;

// Installs the handlers (idempotent).
void install_preemption_handlers();
// Whether a preemption signal arrived, and which ("SIGTERM" / "SIGUSR1"; null if none).
bool preemption_requested();
const char* preemption_signal();

}  // namespace kd
