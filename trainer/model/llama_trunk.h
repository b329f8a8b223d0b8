// The Llama trunk's forward and backward, written once over a backend's ops, so the CPU
// and the CUDA backend run the same block structure, hook calls and buffer use (the CPU
// instantiation is what the finite-difference and PyTorch tests check; the CUDA one swaps
// only the ops). Included by llama.cpp (HostOps) and llama_cuda.cpp (CudaOps).
//
// An Ops object provides, on its own memory (T = Ops::value_type):
//   embedding_forward/backward, rmsnorm_forward/backward, linear_forward/backward,
//   rope_forward/backward, attention_forward/backward (scratch may be ignored),
//   swiglu_forward/backward, add_inplace, copy, rope_tables (fills cos/sin in its memory),
//   and check_frozen(activations) (a host-side precondition of the frozen forward).
#pragma once

#include <omp.h>

#include <cstring>
#include <functional>
#include <span>
#include <type_traits>
#include <vector>

#include "trainer/model/llama.h"
#include "base/errors.h"

namespace kd {

// The CPU backend's ops: kernels/kernels.h.
template <class T>
struct HostOps {
  using value_type = T;
  void embedding_forward(T* x, const T* e, const std::int32_t* tok, int m, int d) const {
    kern::embedding_forward<T>(x, e, tok, m, d);
  }
  void embedding_backward(T* de, const T* dx, const std::int32_t* tok, int m, int d) const {
    kern::embedding_backward<T>(de, dx, tok, m, d);
  }
  void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int m, int d, T eps) const {
    kern::rmsnorm_forward<T>(y, rstd, x, w, m, d, eps);
  }
  void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* dres, const T* x, const T* rstd, const T* w, int m,
                        int d) const {
    kern::rmsnorm_backward<T>(dx, dw, dy, dres, x, rstd, w, m, d);
  }
  void linear_forward(T* y, const T* x, const T* w, int m, int n, int k, bool acc) const {
    kern::linear_forward<T>(y, x, w, m, n, k, acc);
  }
  void linear_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, int m, int n, int k, bool acc) const {
    kern::linear_backward<T>(dx, dw, dy, x, w, m, n, k, acc);
  }
  void rope_forward(T* x, const T* c, const T* s, int rows, int seq, int heads, int hd, int ld, int col0) const {
    kern::rope_forward<T>(x, c, s, rows, seq, heads, hd, ld, col0);
  }
  void rope_backward(T* x, const T* c, const T* s, int rows, int seq, int heads, int hd, int ld, int col0) const {
    kern::rope_backward<T>(x, c, s, rows, seq, heads, hd, ld, col0);
  }
  void attention_forward(T* out, T* lse, const T* qkv, const kern::AttnShape& s, T* scratch) const {
    kern::attention_forward<T>(out, lse, qkv, s, scratch);
  }
  void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                          const kern::AttnShape& s, T* scratch) const {
    kern::attention_backward<T>(dqkv, dout, qkv, out, lse, s, scratch);
  }
  void swiglu_forward(T* act, const T* gu, int m, int f) const { kern::swiglu_forward<T>(act, gu, m, f); }
  void swiglu_backward(T* dgu, const T* dact, const T* gu, int m, int f) const {
    kern::swiglu_backward<T>(dgu, dact, gu, m, f);
  }
  void add_inplace(T* y, const T* x, std::size_t n) const { kern::add_inplace<T>(y, x, n); }
  void copy(T* dst, const T* src, std::size_t n) const { std::memcpy(dst, src, sizeof(T) * n); }
  template <class Storage>
  void rope_tables(Arena<T, Storage>&, T* cos, T* sin, int seq, int hd, double theta,
                   const kern::RopeScaling& scaling) const {
    kern::rope_table<T>(cos, sin, seq, hd, theta, scaling);
  }
  int attention_threads(int threads) const { return threads; }
  template <class A>
  void check_frozen(const A& a) const {
    KD_ASSERT(omp_get_max_threads() <= a.threads,
              "frozen forward with {} OpenMP threads on activations built for {} (attention scratch is per thread)",
              omp_get_max_threads(), a.threads);
  }
};

// ---------------------------------------------------------------- activations

