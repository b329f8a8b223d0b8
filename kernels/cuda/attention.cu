// Causal grouped-query attention on the device, flash-style: no T×T matrix is ever stored.
// Forward: a group of 4 threads per query row, keys streamed through shared memory in tiles
// with an online softmax; the row's logsumexp is saved. Backward (FlashAttention-2's split):
// a query-row pass gives dQ and D_i = dO_i·O_i, a key-row pass gives dK and dV, each group
// of 4 threads summing over its key's queries (and the query heads of its KV group) in a
// fixed order: no atomics, deterministic. Head dims 16, 32, 64 and 128 (a template each).
#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace kd::kern::cuda {

namespace {

constexpr int kTile = 32;  // rows of the streamed operand per shared-memory tile

// Keys and values j0 .. j0 + kTile - 1 of KV head g into shared memory (zeros past the
// sequence), between barriers: the previous tile is no longer read, this one is complete.
template <int HD>
__device__ void load_kv_tile(float (*ks)[HD], float (*vs)[HD], const float* qkv, const AttnShape& s, std::size_t row0,
                             int g, int j0) {
  __syncthreads();
  for (int e = threadIdx.x; e < kTile * HD; e += blockDim.x) {
    const int jj = e / HD, c = e % HD, j = j0 + jj;
    const std::size_t r = (row0 + j) * s.ld_qkv;
    ks[jj][c] = j < s.seq ? qkv[r + s.k_col + g * HD + c] : 0.0f;
    vs[jj][c] = j < s.seq ? qkv[r + s.v_col + g * HD + c] : 0.0f;
  }
  __syncthreads();
}

// Forward: a group of kLanes consecutive threads per query row, each holding every kLanes-th
// element of the head (interleaved: the group reads consecutive shared-memory banks); the
// group's partial dot products are summed by a butterfly of shuffles, which leaves the same
// float on every lane (a + b == b + a), so the lanes' online softmaxes agree exactly.
constexpr int kLanes = 4;
constexpr int kRowsFwd = 32;  // query (or key) rows per block (kRowsFwd · kLanes threads), backward too

// This thread's place: the block's first row, its own row, its lane within the row's group
// and the warp mask of that group.
struct RowLanes {
  int first, row, lane;
  unsigned group;
};
__device__ inline RowLanes row_lanes() {
  const int first = blockIdx.x * kRowsFwd;
  return {first, first + int(threadIdx.x) / kLanes, int(threadIdx.x) % kLanes,
          0xFu << (threadIdx.x % 32 / kLanes * kLanes)};
}

template <int HD>
__global__ void attn_forward_k(float* out, float* lse, const float* qkv, AttnShape s, float scale) {
  constexpr int D = HD / kLanes;
  __shared__ float ks[kTile][HD];
  __shared__ float vs[kTile][HD];
  const int b = blockIdx.z, h = blockIdx.y, g = h / (s.heads / s.kv_heads);
  const RowLanes rl = row_lanes();
  const int lane = rl.lane, i0 = rl.first, i = rl.row;
  const unsigned group = rl.group;
  const std::size_t row0 = std::size_t(b) * s.seq;
  const bool active = i < s.seq;
  float q[D], acc[D];
  float m = -INFINITY, l = 0.0f;
  if (active) {
    const float* qr = qkv + (row0 + i) * s.ld_qkv + s.q_col + h * HD;
    for (int c = 0; c < D; ++c) q[c] = qr[c * kLanes + lane] * scale, acc[c] = 0.0f;
  }
  const int last = min(s.seq - 1, i0 + kRowsFwd - 1);  // the block's last query sees keys 0..last
  for (int j0 = 0; j0 <= last; j0 += kTile) {
    load_kv_tile<HD>(ks, vs, qkv, s, row0, g, j0);
    if (!active) continue;
    const int jn = min(kTile, i - j0 + 1);  // causal: keys j <= i
    for (int jj = 0; jj < jn; ++jj) {
      float sc = 0.0f;
      for (int c = 0; c < D; ++c) sc += q[c] * ks[jj][c * kLanes + lane];
      sc += __shfl_xor_sync(group, sc, 1, kLanes);
      sc += __shfl_xor_sync(group, sc, 2, kLanes);
      const float mn = fmaxf(m, sc);
      const float corr = expf(m - mn), p = expf(sc - mn);
      l = l * corr + p;
      for (int c = 0; c < D; ++c) acc[c] = acc[c] * corr + p * vs[jj][c * kLanes + lane];
      m = mn;
    }
  }
  if (!active) return;
  const int ldo = s.heads * HD;
  float* o = out + (row0 + i) * ldo + h * HD;
  const float inv = 1.0f / l;
  for (int c = 0; c < D; ++c) o[c * kLanes + lane] = acc[c] * inv;
  if (lane == 0) lse[(std::size_t(b) * s.heads + h) * s.seq + i] = m + logf(l);
}

// The sum of a value over the kLanes threads of a row (the same float on every lane).
__device__ inline float lanes_sum(float v, unsigned group) {
  v += __shfl_xor_sync(group, v, 1, kLanes);
  return v + __shfl_xor_sync(group, v, 2, kLanes);
}

// dQ_i = scale Σ_j dS_ij K_j, dS_ij = P_ij (dO_i·V_j − D_i); also writes D_i. kLanes threads
// per query row, as in the forward.
template <int HD>
__global__ void attn_backward_dq_k(float* dqkv, float* dvec, const float* dout, const float* qkv, const float* out,
                                   const float* lse, AttnShape s, float scale) {
  constexpr int D = HD / kLanes;
  __shared__ float ks[kTile][HD];
  __shared__ float vs[kTile][HD];
  const int b = blockIdx.z, h = blockIdx.y, g = h / (s.heads / s.kv_heads);
  const RowLanes rl = row_lanes();
  const int lane = rl.lane, i0 = rl.first, i = rl.row;
  const unsigned group = rl.group;
  const std::size_t row0 = std::size_t(b) * s.seq;
  const bool active = i < s.seq;
  const int ldo = s.heads * HD;
  float q[D], go[D], dq[D];
  float li = 0.0f, di = 0.0f;
  if (active) {
    const float* qr = qkv + (row0 + i) * s.ld_qkv + s.q_col + h * HD;
    const float* orow = out + (row0 + i) * ldo + h * HD;
    const float* grow = dout + (row0 + i) * ldo + h * HD;
    for (int c = 0; c < D; ++c) {
      const int e = c * kLanes + lane;
      q[c] = qr[e] * scale;
      go[c] = grow[e];
      dq[c] = 0.0f;
      di += orow[e] * grow[e];
    }
    di = lanes_sum(di, group);
    li = lse[(std::size_t(b) * s.heads + h) * s.seq + i];
    if (lane == 0) dvec[(std::size_t(b) * s.heads + h) * s.seq + i] = di;
  }
  const int last = min(s.seq - 1, i0 + kRowsFwd - 1);
  for (int j0 = 0; j0 <= last; j0 += kTile) {
    load_kv_tile<HD>(ks, vs, qkv, s, row0, g, j0);
    if (!active) continue;
    const int jn = min(kTile, i - j0 + 1);
    for (int jj = 0; jj < jn; ++jj) {
      float sc = 0.0f, dp = 0.0f;
      for (int c = 0; c < D; ++c) sc += q[c] * ks[jj][c * kLanes + lane], dp += go[c] * vs[jj][c * kLanes + lane];
      sc = lanes_sum(sc, group);
      dp = lanes_sum(dp, group);
      const float ds = expf(sc - li) * (dp - di);
      for (int c = 0; c < D; ++c) dq[c] += ds * ks[jj][c * kLanes + lane];
    }
  }
  if (!active) return;
  float* dqr = dqkv + (row0 + i) * s.ld_qkv + s.q_col + h * HD;
  for (int c = 0; c < D; ++c) dqr[c * kLanes + lane] = dq[c] * scale;
}

// dK_j = scale Σ_{h in group, i >= j} dS_ij Q_i ; dV_j = Σ P_ij dO_i. kLanes threads per key row.
template <int HD>
__global__ void attn_backward_dkv_k(float* dqkv, const float* dvec, const float* dout, const float* qkv,
                                    const float* lse, AttnShape s, float scale) {
  constexpr int D = HD / kLanes;
  __shared__ float qs[kTile][HD];
  __shared__ float gs[kTile][HD];
  __shared__ float ls[kTile], ds_[kTile];
  const int b = blockIdx.z, g = blockIdx.y, heads_per_group = s.heads / s.kv_heads;
  const RowLanes rl = row_lanes();
  const int lane = rl.lane, j0 = rl.first, j = rl.row;
  const unsigned group = rl.group;
  const std::size_t row0 = std::size_t(b) * s.seq;
  const bool active = j < s.seq;
  const int ldo = s.heads * HD;
  float k[D], v[D], dk[D], dv[D];
  if (active) {
    const std::size_t r = (row0 + j) * s.ld_qkv;
    for (int c = 0; c < D; ++c) {
      const int e = c * kLanes + lane;
      k[c] = qkv[r + s.k_col + g * HD + e] * scale;
      v[c] = qkv[r + s.v_col + g * HD + e];
      dk[c] = dv[c] = 0.0f;
    }
  }
  for (int h = g * heads_per_group; h < (g + 1) * heads_per_group; ++h) {
    const std::size_t lrow = (std::size_t(b) * s.heads + h) * s.seq;
    for (int i1 = j0; i1 < s.seq; i1 += kTile) {  // queries i >= the block's first key
      __syncthreads();
      for (int e = threadIdx.x; e < kTile * HD; e += blockDim.x) {
        const int ii = e / HD, c = e % HD, i = i1 + ii;
        qs[ii][c] = i < s.seq ? qkv[(row0 + i) * s.ld_qkv + s.q_col + h * HD + c] : 0.0f;
        gs[ii][c] = i < s.seq ? dout[(row0 + i) * ldo + h * HD + c] : 0.0f;
      }
      for (int ii = threadIdx.x; ii < kTile; ii += blockDim.x) {
        const int i = i1 + ii;
        ls[ii] = i < s.seq ? lse[lrow + i] : 0.0f;
        ds_[ii] = i < s.seq ? dvec[lrow + i] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;
      for (int ii = 0; ii < kTile; ++ii) {
        const int i = i1 + ii;
        if (i < j || i >= s.seq) continue;  // causal: queries at or after the key (uniform per row)
        float sc = 0.0f, dp = 0.0f;
        for (int c = 0; c < D; ++c) sc += qs[ii][c * kLanes + lane] * k[c], dp += gs[ii][c * kLanes + lane] * v[c];
        sc = lanes_sum(sc, group);
        dp = lanes_sum(dp, group);
        const float p = expf(sc - ls[ii]);
        const float dsc = p * (dp - ds_[ii]);
        for (int c = 0; c < D; ++c) {
          dk[c] += dsc * qs[ii][c * kLanes + lane];
          dv[c] += p * gs[ii][c * kLanes + lane];
        }
      }
    }
  }
  if (!active) return;
  const std::size_t r = (row0 + j) * s.ld_qkv;
  for (int c = 0; c < D; ++c) {
    const int e = c * kLanes + lane;
    dqkv[r + s.k_col + g * HD + e] = dk[c] * scale;
    dqkv[r + s.v_col + g * HD + e] = dv[c];
  }
}

template <int HD>
void forward_hd(float* out, float* lse, const float* qkv, const AttnShape& s) {
  const dim3 grid((s.seq + kRowsFwd - 1) / kRowsFwd, s.heads, s.batch);
  attn_forward_k<HD><<<grid, kRowsFwd * kLanes>>>(out, lse, qkv, s, 1.0f / std::sqrt(float(HD)));
  check_launch("attention_forward");
}

template <int HD>
void backward_hd(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                 const AttnShape& s) {
  const float scale = 1.0f / std::sqrt(float(HD));
  float* dvec = scratch_of<float>(Scratch::attention, std::size_t(s.batch) * s.heads * s.seq);
  const int blocks = (s.seq + kRowsFwd - 1) / kRowsFwd;
  const dim3 gq(blocks, s.heads, s.batch), gk(blocks, s.kv_heads, s.batch);
  attn_backward_dq_k<HD><<<gq, kRowsFwd * kLanes>>>(dqkv, dvec, dout, qkv, out, lse, s, scale);
  check_launch("attention_backward (dq)");
  attn_backward_dkv_k<HD><<<gk, kRowsFwd * kLanes>>>(dqkv, dvec, dout, qkv, lse, s, scale);
  check_launch("attention_backward (dk, dv)");
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, const AttnShape& s) {
  if (s.batch == 0 || s.seq == 0) return;
  switch (s.head_dim) {
    case 16: return forward_hd<16>(out, lse, qkv, s);
    case 32: return forward_hd<32>(out, lse, qkv, s);
    case 64: return forward_hd<64>(out, lse, qkv, s);
    case 128: return forward_hd<128>(out, lse, qkv, s);
    default: throw_invalid("attention: head_dim must be 16, 32, 64 or 128 on the CUDA backend");
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const AttnShape& s) {
  if (s.batch == 0 || s.seq == 0) return;
  switch (s.head_dim) {
    case 16: return backward_hd<16>(dqkv, dout, qkv, out, lse, s);
    case 32: return backward_hd<32>(dqkv, dout, qkv, out, lse, s);
    case 64: return backward_hd<64>(dqkv, dout, qkv, out, lse, s);
    case 128: return backward_hd<128>(dqkv, dout, qkv, out, lse, s);
    default: throw_invalid("attention: head_dim must be 16, 32, 64 or 128 on the CUDA backend");
  }
}

}  // namespace kd::kern::cuda
