// The CUDA backend (kernels/cuda) against the CPU backend, the reference, on random shapes
// (odd sizes included), forward and backward. Without a usable GPU every test reports itself
// skipped with the reason (CI compiles this and has no GPU).
// Tolerances, and why:
//  * exact (bit for bit): embedding forward/backward (the same additions in the same order),
//    FakeQuant forward and STE backward (the same float multiply, rounding and clamp per
//    element: kernels/common/quant_math.h on both sides), AdamW within 2 ulp (the CPU build
//    may contract multiply-adds into FMAs, the CUDA kernels are built with -fmad=false);
//  * RMSNorm, SwiGLU: 2e-6 relative to the row's scale (a block tree vs a sequential sum, and
//    FMA contraction on the CPU);
//  * GEMM: fp32 (CUBLAS_COMPUTE_32F_PEDANTIC) 1e-5 of Σ|a||b|, tf32 (10-bit mantissas in)
//    2e-3, bf16 (8-bit mantissas in) 1e-2 of the same bound;
//  * Σx² in double: 1e-12 relative (another summation order);
//  * the distillation loss: 2e-5 relative (float sums over a vocabulary row in another order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/kernels.h"

namespace {

namespace cu = kd::kern::cuda;
using cu::DeviceBuffer;

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    static const std::string why = cu::unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << "no GPU: " << why;
  }
};

std::vector<float> randn(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

template <class T>
DeviceBuffer<T> up(const std::vector<T>& host) {
  DeviceBuffer<T> d(host.size());
  d.upload(host.data());
  return d;
}

template <class T>
std::vector<T> down(const DeviceBuffer<T>& d) {
  std::vector<T> host(d.size());
  d.download(host.data());
  return host;
}

// |got - want| <= tol · scale element-wise; reports the worst element.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol, double scale,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double(got[i]) - double(want[i]));
    if (e > worst || std::isnan(got[i]) != std::isnan(want[i])) worst = std::isnan(e) ? INFINITY : e, at = i;
  }
  EXPECT_LE(worst, tol * scale) << what << ": worst at " << at << ": " << got[at] << " vs " << want[at];
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (const float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

struct Shape {
  int m, d;
};
const Shape kShapes[] = {{1, 1}, {3, 7}, {17, 64}, {33, 257}, {128, 1000}};

TEST_F(CudaOps, EmbeddingForwardAndBackwardAreExact) {
  for (const Shape s : kShapes) {
    const int vocab = 11;
    std::vector<std::int32_t> tokens(std::size_t(s.m));
    for (int r = 0; r < s.m; ++r) tokens[std::size_t(r)] = (r * 7 + 3) % vocab;  // repeats
    const auto emb = randn(std::size_t(vocab) * s.d, 1), dx = randn(std::size_t(s.m) * s.d, 2);
    std::vector<float> x(std::size_t(s.m) * s.d), demb = randn(std::size_t(vocab) * s.d, 3);
    auto d_emb = up(emb), d_dx = up(dx), d_demb = up(demb);
    auto d_tok = up(tokens);
    DeviceBuffer<float> d_x(x.size());
    cu::embedding_forward(d_x.data(), d_emb.data(), d_tok.data(), s.m, s.d);
    cu::embedding_backward(d_demb.data(), d_dx.data(), d_tok.data(), s.m, s.d);
    kd::kern::embedding_forward(x.data(), emb.data(), tokens.data(), s.m, s.d);
    kd::kern::embedding_backward(demb.data(), dx.data(), tokens.data(), s.m, s.d);
    EXPECT_EQ(down(d_x), x) << s.m << "x" << s.d;
    EXPECT_EQ(down(d_demb), demb) << s.m << "x" << s.d;
  }
}

TEST_F(CudaOps, RmsNormMatchesTheCpu) {
  for (const Shape s : kShapes) {
    const std::size_t n = std::size_t(s.m) * s.d;
    const auto x = randn(n, 4, 2.0f), w = randn(std::size_t(s.d), 5), dy = randn(n, 6), dres = randn(n, 7);
    std::vector<float> y(n), rstd(std::size_t(s.m)), dx(n), dw = randn(std::size_t(s.d), 8);
    auto d_x = up(x), d_w = up(w), d_dy = up(dy), d_dres = up(dres), d_dw = up(dw);
    DeviceBuffer<float> d_y(n), d_rstd(rstd.size()), d_dx(n);
    kd::kern::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), s.m, s.d, 1e-5f);
    kd::kern::rmsnorm_backward(dx.data(), dw.data(), dy.data(), dres.data(), x.data(), rstd.data(), w.data(), s.m, s.d);
    cu::rmsnorm_forward(d_y.data(), d_rstd.data(), d_x.data(), d_w.data(), s.m, s.d, 1e-5f);
    cu::rmsnorm_backward(d_dx.data(), d_dw.data(), d_dy.data(), d_dres.data(), d_x.data(), d_rstd.data(), d_w.data(),
                         s.m, s.d);
    expect_close(down(d_y), y, 2e-6, max_abs(y), "rmsnorm y");
    expect_close(down(d_rstd), rstd, 2e-6, max_abs(rstd), "rmsnorm rstd");
    expect_close(down(d_dx), dx, 2e-6, max_abs(dx), "rmsnorm dx");
    expect_close(down(d_dw), dw, 2e-6 * s.m, max_abs(dw), "rmsnorm dw");
  }
}