template <class T, class Storage>
template <class Ops>
void TrainActivations<T, Storage>::build(const Ops& ops, const ModelSpec& s, int b, int t, int threads,
                                         bool input_buffers) {
  batch = b;
  seq = t;
  const std::size_t m = std::size_t(b) * t, d = s.d_model, f = s.d_ff;
  const std::size_t qkv_n = m * s.qkv_dim(), q_n = m * s.q_dim();
  const std::size_t lse_n = std::size_t(b) * s.n_heads * t;
  const std::size_t scratch = kern::attention_scratch_elems(attn_shape(s, b, t), ops.attention_threads(threads));
  const std::size_t half = std::size_t(t) * (s.head_dim() / 2);
  arena.build([&](Arena<T, Storage>& ar) {
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
  if (rope_cos != nullptr) ops.rope_tables(arena, rope_cos, rope_sin, t, s.head_dim(), s.rope_theta, s.rope_scaling);  // null: measured only
}

template <class T, class Storage>
template <class Ops>
void FrozenActivations<T, Storage>::build(const Ops& ops, const ModelSpec& s, int b, int t, int n_threads,
                                          std::vector<int> capture) {
  batch = b;
  seq = t;
  threads = n_threads;
  captured_index = std::move(capture);
  const std::size_t m = std::size_t(b) * t, d = s.d_model, f = s.d_ff;
  const std::size_t half = std::size_t(t) * (s.head_dim() / 2);
  arena.build([&](Arena<T, Storage>& ar) {
    x = ar.take(m * d);
    xn = ar.take(m * d);
    rstd = ar.take(m);
    qkv = ar.take(m * s.qkv_dim());
    att = ar.take(m * s.q_dim());
    lse = ar.take(std::size_t(b) * s.n_heads * t);
    gu = ar.take(2 * m * f);
    act = ar.take(m * f);
    attn_scratch = ar.take(kern::attention_scratch_elems(attn_shape(s, b, t), ops.attention_threads(n_threads)));
    rope_cos = ar.take(half);
    rope_sin = ar.take(half);
    final_norm = ar.take(m * d);
    captured.assign(captured_index.size(), nullptr);
    for (auto& c : captured) c = ar.take(m * d);
  });
  if (rope_cos != nullptr) ops.rope_tables(arena, rope_cos, rope_sin, t, s.head_dim(), s.rope_theta, s.rope_scaling);  // null: measured only
}

template <class T, class Storage>
const T* FrozenActivations<T, Storage>::hidden(int index) const {
  for (std::size_t i = 0; i < captured_index.size(); ++i) {
    if (captured_index[i] == index) return captured[i];
  }
  KD_ASSERT(false, "hidden state {} was not captured", index);
  return nullptr;
}

namespace trunk {

// Where a block's linear inputs go when a hook transforms them (null buffers: in place).
template <class Ops>
struct BlockInputs {
  using T = typename Ops::value_type;
  const Ops& ops;
  LinearHook<T>* hook = nullptr;
  int layer = 0;
  T *qkv = nullptr, *o = nullptr, *gu = nullptr, *down = nullptr;
  T* apply(LinearInput site, T* x, T* buf, int rows, int cols) const {
    return hook ? const_cast<T*>(hook->forward(layer, site, x, buf, rows, cols)) : x;
  }
  // y (+)= x·wᵀ through the hook: it may run the layer itself, else transform x first.
  void linear(LinearInput site, T* y, T* x, T* buf, const T* w, int rows, int n, int k, bool acc) const {
    if (hook && buf == nullptr && hook->linear(layer, site, y, x, w, rows, n, k, acc)) return;
    ops.linear_forward(y, apply(site, x, buf, rows, k), w, rows, n, k, acc);
  }
};

// The attention half of a block: x -> xn (norm) -> qkv (+RoPE) -> att; `out` = x + att·Woᵀ
// (without the residual: att·Woᵀ alone). Shared by the training and the frozen forward.
template <class Ops, class T = typename Ops::value_type>
void attention_block(const Ops& ops, const ModelSpec& s, const LlamaLayout::Layer& L, const T* p, const T* x, T* xn,
                     T* rstd, T* qkv, T* att, T* lse, T* out, const T* cos, const T* sin, T* scratch, int batch,
                     int seq, const BlockInputs<Ops>& in, bool residual = true) {
  const int m = batch * seq, d = s.d_model, hd = s.head_dim();
  ops.rmsnorm_forward(xn, rstd, x, p + L.ln1, m, d, T(s.norm_eps));
  in.linear(LinearInput::qkv, qkv, xn, in.qkv, p + L.wqkv, m, s.qkv_dim(), d, false);
  ops.rope_forward(qkv, cos, sin, m, seq, s.n_heads + s.n_kv_heads, hd, s.qkv_dim(), 0);
  ops.attention_forward(att, lse, qkv, attn_shape(s, batch, seq), scratch);
  if (residual && out != x) ops.copy(out, x, std::size_t(m) * d);
  in.linear(LinearInput::o, out, att, in.o, p + L.wo, m, d, s.q_dim(), residual);
}

// The MLP half: x -> xn -> gu -> act; out = x + act·Wdownᵀ (out may alias x).
template <class Ops, class T = typename Ops::value_type>
void mlp_block(const Ops& ops, const ModelSpec& s, const LlamaLayout::Layer& L, const T* p, const T* x, T* xn,
               T* rstd, T* gu, T* act, T* out, int m, const BlockInputs<Ops>& in, bool residual = true) {
  const int d = s.d_model, f = s.d_ff;
  ops.rmsnorm_forward(xn, rstd, x, p + L.ln2, m, d, T(s.norm_eps));
  in.linear(LinearInput::gate_up, gu, xn, in.gu, p + L.wgu, m, 2 * f, d, false);
  ops.swiglu_forward(act, gu, m, f);
  if (residual && out != x) ops.copy(out, x, std::size_t(m) * d);
  in.linear(LinearInput::down, out, act, in.down, p + L.wdown, m, d, f, residual);
}

template <class Ops, class Acts, class T = typename Ops::value_type>
void forward_train(const Ops& ops, const LlamaLayout& lay, const T* p, const std::int32_t* tokens, Acts& a,
                   LinearHook<std::type_identity_t<T>>* hook) {
  const ModelSpec& s = lay.spec();
  const int m = a.batch * a.seq, d = s.d_model;
  ops.embedding_forward(a.hidden[0], p + lay.embed(), tokens, m, d);
  for (int l = 0; l < s.n_layers; ++l) {
    const auto& L = lay.layers()[l];
    auto& A = a.layers[l];
    KD_ASSERT(hook == nullptr || A.in_qkv != nullptr, "a linear-input hook needs activations built with input_buffers");
    const BlockInputs<Ops> in{ops, hook, l, A.in_qkv, A.in_o, A.in_gu, A.in_down};
    attention_block(ops, s, L, p, a.hidden[l], A.xn1, A.rstd1, A.qkv, A.att, A.lse, A.mid, a.rope_cos, a.rope_sin,
                    a.attn_scratch, a.batch, a.seq, in);
    mlp_block(ops, s, L, p, A.mid, A.xn2, A.rstd2, A.gu, A.act, a.hidden[l + 1], m, in);
  }
  ops.rmsnorm_forward(a.final_norm, a.final_rstd, a.hidden[s.n_layers], p + lay.final_norm(), m, d, T(s.norm_eps));
}

template <class Ops, class Acts, class T = typename Ops::value_type>
void backward(const Ops& ops, const LlamaLayout& lay, const T* p, T* g, const std::int32_t* tokens, Acts& a,
              const T* dfinal, std::span<const T* const> dhidden, LinearHook<std::type_identity_t<T>>* hook) {
  const ModelSpec& s = lay.spec();
  const int m = a.batch * a.seq, d = s.d_model, f = s.d_ff, hd = s.head_dim();
  const std::size_t md = std::size_t(m) * d;
  auto extra = [&](int k) -> const T* { return k < int(dhidden.size()) ? dhidden[k] : nullptr; };
  const int L_n = s.n_layers;
  ops.rmsnorm_backward(a.dx, g + lay.final_norm(), dfinal, extra(L_n), a.hidden[L_n], a.final_rstd,
                       p + lay.final_norm(), m, d);
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
    ops.linear_backward(a.dact, g + L.wdown, a.dx, seen(A.act, A.in_down), p + L.wdown, m, d, f, false);
    back(LinearInput::down, a.dact, A.act, f);
    ops.swiglu_backward(a.dgu, a.dact, A.gu, m, f);
    ops.linear_backward(a.dxn, g + L.wgu, a.dgu, seen(A.xn2, A.in_gu), p + L.wgu, m, 2 * f, d, false);
    back(LinearInput::gate_up, a.dxn, A.xn2, d);
    ops.rmsnorm_backward(a.dmid, g + L.ln2, a.dxn, a.dx, A.mid, A.rstd2, p + L.ln2, m, d);
    // mid = hidden[l] + att·Woᵀ
    ops.linear_backward(a.datt, g + L.wo, a.dmid, seen(A.att, A.in_o), p + L.wo, m, d, s.q_dim(), false);
    back(LinearInput::o, a.datt, A.att, s.q_dim());
    ops.attention_backward(a.dqkv, a.datt, A.qkv, A.att, A.lse, attn_shape(s, a.batch, a.seq), a.attn_scratch);
    ops.rope_backward(a.dqkv, a.rope_cos, a.rope_sin, m, a.seq, s.n_heads + s.n_kv_heads, hd, s.qkv_dim(), 0);
    ops.linear_backward(a.dxn, g + L.wqkv, a.dqkv, seen(A.xn1, A.in_qkv), p + L.wqkv, m, s.qkv_dim(), d, false);
    back(LinearInput::qkv, a.dxn, A.xn1, d);
    ops.rmsnorm_backward(a.dx, g + L.ln1, a.dxn, a.dmid, a.hidden[l], A.rstd1, p + L.ln1, m, d);
    if (const T* e = extra(l)) ops.add_inplace(a.dx, e, md);
  }
  ops.embedding_backward(g + lay.embed(), a.dx, tokens, m, d);
}

// The frozen forward. With sum_over_group (a tensor-parallel shard, host only), each
// block's output projection goes to `partial` without the residual, is summed over the
// group, then added.
template <class Ops, class Acts, class T = typename Ops::value_type>
void frozen_forward(const Ops& ops, const LlamaLayout& lay, const T* p, const std::int32_t* tokens, Acts& a,
                    LinearHook<std::type_identity_t<T>>* hook, std::type_identity_t<T>* partial,
                    const std::function<void(std::type_identity_t<T>*, std::size_t)>* sum_over_group) {
  ops.check_frozen(a);
  const ModelSpec& s = lay.spec();
  const int m = a.batch * a.seq, d = s.d_model;
  const std::size_t md = std::size_t(m) * d;
  auto capture = [&](int k) {
    for (std::size_t i = 0; i < a.captured_index.size(); ++i) {
      if (a.captured_index[i] == k) ops.copy(a.captured[i], a.x, md);
    }
  };
  const bool grouped = sum_over_group != nullptr;
  T* out = grouped ? partial : a.x;
  auto add_group_sum = [&] {
    if (!grouped) return;
    (*sum_over_group)(partial, md);
    ops.add_inplace(a.x, partial, md);
  };
  ops.embedding_forward(a.x, p + lay.embed(), tokens, m, d);
  capture(0);
  for (int l = 0; l < s.n_layers; ++l) {
    const auto& L = lay.layers()[l];
    const BlockInputs<Ops> in{ops, hook, l};  // frozen: transformed in place (scratch buffers)
    attention_block(ops, s, L, p, a.x, a.xn, a.rstd, a.qkv, a.att, a.lse, out, a.rope_cos, a.rope_sin,
                    a.attn_scratch, a.batch, a.seq, in, !grouped);
    add_group_sum();
    mlp_block(ops, s, L, p, a.x, a.xn, a.rstd, a.gu, a.act, out, m, in, !grouped);
    add_group_sum();
    capture(l + 1);
  }
  ops.rmsnorm_forward(a.final_norm, a.rstd, a.x, p + lay.final_norm(), m, d, T(s.norm_eps));
}

}  // namespace trunk
}  // namespace kd
