// The Llama trunk on the CUDA backend: llama_trunk.h's forward and backward instantiated
// with CudaOps (kernels/cuda on device pointers), so the GPU runs the block structure the
// CPU tests check. Activations live in one device allocation per (batch, seq) shape made
// before the step loop; the parameters are the same flat buffer and LlamaLayout offsets.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "trainer/model/llama.h"

namespace kd {

// kernels/cuda as llama_trunk.h's ops; GEMMs in `mode`.
struct CudaOps {
  using value_type = float;
  kern::cuda::MathMode mode = kern::cuda::MathMode::fp32;

  void embedding_forward(float* x, const float* e, const std::int32_t* tok, int m, int d) const {
    kern::cuda::embedding_forward(x, e, tok, m, d);
  }
  void embedding_backward(float* de, const float* dx, const std::int32_t* tok, int m, int d) const {
    kern::cuda::embedding_backward(de, dx, tok, m, d);
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int m, int d, float eps) const {
    kern::cuda::rmsnorm_forward(y, rstd, x, w, m, d, eps);
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* dres, const float* x, const float* rstd,
                        const float* w, int m, int d) const {
    kern::cuda::rmsnorm_backward(dx, dw, dy, dres, x, rstd, w, m, d);
  }
  void linear_forward(float* y, const float* x, const float* w, int m, int n, int k, bool acc) const {
    kern::cuda::linear_forward(y, x, w, m, n, k, acc, mode);
  }
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, int m, int n, int k,
                       bool acc) const {
    kern::cuda::linear_backward(dx, dw, dy, x, w, m, n, k, acc, mode);
  }
  void rope_forward(float* x, const float* c, const float* s, int rows, int seq, int heads, int hd, int ld,
                    int col0) const {
    kern::cuda::rope_forward(x, c, s, rows, seq, heads, hd, ld, col0);
  }
  void rope_backward(float* x, const float* c, const float* s, int rows, int seq, int heads, int hd, int ld,
                     int col0) const {
    kern::cuda::rope_backward(x, c, s, rows, seq, heads, hd, ld, col0);
  }
  void attention_forward(float* out, float* lse, const float* qkv, const kern::AttnShape& s, float*) const {
    kern::cuda::attention_forward(out, lse, qkv, s);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                          const kern::AttnShape& s, float*) const {
    kern::cuda::attention_backward(dqkv, dout, qkv, out, lse, s);
  }
  void swiglu_forward(float* act, const float* gu, int m, int f) const { kern::cuda::swiglu_forward(act, gu, m, f); }
  void swiglu_backward(float* dgu, const float* dact, const float* gu, int m, int f) const {
    kern::cuda::swiglu_backward(dgu, dact, gu, m, f);
  }
  void add_inplace(float* y, const float* x, std::size_t n) const { kern::cuda::add_inplace(y, x, n); }
  void copy(float* dst, const float* src, std::size_t n) const {
    kern::cuda::copy_device(dst, src, n * sizeof(float));
  }
  // the tables are made on the host (kernels.h's rope_table, the CPU's values) and uploaded
  template <class Storage>
  void rope_tables(Arena<float, Storage>& ar, float* cos, float* sin, int seq, int hd, double theta,
                   const kern::RopeScaling& scaling) const {
    const std::size_t half = std::size_t(seq) * std::size_t(hd / 2);
    std::vector<float> c(half), s(half);
    kern::rope_table<float>(c.data(), s.data(), seq, hd, theta, scaling);
    ar.storage().upload_range(c.data(), std::size_t(cos - ar.storage().data()), half);
    ar.storage().upload_range(s.data(), std::size_t(sin - ar.storage().data()), half);
  }
  int attention_threads(int) const { return 0; }  // flash-style: no scratch
  template <class A>
  void check_frozen(const A&) const {}
};

using CudaTrainActivations = TrainActivations<float, kern::cuda::DeviceBuffer<float>>;
using CudaFrozenActivations = FrozenActivations<float, kern::cuda::DeviceBuffer<float>>;

void llama_forward_train_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* params,
                              const std::int32_t* tokens, CudaTrainActivations& a, LinearHook<float>* hook = nullptr);
void llama_backward_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* params, float* grads,
                         const std::int32_t* tokens, CudaTrainActivations& a, const float* dfinal,
                         std::span<const float* const> dhidden, LinearHook<float>* hook = nullptr);
void llama_forward_frozen_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* params,
                               const std::int32_t* tokens, CudaFrozenActivations& a);
// logits (rows, V) = x · headᵀ
void head_forward_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* params, float* logits, const float* x,
                       int rows);

}  // namespace kd
