// Internal to kernels/cuda: block-wide reductions in a fixed tree order (deterministic for a
// block size). blockDim.x must be a power of two <= 1024 and `shared` hold blockDim.x values.
#pragma once

namespace kd::kern::cuda {

template <class T, class Op>
__device__ T block_reduce(T v, T* shared, Op op) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] = op(shared[threadIdx.x], shared[threadIdx.x + s]);
    __syncthreads();
  }
  const T total = shared[0];
  __syncthreads();
  return total;
}

struct Add {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  template <class T>
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

template <class T>
__device__ T block_sum(T v, T* shared) { return block_reduce(v, shared, Add{}); }
template <class T>
__device__ T block_max(T v, T* shared) { return block_reduce(v, shared, Max{}); }

}  // namespace kd::kern::cuda
