// A build without NCCL (no CUDA toolkit, or no nccl.h / libnccl beside it): runtime.comm:
// nccl cannot start, and says why.
#include "trainer/dist/nccl_comm.h"
#include "base/errors.h"

namespace kd::dist {

bool nccl_built() { return false; }

std::unique_ptr<Comm> make_nccl_comm(Comm&) {
  throw RuntimeFailure("NCCL cannot start: this kdtrain was built without NCCL (CMake found no CUDA toolkit with "
                       "nccl.h and libnccl; docs/gpu.md)");
}

}  // namespace kd::dist
