#include "trainer/model/llama.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "trainer/util/errors.h"

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

namespace {


}  // namespace

template <class T>
void TrainActivations<T>::build(const ModelSpec& s, int b, int t, int threads, bool input_buffers) {
  batch = b;
  seq = t;
  const std::size_t m = std::size_t(b) * t, d = s.d_model, f = s.d_ff;
  const std::size_t qkv_n = m * s.qkv_dim(), q_n = m * s.q_dim();
  const std::size_t lse_n = std::size_t(b) * s.n_heads * t;
  const std::size_t scratch = kern::attention_scratch_elems(attn_shape(s, b, t), threads);
  const std::size_t half = std::size_t(t) * (s.head_dim() / 2);
  arena.build([&](Arena<T>& ar) {
    hidden.assign(s.n_layers + 1, nullptr);
    for (auto& h : hidden) h = ar.take(m * d);
    layers.assign(s.n_layers, Layer{});
    for (auto& L : layers) {
      L.xn1 = ar.take(m * d);
      L.rstd1 = ar.take(m);
      L.qkv = ar.take(qkv_n);
      L.att = ar.take(q_n);
      L.lse = ar.take(lse_n);
      L.mid = ar.take(m * d);
      L.xn2 = ar.take(m * d);
      L.rstd2 = ar.take(m);
      L.gu = ar.take(2 * m * f);
      L.act = ar.take(m * f);
      if (input_buffers) {
        L.in_qkv = ar.take(m * d);
        L.in_o = ar.take(q_n);
        L.in_gu = ar.take(m * d);
        L.in_down = ar.take(m * f);
      }
    }
    in_head = input_buffers ? ar.take(m * d) : nullptr;
    final_norm = ar.take(m * d);
    final_rstd = ar.take(m);
    dx = ar.take(m * d);
    dmid = ar.take(m * d);
    dxn = ar.take(m * d);
    dqkv = ar.take(qkv_n);
    datt = ar.take(q_n);
    dgu = ar.take(2 * m * f);
    dact = ar.take(m * f);
    attn_scratch = ar.take(scratch);
    rope_cos = ar.take(half);
    rope_sin = ar.take(half);
  });
  if (rope_cos != nullptr) kern::rope_table<T>(rope_cos, rope_sin, t, s.head_dim(), s.rope_theta);  // null: measured only
}

template <class T>
void FrozenActivations<T>::build(const ModelSpec& s, int b, int t, int n_threads,
                                 std::vector<int> capture) {
  batch = b;
  seq = t;
  threads = n_threads;
  captured_index = std::move(capture);
  const std::size_t m = std::size_t(b) * t, d = s.d_model, f = s.d_ff;
  const std::size_t half = std::size_t(t) * (s.head_dim() / 2);
  arena.build([&](Arena<T>& ar) {
    x = ar.take(m * d);
    xn = ar.take(m * d);
    rstd = ar.take(m);
    qkv = ar.take(m * s.qkv_dim());
    att = ar.take(m * s.q_dim());
    lse = ar.take(std::size_t(b) * s.n_heads * t);
    gu = ar.take(2 * m * f);
    act = ar.take(m * f);
    attn_scratch = ar.take(kern::attention_scratch_elems(attn_shape(s, b, t), n_threads));
    rope_cos = ar.take(half);
    rope_sin = ar.take(half);
    final_norm = ar.take(m * d);
    captured.assign(captured_index.size(), nullptr);
    for (auto& c : captured) c = ar.take(m * d);
  });
  if (rope_cos != nullptr) kern::rope_table<T>(rope_cos, rope_sin, t, s.head_dim(), s.rope_theta);  // null: measured only
}

template <class T>
const T* FrozenActivations<T>::hidden(int index) const {
  for (std::size_t i = 0; i < captured_index.size(); ++i) {
    if (captured_index[i] == index) return captured[i];
  }
  KD_ASSERT(false, "hidden state {} was not captured", index);
  return nullptr;
}