TEST_F(CudaOps, SwiGluMatchesTheCpu) {
  for (const Shape s : kShapes) {
    const std::size_t n = std::size_t(s.m) * s.d;
    const auto gu = randn(2 * n, 9, 3.0f), dact = randn(n, 10);
    std::vector<float> act(n), dgu(2 * n);
    auto d_gu = up(gu), d_dact = up(dact);
    DeviceBuffer<float> d_act(n), d_dgu(2 * n);
    kd::kern::swiglu_forward(act.data(), gu.data(), s.m, s.d);
    kd::kern::swiglu_backward(dgu.data(), dact.data(), gu.data(), s.m, s.d);
    cu::swiglu_forward(d_act.data(), d_gu.data(), s.m, s.d);
    cu::swiglu_backward(d_dgu.data(), d_dact.data(), d_gu.data(), s.m, s.d);
    expect_close(down(d_act), act, 2e-6, max_abs(act), "swiglu act");
    expect_close(down(d_dgu), dgu, 2e-6, max_abs(dgu), "swiglu dgu");
  }
}

TEST_F(CudaOps, AdamWMatchesTheCpu) {
  const std::size_t n = 100003;
  auto p = randn(n, 11), g = randn(n, 12, 0.1f), m = randn(n, 13, 0.01f), v = randn(n, 14, 0.01f);
  for (float& x : v) x = x * x;
  const kd::kern::AdamWStep st{3e-4, 0.9, 0.999, 1e-8, 0.1, 1 - std::pow(0.9, 7), 1 - std::pow(0.999, 7), 0.5};
  auto d_p = up(p), d_g = up(g), d_m = up(m), d_v = up(v);
  kd::kern::adamw_update(p.data(), g.data(), m.data(), v.data(), n, st);
  cu::adamw_update(d_p.data(), d_g.data(), d_m.data(), d_v.data(), n, st);
  expect_close(down(d_p), p, 2.5e-7, max_abs(p), "adamw param");
  expect_close(down(d_m), m, 2.5e-7, max_abs(m), "adamw m");
  expect_close(down(d_v), v, 2.5e-7, max_abs(v), "adamw v");
}

TEST_F(CudaOps, FakeQuantForwardAndSteAreBitExact) {
  using kd::kern::QuantFormat;
  using kd::kern::QuantGranularity;
  using kd::kern::QuantKind;
  const int rows = 37, cols = 96;
  const auto x = randn(std::size_t(rows) * cols, 15, 2.0f), dy = randn(x.size(), 16);
  const std::vector<QuantFormat> formats = {
      {QuantKind::integer, 8, true, QuantGranularity::tensor, 0},  {QuantKind::integer, 4, true, QuantGranularity::channel, 0},
      {QuantKind::integer, 4, false, QuantGranularity::group, 32}, {QuantKind::integer, 2, true, QuantGranularity::token, 0},
      {QuantKind::fp8_e4m3, 8, true, QuantGranularity::channel, 0}, {QuantKind::fp8_e5m2, 8, true, QuantGranularity::tensor, 0},
      {QuantKind::fp8_e4m3, 8, true, QuantGranularity::token, 0}};
  for (const QuantFormat& f : formats) {
    const std::size_t slots = f.scale_count(rows, cols);
    std::vector<float> scale(slots);
    std::vector<std::int32_t> zero(slots);
    // scales that clip some elements (the STE mask matters) and asymmetric zero points
    kd::kern::quant_dynamic_scales(scale.data(), zero.data(), x.data(), f, rows, cols);
    for (float& s : scale) s *= 0.7f;
    std::vector<float> y(x.size()), dx(x.size());
    kd::kern::fake_quant_forward(y.data(), x.data(), scale.data(), zero.data(), f, rows, cols);
    kd::kern::fake_quant_backward_ste(dx.data(), dy.data(), x.data(), scale.data(), zero.data(), f, rows, cols);
    auto d_x = up(x), d_dy = up(dy), d_scale = up(scale);
    auto d_zero = up(zero);
    DeviceBuffer<float> d_y(x.size()), d_dx(x.size());
    cu::fake_quant_forward(d_y.data(), d_x.data(), d_scale.data(), d_zero.data(), f, rows, cols);
    cu::fake_quant_backward_ste(d_dx.data(), d_dy.data(), d_x.data(), d_scale.data(), d_zero.data(), f, rows, cols);
    EXPECT_EQ(down(d_y), y) << "format kind " << int(f.kind) << " bits " << f.bits << " granularity " << int(f.granularity);
    EXPECT_EQ(down(d_dx), dx) << "STE, format kind " << int(f.kind) << " granularity " << int(f.granularity);
  }
}

