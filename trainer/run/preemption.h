// Preemption: SIGTERM and SIGUSR1 (what SLURM sends before a time limit or a preemption)
// ask the run to finish its current step, write a checkpoint and exit with
// kExitPreempted (99), which a batch script takes as "requeue me". The handler only sets a
// flag; a second signal while the checkpoint is written changes nothing (the write is
// atomic and the flag is already set). Data-parallel ranks agree on the step to stop at
// (the flag is max-reduced after every step).
//
// The handlers are installed as the first statement of main (trainer/cli/main.cpp), before
// MPI and the command line, so a signal in the first milliseconds is a flag too, not a
// death by signal: a training run that sees it before its first step exits 99 without
// writing anything; every other command ends with 99 at once if one arrived while the
// command line was read, and otherwise gets the default action back
// (release_preemption_handlers).
#pragma once

namespace kd {

inline constexpr int kExitPreempted = 99;

// Installs the handlers (idempotent).
void install_preemption_handlers();
// For commands that do not checkpoint: SIGTERM and SIGUSR1 end the process again (default
// action). Returns true when one already arrived (the caller exits kExitPreempted).
bool release_preemption_handlers();
// Whether a preemption signal arrived, and which: the FIRST one ("SIGTERM" / "SIGUSR1"; null
// if none). Later signals never replace it. Two that are pending together are taken in
// signal-number order (SIGUSR1 first): the kernel keeps no order between them.
bool preemption_requested();
const char* preemption_signal();

}  // namespace kd