namespace {

// The attention half of a block: x -> xn (norm) -> qkv (+RoPE) -> att; returns in `out`
// = x + att·Woᵀ. Shared by the training and the frozen forward.
// Where a block's linear inputs go when a hook transforms them (null buffers: in place).
template <class T>
struct BlockInputs {
  LinearHook<T>* hook = nullptr;
  int layer = 0;
  T *qkv = nullptr, *o = nullptr, *gu = nullptr, *down = nullptr;
  T* apply(LinearInput site, T* x, T* buf, int rows, int cols) const {
    return hook ? const_cast<T*>(hook->forward(layer, site, x, buf, rows, cols)) : x;
  }
  // y (+)= x·wᵀ through the hook: it may run the layer itself, else transform x first.
  void linear(LinearInput site, T* y, T* x, T* buf, const T* w, int rows, int n, int k, bool acc) const {
    if (hook && buf == nullptr && hook->linear(layer, site, y, x, w, rows, n, k, acc)) return;
    kern::linear_forward<T>(y, apply(site, x, buf, rows, k), w, rows, n, k, acc);
  }
};

template <class T>
void attention_block(const ModelSpec& s, const LlamaLayout::Layer& L, const T* p, const T* x,
                     T* xn, T* rstd, T* qkv, T* att, T* lse, T* out, const T* cos, const T* sin,
                     T* scratch, int batch, int seq, const BlockInputs<T>& in, bool residual = true) {
  const int m = batch * seq, d = s.d_model, hd = s.head_dim();
  kern::rmsnorm_forward<T>(xn, rstd, x, p + L.ln1, m, d, T(s.norm_eps));
  in.linear(LinearInput::qkv, qkv, xn, in.qkv, p + L.wqkv, m, s.qkv_dim(), d, false);
  kern::rope_forward<T>(qkv, cos, sin, m, seq, s.n_heads + s.n_kv_heads, hd, s.qkv_dim(), 0);
  kern::attention_forward<T>(att, lse, qkv, attn_shape(s, batch, seq), scratch);
  if (residual && out != x) std::memcpy(out, x, sizeof(T) * std::size_t(m) * d);
  in.linear(LinearInput::o, out, att, in.o, p + L.wo, m, d, s.q_dim(), residual);
}

// The MLP half: x -> xn -> gu -> act; out = x + act·Wdownᵀ (out may alias x).
template <class T>
void mlp_block(const ModelSpec& s, const LlamaLayout::Layer& L, const T* p, const T* x, T* xn,
               T* rstd, T* gu, T* act, T* out, int m, const BlockInputs<T>& in, bool residual = true) {
  const int d = s.d_model, f = s.d_ff;
  kern::rmsnorm_forward<T>(xn, rstd, x, p + L.ln2, m, d, T(s.norm_eps));
  in.linear(LinearInput::gate_up, gu, xn, in.gu, p + L.wgu, m, 2 * f, d, false);
  kern::swiglu_forward<T>(act, gu, m, f);
  if (residual && out != x) std::memcpy(out, x, sizeof(T) * std::size_t(m) * d);
  in.linear(LinearInput::down, out, act, in.down, p + L.wdown, m, d, f, residual);
}

}  // namespace

template <class T>
void llama_forward_train(const LlamaLayout& lay, const T* p, const std::int32_t* tokens,
                         TrainActivations<T>& a, LinearHook<T>* hook) {
  const ModelSpec& s = lay.spec();
  const int m = a.batch * a.seq, d = s.d_model;
  kern::embedding_forward<T>(a.hidden[0], p + lay.embed(), tokens, m, d);
  for (int l = 0; l < s.n_layers; ++l) {
    const auto& L = lay.layers()[l];
    auto& A = a.layers[l];
    KD_ASSERT(hook == nullptr || A.in_qkv != nullptr, "a linear-input hook needs activations built with input_buffers");
    const BlockInputs<T> in{hook, l, A.in_qkv, A.in_o, A.in_gu, A.in_down};
    attention_block<T>(s, L, p, a.hidden[l], A.xn1, A.rstd1, A.qkv, A.att, A.lse, A.mid,
                       a.rope_cos, a.rope_sin, a.attn_scratch, a.batch, a.seq, in);
    mlp_block<T>(s, L, p, A.mid, A.xn2, A.rstd2, A.gu, A.act, a.hidden[l + 1], m, in);
  }
  kern::rmsnorm_forward<T>(a.final_norm, a.final_rstd, a.hidden[s.n_layers], p + lay.final_norm(),
                           m, d, T(s.norm_eps));
}

