#include "trainer/setup/backend.h"

#include <cstdlib>

#include <fmt/format.h>

#include "trainer/dist/nccl_comm.h"
#include "base/errors.h"
#ifdef KDTRAIN_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace kd {

bool cuda_built() {
#ifdef KDTRAIN_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int node_local_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    if (const char* s = std::getenv(v); s != nullptr && *s != '\0') return std::atoi(s);
  }
  return 0;
}

std::string start_backend(const Config& cfg, int local_rank) {
  if (cfg.runtime.backend == Backend::cpu) return {};
  const bool nccl = cfg.runtime.comm == CommKind::nccl;
  if (nccl && !dist::nccl_built()) {
    throw RuntimeFailure("runtime.comm: nccl: NCCL cannot start: this kdtrain was built without NCCL (CMake found no "
                         "nccl.h and libnccl beside the CUDA toolkit; docs/gpu.md), or set runtime.comm: mpi");
  }
#ifdef KDTRAIN_HAVE_CUDA
  const std::string why = kern::cuda::unavailable_reason();
  if (!why.empty() && nccl) {
    throw RuntimeFailure(fmt::format("runtime.comm: nccl: NCCL cannot start: no usable GPU on this machine: {}", why));
  }
  if (!why.empty()) {
    throw RuntimeFailure(fmt::format("runtime.backend: cuda: no usable GPU on this machine: {} (run where a GPU is, "
                                     "or set runtime.backend: cpu)", why));
  }
  return "backend: cuda on " + kern::cuda::select_device(local_rank);
#else
  (void)local_rank;
  throw RuntimeFailure("runtime.backend: cuda: this kdtrain was built without the CUDA backend (CMake found no CUDA "
                       "toolkit; see docs/gpu.md), or set runtime.backend: cpu");
#endif
}

std::unique_ptr<dist::Comm> make_trainer_comm(const Config& cfg, dist::Comm& dp, std::string* note) {
  const CommKind kind = cfg.runtime.comm;
  if (cfg.runtime.backend == Backend::cpu || kind == CommKind::mpi) return nullptr;
  if (kind == CommKind::automatic && dp.size() == 1) return nullptr;  // nothing to communicate
  try {
    return dist::make_nccl_comm(dp);
  } catch (const RuntimeFailure& e) {
    if (kind == CommKind::nccl) throw RuntimeFailure(fmt::format("runtime.comm: nccl: {}", e.what()));
    if (note) *note = fmt::format("runtime.comm: auto: MPI for the collectives ({})", e.what());
    return nullptr;
  }
}

}  // namespace kd