TEST_F(CudaOps, SumOfSquaresMatchesTheCpu) {
  for (const std::size_t n : {std::size_t(1), std::size_t(1000), std::size_t(3000017)}) {
    const auto x = randn(n, 17);
    auto d_x = up(x);
    const double want = kd::kern::sum_squares(x.data(), n), got = cu::sum_squares(d_x.data(), n);
    EXPECT_NEAR(got, want, 1e-12 * want) << n;
  }
}

// C = op(A) op(B) for every transpose combination, in the three math modes.
TEST_F(CudaOps, GemmMatchesTheCpuPerMathMode) {
  const int m = 67, n = 129, k = 300;
  for (const cu::MathMode mode : {cu::MathMode::fp32, cu::MathMode::tf32, cu::MathMode::bf16}) {
    const double tol = mode == cu::MathMode::fp32 ? 1e-5 : mode == cu::MathMode::tf32 ? 2e-3 : 1e-2;
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        const auto a = randn(std::size_t(m) * k, 18), b = randn(std::size_t(k) * n, 19), c0 = randn(std::size_t(m) * n, 20);
        const int lda = ta ? m : k, ldb = tb ? k : n;
        std::vector<float> c = c0;
        kd::kern::gemm(ta, tb, m, n, k, 1.5f, a.data(), lda, b.data(), ldb, 0.5f, c.data(), n);
        auto d_a = up(a), d_b = up(b), d_c = up(c0);
        cu::gemm(ta, tb, m, n, k, 1.5f, d_a.data(), lda, d_b.data(), ldb, 0.5f, d_c.data(), n, mode);
        // the bound: 1.5 Σ_k |a||b| ~ 1.5 k for unit normals; 0.5|c| on top
        const std::string what = std::string("gemm ") + cu::math_mode_name(mode) + (ta ? " A^T" : " A") + (tb ? " B^T" : " B");
        expect_close(down(d_c), c, tol, 1.5 * k, what.c_str());
      }
    }
  }
}

TEST_F(CudaOps, LinearForwardAndBackwardMatchTheCpu) {
  const int m = 45, n = 70, k = 96;
  const auto x = randn(std::size_t(m) * k, 21), w = randn(std::size_t(n) * k, 22), dy = randn(std::size_t(m) * n, 23);
  std::vector<float> y = randn(std::size_t(m) * n, 24), dx(std::size_t(m) * k), dw = randn(std::size_t(n) * k, 25);
  auto d_x = up(x), d_w = up(w), d_dy = up(dy), d_y = up(y), d_dw = up(dw);
  DeviceBuffer<float> d_dx(dx.size());
  kd::kern::linear_forward(y.data(), x.data(), w.data(), m, n, k, true);
  kd::kern::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), m, n, k, false);
  cu::linear_forward(d_y.data(), d_x.data(), d_w.data(), m, n, k, true, cu::MathMode::fp32);
  cu::linear_backward(d_dx.data(), d_dw.data(), d_dy.data(), d_x.data(), d_w.data(), m, n, k, false, cu::MathMode::fp32);
  expect_close(down(d_y), y, 1e-5, k, "linear y (accumulated)");
  expect_close(down(d_dx), dx, 1e-5, n, "linear dx");
  expect_close(down(d_dw), dw, 1e-5, m, "linear dw (accumulated)");
}

