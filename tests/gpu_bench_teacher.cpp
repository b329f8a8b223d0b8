// The teacher's forward (trunk + head over every token) on the CUDA backend, timed per GEMM
// math mode, with the attention's share: the first GPU figure before the whole KD step exists.
// Built only into the GPU check's bundle (scripts/gpu-check.sh), where
// scripts/torch_gpu_teacher_ref.py times PyTorch on the same shape.
// Usage: gpu_check_tests --bench-teacher [d layers heads kv_heads d_ff vocab seq batch]
//        (default: the teacher of configs/bench-gpu.yaml, d=2048 L=16 H=16 d_ff=5632, V=32000, T=1024, B=8;
//        the binary carries no YAML parser, so the shape is repeated here)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "trainer/model/llama_cuda.h"

namespace cu = kd::kern::cuda;

namespace {

template <class F>
double median_ms(F&& f, int warmup = 2, int runs = 5) {
  for (int i = 0; i < warmup; ++i) f();
  cu::synchronize();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    cu::synchronize();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int bench_teacher_main(int argc, char** argv) {
  if (const std::string why = cu::unavailable_reason(); !why.empty()) {
    std::printf("SKIP: no GPU: %s\n", why.c_str());
    return 77;
  }
  int v[8] = {2048, 16, 16, 16, 5632, 32000, 1024, 8};
  for (int i = 1; i < argc && i <= 8; ++i) v[i - 1] = std::atoi(argv[i]);
  kd::ModelSpec s;
  s.d_model = v[0], s.n_layers = v[1], s.n_heads = v[2], s.n_kv_heads = v[3], s.d_ff = v[4], s.vocab = v[5];
  const int seq = v[6], batch = v[7], m = batch * seq;
  kd::ParamTable table;
  const kd::LlamaLayout lay(s, table);
  // a cheap deterministic fill (timing does not depend on the values; norms at 1)
  std::vector<float> params(table.total());
  for (std::size_t i = 0; i < params.size(); ++i) params[i] = 0.02f * std::sin(float(i % 10007) * 0.37f);
  for (const auto& L : lay.layers()) {
    std::fill_n(params.begin() + std::ptrdiff_t(L.ln1), s.d_model, 1.0f);
    std::fill_n(params.begin() + std::ptrdiff_t(L.ln2), s.d_model, 1.0f);
  }
  std::fill_n(params.begin() + std::ptrdiff_t(lay.final_norm()), s.d_model, 1.0f);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(m));
  for (int i = 0; i < m; ++i) tokens[std::size_t(i)] = (i * 7919) % s.vocab;
  cu::DeviceBuffer<float> d_params(params.size()), logits(std::size_t(m) * s.vocab);
  cu::DeviceBuffer<std::int32_t> d_tokens(tokens.size());
  d_params.upload(params.data());
  d_tokens.upload(tokens.data());
  kd::CudaFrozenActivations a;
  a.build(kd::CudaOps{}, s, batch, seq, 0, {});
  const double flops = 2.0 * double(s.matmul_params()) * m;  // the GEMMs; attention on top
  std::printf("device: %s\nteacher d=%d L=%d H=%d Hkv=%d d_ff=%d V=%d, batch %d x seq %d = %d tokens, %.2f GFLOP of GEMMs\n",
              cu::device_description().c_str(), s.d_model, s.n_layers, s.n_heads, s.n_kv_heads, s.d_ff, s.vocab, batch,
              seq, m, flops / 1e9);
  const kd::kern::AttnShape shape = kd::attn_shape(s, batch, seq);
  const double attn_ms = median_ms([&] { cu::attention_forward(a.att, a.lse, a.qkv, shape); }) * s.n_layers;
  {  // the backward a student of this shape would run (dO = the output itself: timing only)
    cu::DeviceBuffer<float> dqkv(std::size_t(m) * s.qkv_dim());
    const double bwd = median_ms([&] { cu::attention_backward(dqkv.data(), a.att, a.qkv, a.att, a.lse, shape); });
    std::printf("attention backward: %.1f ms per layer, %.1f ms for %d layers (forward %.1f)\n", bwd, bwd * s.n_layers,
                s.n_layers, attn_ms);
    std::printf("RESULT impl=kdtrain attention_fwd_ms=%.2f attention_bwd_ms=%.2f layers=%d\n", attn_ms, bwd * s.n_layers,
                s.n_layers);
  }
  for (const cu::MathMode mode : {cu::MathMode::fp32, cu::MathMode::tf32, cu::MathMode::bf16}) {
    const double ms = median_ms([&] {
      kd::llama_forward_frozen_cuda(kd::CudaOps{mode}, lay, d_params.data(), d_tokens.data(), a);
      kd::head_forward_cuda(kd::CudaOps{mode}, lay, d_params.data(), logits.data(), a.final_norm, m);
    });
    std::printf("teacher forward + head, %s GEMMs: %.1f ms (%.0f tokens/s, %.1f TFLOP/s of GEMMs), attention %.1f ms of it\n",
                cu::math_mode_name(mode), ms, m / ms * 1e3, flops / ms / 1e9, attn_ms);
    std::printf("RESULT impl=kdtrain math=%s teacher_fwd_ms=%.2f attention_ms=%.2f tokens=%d\n", cu::math_mode_name(mode),
                ms, attn_ms, m);
  }
  return 0;
}