template <class T>
void llama_backward(const LlamaLayout& lay, const T* p, T* g, const std::int32_t* tokens,
                    TrainActivations<T>& a, const T* dfinal, std::span<const T* const> dhidden,
                    LinearHook<T>* hook) {
  const ModelSpec& s = lay.spec();
  const int m = a.batch * a.seq, d = s.d_model, f = s.d_ff, hd = s.head_dim();
  const std::size_t md = std::size_t(m) * d;
  auto extra = [&](int k) -> const T* {
    return k < int(dhidden.size()) ? dhidden[k] : nullptr;
  };
  const int L_n = s.n_layers;
  kern::rmsnorm_backward<T>(a.dx, g + lay.final_norm(), dfinal, extra(L_n), a.hidden[L_n],
                            a.final_rstd, p + lay.final_norm(), m, d);
  for (int l = L_n - 1; l >= 0; --l) {
    const auto& L = lay.layers()[l];
    auto& A = a.layers[l];
    // the linears saw the hook's outputs: their weight gradients use those, and the hook
    // maps the input gradients back (STE / LSQ)
    auto seen = [&](T* x, T* buf) -> const T* { return hook ? buf : x; };
    auto back = [&](LinearInput site, T* dx, const T* x, int cols) {
      if (hook) hook->backward(l, site, dx, x, m, cols);
    };
    // hidden[l+1] = mid + act·Wdownᵀ
    kern::linear_backward<T>(a.dact, g + L.wdown, a.dx, seen(A.act, A.in_down), p + L.wdown, m, d, f, false);
    back(LinearInput::down, a.dact, A.act, f);
    kern::swiglu_backward<T>(a.dgu, a.dact, A.gu, m, f);
    kern::linear_backward<T>(a.dxn, g + L.wgu, a.dgu, seen(A.xn2, A.in_gu), p + L.wgu, m, 2 * f, d, false);
    back(LinearInput::gate_up, a.dxn, A.xn2, d);
    kern::rmsnorm_backward<T>(a.dmid, g + L.ln2, a.dxn, a.dx, A.mid, A.rstd2, p + L.ln2, m, d);
    // mid = hidden[l] + att·Woᵀ
    kern::linear_backward<T>(a.datt, g + L.wo, a.dmid, seen(A.att, A.in_o), p + L.wo, m, d, s.q_dim(), false);
    back(LinearInput::o, a.datt, A.att, s.q_dim());
    kern::attention_backward<T>(a.dqkv, a.datt, A.qkv, A.att, A.lse,
                                attn_shape(s, a.batch, a.seq), a.attn_scratch);
    kern::rope_backward<T>(a.dqkv, a.rope_cos, a.rope_sin, m, a.seq, s.n_heads + s.n_kv_heads, hd,
                           s.qkv_dim(), 0);
    kern::linear_backward<T>(a.dxn, g + L.wqkv, a.dqkv, seen(A.xn1, A.in_qkv), p + L.wqkv, m, s.qkv_dim(), d,
                             false);
    back(LinearInput::qkv, a.dxn, A.xn1, d);
    kern::rmsnorm_backward<T>(a.dx, g + L.ln1, a.dxn, a.dmid, a.hidden[l], A.rstd1, p + L.ln1, m,
                              d);
    if (const T* e = extra(l)) kern::add_inplace<T>(a.dx, e, md);
  }
  kern::embedding_backward<T>(g + lay.embed(), a.dx, tokens, m, d);
}

namespace {

// The frozen forward. With sum_over_group (a tensor-parallel shard), each block's output
// projection goes to `partial` without the residual, is summed over the group, then added.
template <class T>
void frozen_forward(const LlamaLayout& lay, const T* p, const std::int32_t* tokens, FrozenActivations<T>& a,
                    LinearHook<T>* hook, T* partial, const std::function<void(T*, std::size_t)>* sum_over_group) {
  KD_ASSERT(omp_get_max_threads() <= a.threads,
            "frozen forward with {} OpenMP threads on activations built for {} (attention scratch is per thread)",
            omp_get_max_threads(), a.threads);
  const ModelSpec& s = lay.spec();
  const int m = a.batch * a.seq, d = s.d_model;
  const std::size_t md = std::size_t(m) * d;
  auto capture = [&](int k) {
    for (std::size_t i = 0; i < a.captured_index.size(); ++i) {
      if (a.captured_index[i] == k) std::memcpy(a.captured[i], a.x, sizeof(T) * md);
    }
  };
  const bool grouped = sum_over_group != nullptr;
  T* out = grouped ? partial : a.x;
  auto add_group_sum = [&] {
    if (!grouped) return;
    (*sum_over_group)(partial, md);
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < md; ++i) a.x[i] += partial[i];
  };
  kern::embedding_forward<T>(a.x, p + lay.embed(), tokens, m, d);
  capture(0);
  for (int l = 0; l < s.n_layers; ++l) {
    const auto& L = lay.layers()[l];
    const BlockInputs<T> in{hook, l};  // frozen: transformed in place (scratch buffers)
    attention_block<T>(s, L, p, a.x, a.xn, a.rstd, a.qkv, a.att, a.lse, out, a.rope_cos, a.rope_sin,
                       a.attn_scratch, a.batch, a.seq, in, !grouped);
    add_group_sum();
    mlp_block<T>(s, L, p, a.x, a.xn, a.rstd, a.gu, a.act, out, m, in, !grouped);
    add_group_sum();
    capture(l + 1);
  }
  kern::rmsnorm_forward<T>(a.final_norm, a.rstd, a.x, p + lay.final_norm(), m, d, T(s.norm_eps));
}

}  // namespace

template <class T>
void llama_forward_frozen(const LlamaLayout& lay, const T* p, const std::int32_t* tokens,
                          FrozenActivations<T>& a, LinearHook<T>* hook) {
  frozen_forward<T>(lay, p, tokens, a, hook, nullptr, nullptr);
}

void llama_forward_frozen_tp(const LlamaLayout& shard, const float* p, const std::int32_t* tokens,
                             FrozenActivations<float>& a, float* partial,
                             const std::function<void(float*, std::size_t)>& sum_over_group,
                             LinearHook<float>* hook) {
  frozen_forward<float>(shard, p, tokens, a, hook, partial, &sum_over_group);
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