// LSQ's backward: dx exactly as the STE, dscale bit for bit (the same double sums in the same
// order), for a tensor scale, per-channel and grouped scales.
TEST_F(CudaOps, LsqBackwardIsBitExact) {
  using kd::kern::QuantFormat;
  using kd::kern::QuantGranularity;
  using kd::kern::QuantKind;
  const int rows = 29, cols = 64;
  const auto x = randn(std::size_t(rows) * cols, 40, 2.0f), dy = randn(x.size(), 41);
  for (const QuantFormat f : {QuantFormat{QuantKind::integer, 8, true, QuantGranularity::tensor, 0},
                              QuantFormat{QuantKind::integer, 4, true, QuantGranularity::channel, 0},
                              QuantFormat{QuantKind::integer, 4, false, QuantGranularity::group, 16}}) {
    const std::size_t slots = f.scale_count(rows, cols);
    std::vector<float> scale(slots);
    std::vector<std::int32_t> zero(slots);
    kd::kern::quant_dynamic_scales(scale.data(), zero.data(), x.data(), f, rows, cols);
    for (float& s : scale) s *= 0.6f;
    std::vector<float> dx(x.size()), dscale = randn(slots, 42, 0.1f);
    auto d_x = up(x), d_dy = up(dy), d_scale = up(scale), d_dscale = up(dscale);
    auto d_zero = up(zero);
    DeviceBuffer<float> d_dx(x.size());
    kd::kern::fake_quant_backward_lsq(dx.data(), dscale.data(), dy.data(), x.data(), scale.data(), zero.data(), f, rows,
                                      cols, 0.125f);
    cu::fake_quant_backward_lsq(d_dx.data(), d_dscale.data(), d_dy.data(), d_x.data(), d_scale.data(), d_zero.data(), f,
                                rows, cols, 0.125f);
    EXPECT_EQ(down(d_dx), dx) << "granularity " << int(f.granularity);
    EXPECT_EQ(down(d_dscale), dscale) << "granularity " << int(f.granularity);
  }
}

// RoPE forward then backward on the q and k columns of a fused qkv buffer.
TEST_F(CudaOps, RopeMatchesTheCpu) {
  const int batch = 3, seq = 17, heads = 4, kv = 2, hd = 16, ld = (heads + 2 * kv) * hd;
  const int rows = batch * seq;
  std::vector<float> cos(std::size_t(seq) * hd / 2), sin(cos.size());
  kd::kern::rope_table(cos.data(), sin.data(), seq, hd, 10000.0);
  auto x = randn(std::size_t(rows) * ld, 43);
  auto d_x = up(x), d_cos = up(cos), d_sin = up(sin);
  kd::kern::rope_forward(x.data(), cos.data(), sin.data(), rows, seq, heads, hd, ld, 0);
  kd::kern::rope_forward(x.data(), cos.data(), sin.data(), rows, seq, kv, hd, ld, heads * hd);
  cu::rope_forward(d_x.data(), d_cos.data(), d_sin.data(), rows, seq, heads, hd, ld, 0);
  cu::rope_forward(d_x.data(), d_cos.data(), d_sin.data(), rows, seq, kv, hd, ld, heads * hd);
  expect_close(down(d_x), x, 1e-6, max_abs(x), "rope forward");
  kd::kern::rope_backward(x.data(), cos.data(), sin.data(), rows, seq, heads, hd, ld, 0);
  cu::rope_backward(d_x.data(), d_cos.data(), d_sin.data(), rows, seq, heads, hd, ld, 0);
  expect_close(down(d_x), x, 1e-6, max_abs(x), "rope backward");
}

