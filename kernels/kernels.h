// kdtrain's math, one declaration per op family, forward and backward side by side.
//
// Conventions (all ops):
//  * Row-major. "Rows" are tokens: row r is batch r / T, position r % T.
//  * Outputs first, then inputs, then what the forward saved, then dimensions.
//  * Gradient contract: parameter gradients ACCUMULATE (+=); activation gradients
//    OVERWRITE (=) unless a parameter says otherwise (residual inputs are explicit).
//  * Every op is a template on the scalar type; float is the production type and the
//    double instantiation is the finite-difference reference of the same code.
//  * Work is split over the caller's OpenMP pool; BLAS calls inside a parallel region
//    run single-threaded (the OpenMP build of OpenBLAS checks omp_in_parallel()).
//
// The CPU backend (kernels/cpu) implements these; it is the spec the other backends
// are tested against.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kd::kern {

// ---------------------------------------------------------------- GEMM
// C = alpha op(A) op(B) + beta C, row-major, op = transpose when the flag is set.
template <class T>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
          const T* b, int ldb, T beta, T* c, int ldc);

// Linear layer without bias, weights in [out, in] (Hugging Face) layout.
// y (M,N) = x (M,K) · w(N,K)^T, plus y when accumulate (a residual add for free).
template <class T>
void linear_forward(T* y, const T* x, const T* w, int m, int n, int k, bool accumulate);
// The same with w stored in bfloat16 (a frozen teacher's weights): converted to float32 one
// tile of output rows at a time (a few hundred KB of scratch), each tile a float GEMM.
void linear_forward_bf16(float* y, const float* x, const std::uint16_t* w, int m, int n, int k, bool accumulate);
// dx (M,K) = dy · w (skipped when dx is null; += when accumulate_dx);  dw (N,K) += dy^T · x
template <class T>
void linear_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, int m, int n, int k,
                     bool accumulate_dx);

// ---------------------------------------------------------------- float64 factorisations
// One-shot compression (GPTQ, SparseGPT) works on the Hessian of a layer's calibration
// inputs in float64 (LAPACK's Cholesky). Matrices are (n, n), row-major, symmetric.
// c += alpha · xᵀx for x (rows, n): the full symmetric matrix is updated.
void syrk_accumulate(double* c, const double* x, int rows, int n, double alpha);
// a SPD → a⁻¹ (full); false when a is not positive definite (a is then undefined).
bool spd_inverse(double* a, int n);
// a SPD → its upper Cholesky factor U (a = UᵀU), the strict lower triangle zeroed; false
// when a is not positive definite.
bool cholesky_upper(double* a, int n);

// ---------------------------------------------------------------- embedding
// x (M,d) = emb[tokens]
template <class T>
void embedding_forward(T* x, const T* emb, const std::int32_t* tokens, int m, int d);
// demb (V,d) += scatter(dx); deterministic: each thread owns a slice of the d columns.
template <class T>
void embedding_backward(T* demb, const T* dx, const std::int32_t* tokens, int m, int d);

// ---------------------------------------------------------------- RMSNorm
// y (M,d) = x · rsqrt(mean(x²) + eps) · w ; rstd (M) saved for the backward.
template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int m, int d, T eps);
// dx (M,d) = dresid + RMSNorm'(dy) (dresid may be null);  dw (d) += Σ_rows dy·x̂.
// dw is reduced from per-thread partials in a fixed order: deterministic for a thread count.
template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* dresid, const T* x, const T* rstd,
                      const T* w, int m, int d);

// ---------------------------------------------------------------- RoPE
// Rotate-half (Hugging Face Llama) rotary embedding, in place on `heads` heads of
// head_dim hd starting at column col0 of rows with stride ld. Tables: cos/sin (T, hd/2).
// Llama 3's frequency scaling (Hugging Face rope_type "llama3"): wavelengths above
// original_context / low_freq_factor are stretched by `factor`, those below
// original_context / high_freq_factor kept, the band between blended. factor 0: none.
struct RopeScaling {
  double factor = 0;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  double original_context = 8192;
};
// The inverse frequency of rotation pair j of a head of size hd (in double).
double rope_inv_freq(int j, int hd, double theta, const RopeScaling& scaling = {});
template <class T>
void rope_table(T* cos, T* sin, int seq, int hd, double theta, const RopeScaling& scaling = {});
template <class T>
void rope_forward(T* x, const T* cos, const T* sin, int rows, int seq, int heads, int hd,
                  int ld, int col0);
// The inverse rotation: dx = R^T dy, in place.
template <class T>
void rope_backward(T* dx, const T* cos, const T* sin, int rows, int seq, int heads, int hd,
                   int ld, int col0);

