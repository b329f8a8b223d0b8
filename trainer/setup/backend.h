// Starting the compute backend a config asks for (runtime.backend), before any work: a CUDA
// run on a machine (or a build) that cannot run it stops here with a message naming the key
// and why, exit 3 (RuntimeFailure: the machine, not the config, is at fault; the same
// config runs where a GPU is).
#pragma once

#include <memory>
#include <string>

#include "trainer/config/config.h"
#include "trainer/dist/comm.h"

namespace kd {

// Throws RuntimeFailure when the backend cannot start; otherwise makes it ready (CUDA: picks
// GPU local_rank mod the GPUs visible) and returns a line for the log ("" for the CPU).
std::string start_backend(const Config& cfg, int local_rank);
// The Comm the trainer's data-parallel collectives go through (runtime.comm): an NCCL Comm
// over dp, or null for dp itself (MPI, or one rank with auto). Collective over dp. Throws
// RuntimeFailure (exit 3) when comm: nccl cannot start; with auto, `note` says why MPI is used.
std::unique_ptr<dist::Comm> make_trainer_comm(const Config& cfg, dist::Comm& dp, std::string* note);
// This process's rank among the ranks on its node (OpenMPI, SLURM), 0 when not launched.
int node_local_rank();
// Whether this build has the CUDA backend.
bool cuda_built();

}  // namespace kd