// The fused CE + divergence: all three divergences, CE alone, a padded vocabulary with a
// wider teacher row, ignored rows, and the gradient written over the student's logits.
TEST_F(CudaOps, DistillLossMatchesTheCpu) {
  using kd::kern::Divergence;
  const int r = 19, v = 1031, vk = 1000, tld = 1010;
  auto s = randn(std::size_t(r) * v, 30, 3.0f), t = randn(std::size_t(r) * tld, 31, 3.0f);
  std::vector<std::int32_t> labels(r);
  for (int i = 0; i < r; ++i) labels[std::size_t(i)] = i % 5 == 3 ? -1 : (i * 97) % v;
  for (const Divergence dv : {Divergence::forward_kl, Divergence::reverse_kl, Divergence::jensen_shannon}) {
    for (const bool with_teacher : {true, false}) {
      kd::kern::DistillLossParams p;
      p.temperature = 2.0;
      p.divergence = dv;
      p.jsd_beta = 0.3;
      p.ce_scale = 0.5 / r;
      p.kd_scale = 0.5 * 4.0 / r;
      p.kd_vocab = vk;
      p.teacher_ld = tld;
      std::vector<float> g(s.size());
      std::vector<kd::kern::LossRow> want(r), got(r);
      kd::kern::distill_loss_rows(g.data(), want.data(), s.data(), with_teacher ? t.data() : nullptr, labels.data(),
                                  r, v, p);
      auto d_s = up(s), d_t = up(t);
      auto d_l = up(labels);
      // in place: the gradient over the student's logits, as the training step does
      cu::distill_loss_rows(d_s.data(), got.data(), d_s.data(), with_teacher ? d_t.data() : nullptr, d_l.data(), r, v, p);
      const std::string what = std::string("divergence ") + std::to_string(int(dv)) + (with_teacher ? "" : " (CE only)");
      expect_close(down(d_s), g, 2e-5, max_abs(g), what.c_str());
      for (int i = 0; i < r; ++i) {
        EXPECT_NEAR(got[std::size_t(i)].ce, want[std::size_t(i)].ce, 2e-5 * (1 + std::fabs(want[std::size_t(i)].ce))) << what << " row " << i;
        EXPECT_NEAR(got[std::size_t(i)].kd, want[std::size_t(i)].kd, 2e-5 * (1 + std::fabs(want[std::size_t(i)].kd))) << what << " row " << i;
      }
    }
  }
}

TEST_F(CudaOps, DynamicScalesAreBitExact) {
  using kd::kern::QuantFormat;
  using kd::kern::QuantGranularity;
  using kd::kern::QuantKind;
  const int rows = 23, cols = 128;
  auto x = randn(std::size_t(rows) * cols, 50, 3.0f);
  x[77] = NAN;  // skipped by both
  for (const QuantFormat f : {QuantFormat{QuantKind::integer, 8, true, QuantGranularity::tensor, 0},
                              QuantFormat{QuantKind::integer, 8, false, QuantGranularity::token, 0},
                              QuantFormat{QuantKind::integer, 4, true, QuantGranularity::group, 32},
                              QuantFormat{QuantKind::fp8_e4m3, 8, true, QuantGranularity::channel, 0}}) {
    const std::size_t slots = f.scale_count(rows, cols);
    std::vector<float> scale(slots);
    std::vector<std::int32_t> zero(slots);
    kd::kern::quant_dynamic_scales(scale.data(), zero.data(), x.data(), f, rows, cols);
    auto d_x = up(x);
    DeviceBuffer<float> d_scale(slots);
    DeviceBuffer<std::int32_t> d_zero(slots);
    cu::quant_dynamic_scales(d_scale.data(), d_zero.data(), d_x.data(), f, rows, cols);
    EXPECT_EQ(down(d_scale), scale) << "granularity " << int(f.granularity);
    EXPECT_EQ(down(d_zero), zero) << "granularity " << int(f.granularity);
  }
}

TEST_F(CudaOps, FeatureLossMatchesTheCpu) {
  const int m = 37, d = 300;
  const auto hs = randn(std::size_t(m) * d, 51), target = randn(hs.size(), 52);
  for (const auto kind : {kd::kern::FeatureLoss::mse, kd::kern::FeatureLoss::cosine}) {
    std::vector<float> dhs = randn(hs.size(), 53), dt(hs.size());
    auto d_hs = up(hs), d_t = up(target), d_dhs = up(dhs);
    DeviceBuffer<float> d_dt(hs.size());
    const double want = kd::kern::feature_loss(dhs.data(), dt.data(), hs.data(), target.data(), m, d, kind, 0.7);
    const double got = cu::feature_loss(d_dhs.data(), d_dt.data(), d_hs.data(), d_t.data(), m, d, kind, 0.7);
    EXPECT_NEAR(got, want, 1e-5 * std::fabs(want)) << int(kind);
    expect_close(down(d_dhs), dhs, 1e-5, max_abs(dhs), "feature dhs");
    expect_close(down(d_dt), dt, 1e-5, max_abs(dt), "feature dtarget");
  }
}