// ---------------------------------------------------------------- attention
// Causal grouped-query attention over a fused qkv buffer (M, ld_qkv): columns
// [q_col, q_col + H·hd) hold q, [k_col, ...) hold k (Hkv heads), [v_col, ...) hold v.
// Tiled by blocks of `block` query rows: a thread holds the scores of one block of
// rows (block × T) at a time; the backward recomputes them from the saved logsumexp.
struct AttnShape {
  int batch, seq, heads, kv_heads, head_dim;
  int ld_qkv, q_col, k_col, v_col;
  int block = 64;
};
// Scratch elements a call needs for `threads` OpenMP threads.
std::size_t attention_scratch_elems(const AttnShape& s, int threads);
// out (M, H·hd); lse (B, H, T) = logsumexp of each row's scaled scores.
template <class T>
void attention_forward(T* out, T* lse, const T* qkv, const AttnShape& s, T* scratch);
// dqkv (M, ld_qkv) = gradient of q, k and v in the same columns (overwrite).
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                        const AttnShape& s, T* scratch);

// Attention of new rows against a KV cache (incremental decoding). Row r belongs to cache
// slot slot[r] at position pos[r]; it attends to that slot's positions 0..pos[r], its own
// k and v already written there. q (rows, ld) holds H heads from column 0; the caches are
// (slots, Hkv, capacity, hd), so one head's keys are contiguous. out (rows, H·hd).
// scratch: `threads` × capacity elements.
struct CachedAttnShape {
  int heads, kv_heads, head_dim, capacity;
};
template <class T>
void attention_cached(T* out, const T* q, int ld, const T* k_cache, const T* v_cache, const int* slot,
                      const int* pos, int rows, const CachedAttnShape& s, T* scratch, int threads);

// ---------------------------------------------------------------- SwiGLU
// gu (M, 2F): gate in columns [0,F), up in [F,2F) (one fused GEMM). act (M,F) = silu(g)·u
template <class T>
void swiglu_forward(T* act, const T* gu, int m, int f);
// dgu (M,2F) from dact (M,F)
template <class T>
void swiglu_backward(T* dgu, const T* dact, const T* gu, int m, int f);

// ---------------------------------------------------------------- distillation loss
enum class Divergence : int { forward_kl = 0, reverse_kl = 1, jensen_shannon = 2 };

struct DistillLossParams {
  double temperature = 1.0;   // tau
  Divergence divergence = Divergence::forward_kl;
  double jsd_beta = 0.5;      // mixture weight of the teacher in generalized JSD
  double ce_scale = 1.0;      // d loss / d (Σ_rows CE_row): alpha / N
  double kd_scale = 0.0;      // d loss / d (Σ_rows D_row):  (1 - alpha) tau² / N
  // Padded vocabularies: the divergence compares the first kd_vocab logits of both models
  // (0 = all V); entries beyond it are padding rows no token uses, and only CE sees the
  // student's. teacher_ld: the teacher's row length (0 = V, the student's).
  int kd_vocab = 0;
  int teacher_ld = 0;
  // On-policy rows (GKD): per row of the call (offset like labels; null = none), 1 marks a
  // row whose label is a token the student sampled: the divergence alone, scaled by
  // kd_only_scale (d loss / d D_row), no CE (its LossRow.ce is 0).
  const std::uint8_t* kd_only = nullptr;
  double kd_only_scale = 0.0;
};
// Per-row results, summed by the caller in row order (deterministic).
struct LossRow {
  double ce = 0;
  double kd = 0;
};
// One chunk of R rows of logits: student (R,V), teacher (R,teacher_ld) or null (CE only),
// labels (R) (< 0: row ignored, gradient 0). Writes d loss / d student logits into
// dlogits, which may alias `student`. Rows are independent, split over threads.
template <class T>
void distill_loss_rows(T* dlogits, LossRow* rows, const T* student, const T* teacher,
                       const std::int32_t* labels, int r, int v, const DistillLossParams& p);

// Top-k distillation (a cached teacher, or one on other ranks): the teacher is known by its
// k largest logits per row (raw values t_j and their distinct vocabulary indices) and the
// log-sum-exp of all its logits at the temperature, lse = log Σ_v exp(t_v / τ). Forward KL
// with the rest of the vocabulary as one bucket:
//   KL = Σ_{j∈K} p_j log(p_j / q_j) + p_tail log(p_tail / q_tail),
//   p_j = exp(t_j / τ − lse), p_tail = max(0, 1 − Σ_K p_j),
// q the student's tempered softmax over the first kd_vocab logits, q_tail its mass outside K.
// d KL / d s_v = (q_v − p_v) / τ in K and q_v (1 − p_tail / q_tail) / τ outside K (the
// student's tail is pulled to the teacher's tail mass as a whole). With K the whole
// vocabulary this is the full forward KL. CE, labels and scales as distill_loss_rows
// (teacher_ld unused). t_vals, t_idx: (r, k); t_lse: (r).
template <class T>
void topk_distill_loss_rows(T* dlogits, LossRow* rows, const T* student, const float* t_vals,
                            const std::int32_t* t_idx, const float* t_lse, const std::int32_t* labels, int r,
                            int v, int k, const DistillLossParams& p);

