#include "trainer/model/llama.h"
#include "trainer/model/llama_trunk.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "base/errors.h"

namespace kd {

LlamaLayout::LlamaLayout(const ModelSpec& spec, ParamTable& t, const std::string& prefix)
    : spec_(spec) {
  const std::int64_t d = spec.d_model, f = spec.d_ff, v = spec.vocab;
  const std::int64_t qd = spec.q_dim(), kvd = spec.kv_dim();
  const std::uint32_t linear = kPrunable | kQuantizable | kDecayed;
  embed_ = t[t.add(prefix + "model.embed_tokens.weight", {v, d}, kDecayed)].offset;
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = prefix + "model.layers." + std::to_string(l) + ".";
    Layer L{};
    L.ln1 = t[t.add(p + "input_layernorm.weight", {d}, 0)].offset;
    L.wqkv = t[t.add(p + "self_attn.q_proj.weight", {qd, d}, linear)].offset;
    t.add(p + "self_attn.k_proj.weight", {kvd, d}, linear);
    t.add(p + "self_attn.v_proj.weight", {kvd, d}, linear);
    L.wo = t[t.add(p + "self_attn.o_proj.weight", {d, qd}, linear)].offset;
    L.ln2 = t[t.add(p + "post_attention_layernorm.weight", {d}, 0)].offset;
    L.wgu = t[t.add(p + "mlp.gate_proj.weight", {f, d}, linear)].offset;
    t.add(p + "mlp.up_proj.weight", {f, d}, linear);
    L.wdown = t[t.add(p + "mlp.down_proj.weight", {d, f}, linear)].offset;
    layers_.push_back(L);
  }
  final_norm_ = t[t.add(prefix + "model.norm.weight", {d}, 0)].offset;
  head_ = spec.tie_embeddings ? embed_
                              : t[t.add(prefix + "lm_head.weight", {v, d}, kQuantizable | kDecayed)].offset;
}

void LlamaLayout::init(float* base, std::uint64_t seed, double std) const {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, float(std));
  const std::size_t d = spec_.d_model, f = spec_.d_ff;
  auto fill = [&](std::size_t off, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) base[off + i] = normal(rng);
  };
  auto ones = [&](std::size_t off, std::size_t n) { std::fill_n(base + off, n, 1.0f); };
  fill(embed_, std::size_t(spec_.vocab) * d);
  for (const auto& L : layers_) {
    ones(L.ln1, d);
    fill(L.wqkv, std::size_t(spec_.qkv_dim()) * d);
    fill(L.wo, d * spec_.q_dim());
    ones(L.ln2, d);
    fill(L.wgu, 2 * f * d);
    fill(L.wdown, d * f);
  }
  ones(final_norm_, d);
  if (!spec_.tie_embeddings) fill(head_, std::size_t(spec_.vocab) * d);
}

// The attention shape of a model's fused qkv rows (declared in llama.h).
kern::AttnShape attn_shape(const ModelSpec& s, int batch, int seq) {
  kern::AttnShape a{};
  a.batch = batch;
  a.seq = seq;
  a.heads = s.n_heads;
  a.kv_heads = s.n_kv_heads;
  a.head_dim = s.head_dim();
  a.ld_qkv = s.qkv_dim();
  a.q_col = 0;
  a.k_col = s.q_dim();
  a.v_col = s.q_dim() + s.kv_dim();
  return a;
}

template <class T, class Storage>
void TrainActivations<T, Storage>::build(const ModelSpec& s, int b, int t, int threads, bool input_buffers) {
  build(HostOps<T>{}, s, b, t, threads, input_buffers);
}

template <class T, class Storage>
void FrozenActivations<T, Storage>::build(const ModelSpec& s, int b, int t, int n_threads, std::vector<int> capture) {
  build(HostOps<T>{}, s, b, t, n_threads, std::move(capture));
}

template <class T>
void llama_forward_train(const LlamaLayout& lay, const T* p, const std::int32_t* tokens,
                         TrainActivations<T>& a, LinearHook<T>* hook) {
  trunk::forward_train(HostOps<T>{}, lay, p, tokens, a, hook);
}

