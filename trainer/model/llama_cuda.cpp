#include "trainer/model/llama_cuda.h"

#include <vector>

namespace kd {

namespace cu = kern::cuda;

void CudaFrozenActivations::build(const ModelSpec& s, int b, int t) {
  batch = b;
  seq = t;
  const std::size_t m = std::size_t(b) * t, d = s.d_model, f = s.d_ff;
  const std::size_t half = std::size_t(t) * (s.head_dim() / 2);
  const std::size_t sizes[] = {m * d, m * d, m, m * s.qkv_dim(), m * s.q_dim(), std::size_t(b) * s.n_heads * t,
                               2 * m * f, m * f, m * d, half, half};
  float** slots[] = {&x, &xn, &rstd, &qkv, &att, &lse, &gu, &act, &final_norm, &rope_cos, &rope_sin};
  std::size_t total = 0;
  for (const std::size_t n : sizes) total += (n + 63) / 64 * 64;  // 256-byte aligned slices
  arena = cu::DeviceBuffer<float>(total);
  std::size_t at = 0;
  for (std::size_t i = 0; i < std::size(sizes); ++i) {
    *slots[i] = arena.data() + at;
    at += (sizes[i] + 63) / 64 * 64;
  }
  std::vector<float> cos(half), sin(half);
  kern::rope_table<float>(cos.data(), sin.data(), t, s.head_dim(), s.rope_theta);
  arena.upload_range(cos.data(), std::size_t(rope_cos - arena.data()), half);
  arena.upload_range(sin.data(), std::size_t(rope_sin - arena.data()), half);
}

void llama_forward_frozen_cuda(const LlamaLayout& lay, const float* p, const std::int32_t* tokens,
                               CudaFrozenActivations& a, cu::MathMode mode) {
  const ModelSpec& s = lay.spec();
  const int m = a.batch * a.seq, d = s.d_model, f = s.d_ff, hd = s.head_dim();
  const kern::AttnShape shape = attn_shape(s, a.batch, a.seq);
  const float eps = float(s.norm_eps);
  cu::embedding_forward(a.x, p + lay.embed(), tokens, m, d);
  for (const auto& L : lay.layers()) {
    // attention half: x += attention(rope(qkv(norm(x)))) · Woᵀ
    cu::rmsnorm_forward(a.xn, a.rstd, a.x, p + L.ln1, m, d, eps);
    cu::linear_forward(a.qkv, a.xn, p + L.wqkv, m, s.qkv_dim(), d, false, mode);
    cu::rope_forward(a.qkv, a.rope_cos, a.rope_sin, m, a.seq, s.n_heads + s.n_kv_heads, hd, s.qkv_dim(), 0);
    cu::attention_forward(a.att, a.lse, a.qkv, shape);
    cu::linear_forward(a.x, a.att, p + L.wo, m, d, s.q_dim(), true, mode);
    // MLP half: x += swiglu(gate_up(norm(x))) · Wdownᵀ
    cu::rmsnorm_forward(a.xn, a.rstd, a.x, p + L.ln2, m, d, eps);
    cu::linear_forward(a.gu, a.xn, p + L.wgu, m, 2 * f, d, false, mode);
    cu::swiglu_forward(a.act, a.gu, m, f);
    cu::linear_forward(a.x, a.act, p + L.wdown, m, d, f, true, mode);
  }
  cu::rmsnorm_forward(a.final_norm, a.rstd, a.x, p + lay.final_norm(), m, d, eps);
}

void head_forward_cuda(const LlamaLayout& lay, const float* p, float* logits, const float* x, int rows,
                       cu::MathMode mode) {
  cu::linear_forward(logits, x, p + lay.head(), rows, lay.spec().vocab, lay.spec().d_model, false, mode);
}

}  // namespace kd
