// NCCL behind the Comm interface (runtime.comm: nccl; docs/gpu.md). One NCCL communicator per
// group, on the GPU this rank uses (trainer/setup/backend.h picks it). The unique id is made by
// the group's rank 0 and broadcast over the MPI group the NCCL one wraps (`over`), which also
// carries what NCCL has no call for: barrier, split's bookkeeping, the watchdog's questions.
//
// Buffers: Comm's collectives take host spans (the trainer's master weights and gradients live
// on the host, docs/gpu.md), so each call stages through device buffers grown once. Uneven
// counts (_v) come from NCCL's equal-count calls: every rank's part padded to the largest.
// NCCL's own calls are not under the watchdog: a rank stopped inside one hangs the others until
// the job's time limit (the MPI calls around them are watched).
#pragma once

#include <memory>
#include <string>

#include "trainer/dist/comm.h"

namespace kd::dist {

// Whether this build has NCCL.
bool nccl_built();
// A Comm over the same ranks as `over`, its collectives on NCCL. `over` must outlive it.
// Throws RuntimeFailure ("NCCL cannot start: ...") when NCCL or the GPU is not usable; every
// rank of the group throws together (the failure is agreed over `over`).
std::unique_ptr<Comm> make_nccl_comm(Comm& over);

}  // namespace kd::dist