// Masks, N:M against the pruner's rule (prune the smallest (|w|, index) first), reductions.
TEST_F(CudaOps, MasksAndReductionsMatch) {
  const std::size_t n = 4096;
  auto w = randn(n, 54);
  for (std::size_t i = 0; i < n; i += 16) w[i + 1] = w[i];  // ties
  std::vector<std::uint8_t> mask(n);
  for (std::size_t i = 0; i < n; ++i) mask[i] = (i * 7) % 3 != 0;
  auto d_w = up(w);
  auto d_mask = up(mask);
  std::vector<float> masked = w;
  for (std::size_t i = 0; i < n; ++i) masked[i] = mask[i] ? w[i] : 0.0f;
  cu::apply_mask(d_w.data(), d_mask.data(), n);
  EXPECT_EQ(down(d_w), masked);
  for (const auto& [keep, group] : {std::pair{2, 4}, std::pair{1, 4}, std::pair{4, 8}}) {
    std::vector<std::uint8_t> want(n, 0);
    for (std::size_t g = 0; g < n; g += std::size_t(group)) {
      std::vector<std::pair<double, std::size_t>> c;
      for (std::size_t i = g; i < g + std::size_t(group); ++i) c.push_back({std::fabs(double(w[i])), i});
      std::sort(c.begin(), c.end());
      for (std::size_t k = std::size_t(group - keep); k < c.size(); ++k) want[c[k].second] = 1;
    }
    auto d_src = up(w);
    DeviceBuffer<std::uint8_t> d_nm(n);
    cu::nm_mask(d_nm.data(), d_src.data(), n, keep, group);
    EXPECT_EQ(down(d_nm), want) << keep << ":" << group;
  }
  auto a = randn(n, 55), b = randn(n, 56);
  auto d_a = up(a), d_b = up(b);
  kd::kern::add_inplace(a.data(), b.data(), n);
  kd::kern::scale_inplace(a.data(), n, 0.25f);
  cu::add_inplace(d_a.data(), d_b.data(), n);
  cu::scale_inplace(d_a.data(), n, 0.25f);
  EXPECT_EQ(down(d_a), a);
  EXPECT_EQ(cu::first_non_finite(d_a.data(), n), -1);
  a[1234] = INFINITY;
  a[3000] = NAN;
  d_a.upload(a.data());
  EXPECT_EQ(cu::first_non_finite(d_a.data(), n), 1234);
}

// Attention forward and backward, GQA (4 query heads on 2 KV heads), a sequence that is not a
// multiple of the tiles, every supported head dim.
TEST_F(CudaOps, AttentionMatchesTheCpu) {
  for (const int hd : {16, 32, 64, 128}) {
    kd::kern::AttnShape s{2, 75, 4, 2, hd, 0, 0, 0, 0, 64};
    s.ld_qkv = (s.heads + 2 * s.kv_heads) * hd;
    s.q_col = 0;
    s.k_col = s.heads * hd;
    s.v_col = s.k_col + s.kv_heads * hd;
    const int rows = s.batch * s.seq, ldo = s.heads * hd;
    const auto qkv = randn(std::size_t(rows) * s.ld_qkv, 60), dout = randn(std::size_t(rows) * ldo, 61);
    std::vector<float> out(std::size_t(rows) * ldo), lse(std::size_t(s.batch) * s.heads * s.seq),
        dqkv(qkv.size()), scratch(kd::kern::attention_scratch_elems(s, 1) * 64);
    kd::kern::attention_forward(out.data(), lse.data(), qkv.data(), s, scratch.data());
    kd::kern::attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), s, scratch.data());
    auto d_qkv = up(qkv), d_dout = up(dout);
    DeviceBuffer<float> d_out(out.size()), d_lse(lse.size()), d_dqkv(dqkv.size());
    cu::attention_forward(d_out.data(), d_lse.data(), d_qkv.data(), s);
    cu::attention_backward(d_dqkv.data(), d_dout.data(), d_qkv.data(), d_out.data(), d_lse.data(), s);
    const std::string h = " hd " + std::to_string(hd);
    expect_close(down(d_out), out, 2e-5, max_abs(out), ("attention out" + h).c_str());
    expect_close(down(d_lse), lse, 2e-5, max_abs(lse), ("attention lse" + h).c_str());
    expect_close(down(d_dqkv), dqkv, 5e-5, max_abs(dqkv), ("attention dqkv" + h).c_str());
  }
}

TEST(CudaBackend, ReportsWhetherAGpuIsUsable) {
  const std::string why = cu::unavailable_reason();
  if (why.empty()) {
    std::cout << "[ cuda ] " << cu::device_description() << "\n";
    SUCCEED();
  } else {
    GTEST_SKIP() << "no GPU: " << why;
  }
}

}  // namespace