template <class T>
void llama_backward(const LlamaLayout& lay, const T* p, T* g, const std::int32_t* tokens,
                    TrainActivations<T>& a, const T* dfinal, std::span<const T* const> dhidden,
                    LinearHook<T>* hook) {
  trunk::backward(HostOps<T>{}, lay, p, g, tokens, a, dfinal, dhidden, hook);
}

template <class T>
void llama_forward_frozen(const LlamaLayout& lay, const T* p, const std::int32_t* tokens,
                          FrozenActivations<T>& a, LinearHook<T>* hook) {
  trunk::frozen_forward(HostOps<T>{}, lay, p, tokens, a, hook, nullptr, nullptr);
}

void llama_forward_frozen_tp(const LlamaLayout& shard, const float* p, const std::int32_t* tokens,
                             FrozenActivations<float>& a, float* partial,
                             const std::function<void(float*, std::size_t)>& sum_over_group,
                             LinearHook<float>* hook) {
  trunk::frozen_forward(HostOps<float>{}, shard, p, tokens, a, hook, partial, &sum_over_group);
}

void llama_embed_frozen(const LlamaLayout& lay, const float* p, const std::int32_t* tokens,
                        FrozenActivations<float>& a) {
  const HostOps<float> ops;
  ops.check_frozen(a);
  ops.embedding_forward(a.x, p + lay.embed(), tokens, a.batch * a.seq, lay.spec().d_model);
}

void llama_block_frozen(const LlamaLayout& lay, const float* p, int layer, FrozenActivations<float>& a,
                        LinearHook<float>* hook) {
  const HostOps<float> ops;
  ops.check_frozen(a);
  const ModelSpec& s = lay.spec();
  const auto& L = lay.layers()[layer];
  const trunk::BlockInputs<HostOps<float>> in{ops, hook, layer};
  trunk::attention_block(ops, s, L, p, a.x, a.xn, a.rstd, a.qkv, a.att, a.lse, a.x, a.rope_cos, a.rope_sin,
                         a.attn_scratch, a.batch, a.seq, in, true);
  trunk::mlp_block(ops, s, L, p, a.x, a.xn, a.rstd, a.gu, a.act, a.x, a.batch * a.seq, in, true);
}

template <class T>
void head_forward_frozen(const LlamaLayout& lay, const T* p, T* logits, T* x, int rows, LinearHook<T>* hook) {
  const int v = lay.spec().vocab, d = lay.spec().d_model;
  if (hook && hook->linear(-1, LinearInput::head, logits, x, p + lay.head(), rows, v, d, false)) return;
  const T* in = hook ? hook->forward(-1, LinearInput::head, x, nullptr, rows, d) : x;
  kern::linear_forward<T>(logits, in, p + lay.head(), rows, v, d, false);
}

template void head_forward_frozen<float>(const LlamaLayout&, const float*, float*, float*, int, LinearHook<float>*);
template void head_forward_frozen<double>(const LlamaLayout&, const double*, double*, double*, int,
                                          LinearHook<double>*);
template struct TrainActivations<float>;
template struct TrainActivations<double>;
template struct FrozenActivations<float>;
template struct FrozenActivations<double>;
template void llama_forward_train<float>(const LlamaLayout&, const float*, const std::int32_t*,
                                         TrainActivations<float>&, LinearHook<float>*);
template void llama_forward_train<double>(const LlamaLayout&, const double*, const std::int32_t*,
                                          TrainActivations<double>&, LinearHook<double>*);
template void llama_backward<float>(const LlamaLayout&, const float*, float*, const std::int32_t*,
                                    TrainActivations<float>&, const float*,
                                    std::span<const float* const>, LinearHook<float>*);
template void llama_backward<double>(const LlamaLayout&, const double*, double*,
                                     const std::int32_t*, TrainActivations<double>&, const double*,
                                     std::span<const double* const>, LinearHook<double>*);
template void llama_forward_frozen<float>(const LlamaLayout&, const float*, const std::int32_t*,
                                          FrozenActivations<float>&, LinearHook<float>*);
template void llama_forward_frozen<double>(const LlamaLayout&, const double*, const std::int32_t*,
                                           FrozenActivations<double>&, LinearHook<double>*);

}  // namespace kd
