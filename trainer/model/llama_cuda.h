// The Llama trunk's frozen (teacher) forward and the head on the CUDA backend: the same
// blocks as trainer/model/llama.cpp's frozen forward, on device pointers, the activations in
// one device allocation made once per (batch, seq) shape (nothing is allocated per call).
// The parameters are the same flat buffer and LlamaLayout offsets, uploaded once.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_ops.h"
#include "trainer/model/llama.h"

namespace kd {

struct CudaFrozenActivations {
  int batch = 0, seq = 0;
  float *x = nullptr, *xn = nullptr, *rstd = nullptr, *qkv = nullptr, *att = nullptr, *lse = nullptr, *gu = nullptr,
        *act = nullptr, *final_norm = nullptr, *rope_cos = nullptr, *rope_sin = nullptr;
  kern::cuda::DeviceBuffer<float> arena;
  void build(const ModelSpec& s, int batch, int seq);
};

void llama_forward_frozen_cuda(const LlamaLayout& lay, const float* params, const std::int32_t* tokens,
                               CudaFrozenActivations& a, kern::cuda::MathMode mode);
// logits (rows, V) = x · headᵀ
void head_forward_cuda(const LlamaLayout& lay, const float* params, float* logits, const float* x, int rows,
                       kern::cuda::MathMode mode);

}  // namespace kd