// ---------------------------------------------------------------- feature loss
enum class FeatureLoss : int { mse = 0, cosine = 1 };
// target (M, ds) = h_teacher (M, dt) · proj (ds, dt)^T is computed by the caller (GEMM).
// Returns the loss  (mse: mean over M·ds of (hs - target)²; cosine: mean over M of
// 1 - cos(hs_r, target_r)) and writes  dhs += scale · dL/dhs,  dtarget = scale · dL/dtarget.
template <class T>
double feature_loss(T* dhs, T* dtarget, const T* hs, const T* target, int m, int d,
                    FeatureLoss kind, double scale);

// ---------------------------------------------------------------- optimizer
struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
  double grad_scale;                          // clipping factor folded into the update
};
// One AdamW update on a contiguous range (decoupled decay: p -= lr·wd·p first).
template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamWStep& s);
// The same on the calling thread alone (the update above splits the range among OpenMP's
// threads): for a caller that splits the work itself (AdamW's update that takes each grain's
// CRC-32 while it is in the cache). Every element's result is the same bits.
template <class T>
void adamw_update_on_caller(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamWStep& s);

// ---------------------------------------------------------------- fake quantization
// Quantize-dequantize of a (rows, cols) tensor in float (QAT, calibration, simulated
// formats), with the element math of kernels/common/quant_math.h. Weights are [out, in]:
// a "channel" is a row and groups run along the row (the input dimension). Activations
// are (tokens, features): a "token" scale is one per row, computed from the row itself.
enum class QuantKind : int { none = 0, integer = 1, fp8_e4m3 = 2, fp8_e5m2 = 3 };
enum class QuantGranularity : int { tensor = 0, channel = 1, group = 2, token = 3 };

struct QuantFormat {
  QuantKind kind = QuantKind::none;
  int bits = 8;            // integer: 2..8
  bool symmetric = true;   // integer: signed grid, zero point 0; else unsigned grid + zero point
  QuantGranularity granularity = QuantGranularity::tensor;
  int group = 0;           // group: elements of a row sharing a scale (divides cols)
  bool enabled() const { return kind != QuantKind::none; }
  bool is_fp8() const { return kind == QuantKind::fp8_e4m3 || kind == QuantKind::fp8_e5m2; }
  // Scales (and zero points) a (rows, cols) tensor needs: 1, rows, rows·cols/group, rows.
  std::size_t scale_count(int rows, int cols) const;
  // Elements of a row one scale covers (cols for tensor/channel/token).
  int span(int cols) const { return granularity == QuantGranularity::group ? group : cols; }
};

// y = fake_quant(x). scale/zero hold scale_count() entries (zero may be null: all 0;
// fp8 formats ignore it). y may alias x.
void fake_quant_forward(float* y, const float* x, const float* scale, const std::int32_t* zero,
                        const QuantFormat& f, int rows, int cols);
// Dynamic scales from the tensor itself, one per scale slot: symmetric absmax or
// asymmetric min/max mapped onto the grid (PyTorch's qparams), fp8: absmax / fp8 max.
void quant_dynamic_scales(float* scale, std::int32_t* zero, const float* x, const QuantFormat& f,
                          int rows, int cols);
// Integer codes of x (rows, cols) as FakeQuant rounds them, shifted by -shift onto int8
// (an unsigned grid 0..255 with shift 128 becomes -128..127): the input of an integer GEMM.
// scale/zero: one per row (per_row) or one for the tensor; bits <= 8.
void quantize_codes_int8(std::int8_t* q, const float* x, const float* scale, const std::int32_t* zero,
                         bool per_row, int bits, bool symmetric, int shift, int rows, int cols);
// Straight-through estimator: dx = dy inside the clipping range, 0 outside (dx may alias dy).
void fake_quant_backward_ste(float* dx, const float* dy, const float* x, const float* scale,
                             const std::int32_t* zero, const QuantFormat& f, int rows, int cols);
// LSQ (integer formats): dx as the STE; dscale[j] += grad_factor · Σ over the elements
// scale j covers of dy · ∂fq/∂s (PyTorch's _fake_quantize_learnable_*). Deterministic:
// each scale's sum runs in element order.
void fake_quant_backward_lsq(float* dx, float* dscale, const float* dy, const float* x,
                             const float* scale, const std::int32_t* zero, const QuantFormat& f,
                             int rows, int cols, float grad_factor);

// ---------------------------------------------------------------- reductions
// Σ x² in double (deterministic for a thread count).
template <class T>
double sum_squares(const T* x, std::size_t n);
// Index of the first non-finite element, or -1.
template <class T>
std::ptrdiff_t first_non_finite(const T* x, std::size_t n);
template <class T>
void scale_inplace(T* x, std::size_t n, T s);
// y += x
template <class T>
void add_inplace(T* y, const T* x, std::size_t n);

}  // namespace kd::kern

// Integer GEMMs of quantized inference (W8A8, W4A8, W4A16).
#include "kernels/int_gemm.h"
