// Internal to kernels/cuda: CUDA and cuBLAS status checks that throw RuntimeFailure naming
// the call, and the launch-size helpers.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <cstdint>

namespace kd::kern::cuda {

[[noreturn]] void throw_cuda(const char* what, cudaError_t e);
[[noreturn]] void throw_cublas(const char* what, cublasStatus_t s);
[[noreturn]] void throw_invalid(const char* what);  // a caller's broken precondition

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(what, e);
}
inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_cublas(what, s);
}
// After a kernel launch: a bad configuration shows up here, an execution fault at the next sync.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline unsigned blocks_for(std::size_t n, unsigned threads) {
  const std::size_t b = (n + threads - 1) / threads;
  return unsigned(b < 65535u * 32u ? b : 65535u * 32u);  // grid-stride loops cover the rest
}

cublasHandle_t cublas();

// Device scratch for the process, one buffer per use, grown when a call needs more and never
// shrunk: once the step's largest call has run, no op allocates (ops run in order on one
// stream, so a buffer is free for the next call as soon as this one is enqueued).
enum class Scratch { reductions, loss_rows, attention, gemm_bf16, count };
void* scratch(Scratch use, std::size_t bytes);
template <class T>
T* scratch_of(Scratch use, std::size_t n) {
  return static_cast<T*>(scratch(use, n * sizeof(T)));
}
// n doubles on the device, downloaded and added in index order (a deterministic total).
double sum_in_order(const double* device, std::size_t n);  // one handle per process (per device 0), created on first use

}  // namespace kd::kern::cuda
