#include "trainer/model/kv_decoder.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "base/errors.h"
#include "trainer/model/llama_trunk.h"

namespace kd {

namespace {

struct Sizes {
  std::size_t cache, rows_d, qkv, q, gu, f, rope, scratch;
};

Sizes sizes(const ModelSpec& s, int slots, int capacity, int max_rows, int threads) {
  const std::size_t r = std::size_t(max_rows);
  return {std::size_t(s.n_layers) * slots * capacity * s.kv_dim(),
          r * s.d_model,
          r * s.qkv_dim(),
          r * s.q_dim(),
          r * 2 * s.d_ff,
          r * s.d_ff,
          std::size_t(capacity) * (s.head_dim() / 2),
          std::size_t(threads) * capacity};
}

}  // namespace

std::size_t KvDecoder::bytes(const ModelSpec& s, int slots, int capacity, int max_rows, int threads) {
  const Sizes z = sizes(s, slots, capacity, max_rows, threads);
  return sizeof(float) * (2 * z.cache + 4 * z.rows_d + std::size_t(max_rows) + z.qkv + z.q + z.gu + z.f +
                          2 * z.rope + z.scratch);
}

KvDecoder::KvDecoder(const LlamaLayout& model, int slots, int capacity, int max_rows, int threads)
    : model_(model), slots_(slots), capacity_(capacity), max_rows_(max_rows), threads_(threads) {
  KD_ASSERT(slots > 0 && capacity > 0 && max_rows > 0 && threads > 0, "KvDecoder sizes");
  const ModelSpec& s = model.spec();
  const Sizes z = sizes(s, slots, capacity, max_rows, threads);
  k_.resize(z.cache, "the KV cache (keys)");
  v_.resize(z.cache, "the KV cache (values)");
  x_.resize(z.rows_d, "decoding activations");
  xn_.resize(z.rows_d);
  out_x_.resize(z.rows_d);
  rstd_.resize(std::size_t(max_rows));
  qkv_.resize(z.qkv);
  att_.resize(z.q);
  gu_.resize(z.gu);
  act_.resize(z.f);
  cos_.resize(z.rope);
  sin_.resize(z.rope);
  scratch_.resize(z.scratch);
  kern::rope_table<float>(cos_.data(), sin_.data(), capacity, s.head_dim(), s.rope_theta, s.rope_scaling);
  length_.assign(std::size_t(slots), 0);
  pos_.resize(std::size_t(max_rows));
}

void KvDecoder::forward(const float* p, const std::int32_t* tokens, const int* slots, int rows, const int* out_rows,
                        int n_out, float* logits, LinearHook<float>* hook) {
  const ModelSpec& s = model_.spec();
  KD_ASSERT(rows > 0 && rows <= max_rows_ && n_out <= rows, "KvDecoder::forward: {} rows for {}", rows, max_rows_);
  KD_ASSERT(omp_get_max_threads() <= threads_, "KvDecoder built for {} threads, called with {}", threads_,
            omp_get_max_threads());
  for (int r = 0; r < rows; ++r) {
    int& len = length_[std::size_t(slots[r])];
    KD_ASSERT(len < capacity_, "KV cache slot {} is full ({} positions)", slots[r], capacity_);
    pos_[std::size_t(r)] = len++;
  }
  const int d = s.d_model, hd = s.head_dim(), half = hd / 2, kvd = s.kv_dim(), ld = s.qkv_dim();
  const HostOps<float> ops;
  const std::size_t layer_cache = std::size_t(slots_) * capacity_ * kvd;
  const kern::CachedAttnShape shape{s.n_heads, s.n_kv_heads, hd, capacity_};
  float* x = x_.data();
  ops.embedding_forward(x, p + model_.embed(), tokens, rows, d);
  for (int l = 0; l < s.n_layers; ++l) {
    const auto& L = model_.layers()[std::size_t(l)];
    const trunk::BlockInputs<HostOps<float>> in{ops, hook, l};
    ops.rmsnorm_forward(xn_.data(), rstd_.data(), x, p + L.ln1, rows, d, float(s.norm_eps));
    in.linear(LinearInput::qkv, qkv_.data(), xn_.data(), nullptr, p + L.wqkv, rows, ld, d, false);
    float* kc = k_.data() + std::size_t(l) * layer_cache;
    float* vc = v_.data() + std::size_t(l) * layer_cache;
    // each row rotated at its own position, its k and v stored at it
    for (int r = 0; r < rows; ++r) {
      const int pos = pos_[std::size_t(r)];
      float* row = qkv_.data() + std::size_t(r) * ld;
      ops.rope_forward(row, cos_.data() + std::size_t(pos) * half, sin_.data() + std::size_t(pos) * half, 1, 1,
                       s.n_heads + s.n_kv_heads, hd, ld, 0);
      for (int h = 0; h < s.n_kv_heads; ++h) {
        const std::size_t at = ((std::size_t(slots[r]) * s.n_kv_heads + h) * capacity_ + pos) * hd;
        std::memcpy(kc + at, row + s.q_dim() + std::size_t(h) * hd, sizeof(float) * hd);
        std::memcpy(vc + at, row + s.q_dim() + kvd + std::size_t(h) * hd, sizeof(float) * hd);
      }
    }
    kern::attention_cached<float>(att_.data(), qkv_.data(), ld, kc, vc, slots, pos_.data(), rows, shape,
                                  scratch_.data(), threads_);
    in.linear(LinearInput::o, x, att_.data(), nullptr, p + L.wo, rows, d, s.q_dim(), true);
    trunk::mlp_block(ops, s, L, p, x, xn_.data(), rstd_.data(), gu_.data(), act_.data(), x, rows, in);
  }
  if (n_out == 0) return;
  for (int i = 0; i < n_out; ++i) {
    KD_ASSERT(out_rows[i] >= 0 && out_rows[i] < rows, "KvDecoder::forward: output row {}", out_rows[i]);
    std::memcpy(out_x_.data() + std::size_t(i) * d, x + std::size_t(out_rows[i]) * d, sizeof(float) * d);
  }
  ops.rmsnorm_forward(xn_.data(), rstd_.data(), out_x_.data(), p + model_.final_norm(), n_out, d, float(s.norm_eps));
  head_forward_frozen<float>(model_, p, logits, xn_.data(), n_out, hook);
}

}  // namespace kd
