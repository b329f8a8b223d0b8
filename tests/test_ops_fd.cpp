// Every op's backward (kernels/kernels.h, CPU backend) against central finite
// differences, plus forward values against independent naive references and the
// gradient contract (parameter gradients +=, activation gradients =).
//
// Finite differences run on the DOUBLE instantiation, for both the analytic backward
// and the objective. Each op gets a scalar objective L = Σ w_i·y_i with fixed random
// weights w (every output element matters), and ∂L/∂x is compared with
//   g_fd = (L(x + h) − L(x − h)) / ((x + h) − (x − h)),  h = 1e-6·max(1, |x|)
// for every input element (all shapes are tiny). Tolerances:
//   ‖g − g_fd‖ / ‖g_fd‖ ≤ 1e-6   and   max|g − g_fd| ≤ 1e-6·max(1, max|g_fd|).
// Why: central FD in double has truncation error O(h²)·f''' ≈ 1e-12 and rounding
// error ≈ ε·|L|/h ≈ 1e-16·O(10)/1e-6 ≈ 1e-9 absolute, i.e. ≲ 1e-8 relative to
// gradients of O(0.1..1); 1e-6 leaves a wide margin, while a wrong or missing term,
// a transposed index or a wrong scale shows at ≥ 1e-2.
//
// Forward values against naive double references: 1e-12 (only summation order
// differs). Float-vs-double consistency of the big ops (attention, distillation loss,
// RMSNorm) on identical (float-representable) inputs: ≤ 1e-5 relative in norm; float
// carries ~6e-8 per operation and the 2-ulp exp_fast, a few tens of roundings deep.
// AdamW in float against its closed form: 1e-6 relative.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace {

namespace kern = kd::kern;
using Vec = std::vector<double>;

constexpr double kFdRelTol = 1e-6;
constexpr double kFdAbsTol = 1e-6;

Vec rand_vec(std::mt19937_64& rng, std::size_t n, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  Vec v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Values exactly representable in float, so float and double runs see the same input.
Vec round_to_float(Vec v) {
  for (auto& x : v) x = double(float(x));
  return v;
}

std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central finite differences of loss() w.r.t. x[i] for every i in idx (x is restored).
Vec fd_grad(Vec& x, const std::vector<std::size_t>& idx, const std::function<double()>& loss) {
  Vec g(idx.size());
  for (std::size_t n = 0; n < idx.size(); ++n) {
    const std::size_t i = idx[n];
    const double x0 = x[i];
    const double h = 1e-6 * std::max(1.0, std::abs(x0));
    x[i] = x0 + h;
    const double xp = x[i];
    const double lp = loss();
    x[i] = x0 - h;
    const double xm = x[i];
    const double lm = loss();
    x[i] = x0;
    g[n] = (lp - lm) / (xp - xm);
  }
  return g;
}

std::vector<std::size_t> all_indices(std::size_t n) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  return idx;
}

Vec fd_grad(Vec& x, const std::function<double()>& loss) {
  return fd_grad(x, all_indices(x.size()), loss);
}

// g (analytic, already restricted to the FD indices) against g_fd.
void expect_grad_matches(const Vec& g, const Vec& fd, const std::string& what) {
  ASSERT_EQ(g.size(), fd.size()) << what;
  double num = 0, den = 0, maxerr = 0, maxfd = 0;
  std::size_t worst = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double e = std::abs(g[i] - fd[i]);
    num += e * e;
    den += fd[i] * fd[i];
    if (e > maxerr) {
      maxerr = e;
      worst = i;
    }
    maxfd = std::max(maxfd, std::abs(fd[i]));
  }
  ASSERT_GT(den, 0.0) << what << ": finite-difference gradient is identically zero";
  EXPECT_LE(std::sqrt(num / den), kFdRelTol) << what;
  EXPECT_LE(maxerr, kFdAbsTol * std::max(1.0, maxfd))
      << what << ": worst element " << worst << " analytic " << g[worst] << " fd " << fd[worst];
}

// ‖a − b‖ / ‖b‖
double rel_norm_err(const Vec& a, const Vec& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <class F>
Vec to_double(const std::vector<F>& v) {
  return Vec(v.begin(), v.end());
}

void expect_all_near(const Vec& got, const Vec& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " [" << i << "]";
  }
}

// ================================================================ linear

struct LinearData {
  int m = 5, n = 7, k = 3;
  Vec x, w, wy;  // wy: objective weights on y
};

LinearData linear_data() {
  std::mt19937_64 rng(101);
  LinearData d;
  d.x = rand_vec(rng, std::size_t(d.m) * d.k);
  d.w = rand_vec(rng, std::size_t(d.n) * d.k);
  d.wy = rand_vec(rng, std::size_t(d.m) * d.n);
  return d;
}

double linear_loss(const LinearData& d) {
  Vec y(std::size_t(d.m) * d.n, 0.0);
  kern::linear_forward(y.data(), d.x.data(), d.w.data(), d.m, d.n, d.k, false);
  return dot(d.wy, y);
}

TEST(Linear, ForwardMatchesNaiveAndAccumulates) {
  auto d = linear_data();
  Vec y(std::size_t(d.m) * d.n, 123.0);
  kern::linear_forward(y.data(), d.x.data(), d.w.data(), d.m, d.n, d.k, false);
  Vec ref(y.size(), 0.0);
  for (int i = 0; i < d.m; ++i)
    for (int j = 0; j < d.n; ++j)
      for (int c = 0; c < d.k; ++c) ref[i * d.n + j] += d.x[i * d.k + c] * d.w[j * d.k + c];
  expect_all_near(y, ref, 1e-14, "y");
  Vec y2(y.size(), 0.5);
  kern::linear_forward(y2.data(), d.x.data(), d.w.data(), d.m, d.n, d.k, true);
  for (auto& r : ref) r += 0.5;
  expect_all_near(y2, ref, 1e-14, "y accumulate");
}

TEST(Linear, DxOverwriteMatchesFiniteDifferences) {
  auto d = linear_data();
  Vec dx(d.x.size(), 99.0);  // garbage: must be overwritten
  kern::linear_backward<double>(dx.data(), nullptr, d.wy.data(), d.x.data(), d.w.data(), d.m, d.n,
                                d.k, false);
  const Vec fd = fd_grad(d.x, [&] { return linear_loss(d); });
  expect_grad_matches(dx, fd, "dx");
}

TEST(Linear, DxAccumulateAddsToExisting) {
  auto d = linear_data();
  const double pre = 0.25;
  Vec dx(d.x.size(), pre);
  kern::linear_backward<double>(dx.data(), nullptr, d.wy.data(), d.x.data(), d.w.data(), d.m, d.n,
                                d.k, true);
  for (auto& v : dx) v -= pre;
  const Vec fd = fd_grad(d.x, [&] { return linear_loss(d); });
  expect_grad_matches(dx, fd, "dx (accumulate_dx)");
}

TEST(Linear, DwAccumulatesMatchesFiniteDifferences) {
  auto d = linear_data();
  const double pre = -0.75;
  Vec dw(d.w.size(), pre);
  Vec dx(d.x.size(), 0.0);
  kern::linear_backward<double>(dx.data(), dw.data(), d.wy.data(), d.x.data(), d.w.data(), d.m,
                                d.n, d.k, false);
  for (auto& v : dw) v -= pre;
  const Vec fd = fd_grad(d.w, [&] { return linear_loss(d); });
  expect_grad_matches(dw, fd, "dw");
  // dx null: dw alone, still accumulating.
  Vec dw2(d.w.size(), pre);
  kern::linear_backward<double>(nullptr, dw2.data(), d.wy.data(), d.x.data(), d.w.data(), d.m,
                                d.n, d.k, false);
  for (auto& v : dw2) v -= pre;
  expect_grad_matches(dw2, fd, "dw (dx null)");
}

// ================================================================ embedding

TEST(Embedding, ForwardGathersRows) {
  std::mt19937_64 rng(202);
  const int V = 6, d = 5;
  const std::vector<std::int32_t> tok = {3, 0, 3, 5, 3, 1, 0};
  const Vec emb = rand_vec(rng, std::size_t(V) * d);
  Vec x(tok.size() * d, 7.0);
  kern::embedding_forward(x.data(), emb.data(), tok.data(), int(tok.size()), d);
  for (std::size_t r = 0; r < tok.size(); ++r)
    for (int c = 0; c < d; ++c) EXPECT_EQ(x[r * d + c], emb[tok[r] * d + c]);
}

TEST(Embedding, BackwardAccumulatesMatchesFiniteDifferences) {
  std::mt19937_64 rng(203);
  const int V = 6, d = 5;
  const std::vector<std::int32_t> tok = {3, 0, 3, 5, 3, 1, 0};  // repeats; token 2, 4 unused
  const int m = int(tok.size());
  Vec emb = rand_vec(rng, std::size_t(V) * d);
  const Vec wx = rand_vec(rng, std::size_t(m) * d);
  auto loss = [&] {
    Vec x(std::size_t(m) * d);
    kern::embedding_forward(x.data(), emb.data(), tok.data(), m, d);
    return dot(wx, x);
  };
  const double pre = 1.5;
  Vec demb(emb.size(), pre);
  kern::embedding_backward(demb.data(), wx.data(), tok.data(), m, d);
  for (auto& v : demb) v -= pre;
  const Vec fd = fd_grad(emb, loss);
  expect_grad_matches(demb, fd, "demb");
  // Unused rows keep exactly the pre-filled value.
  for (int c = 0; c < d; ++c) {
    EXPECT_EQ(demb[2 * d + c], 0.0);
    EXPECT_EQ(demb[4 * d + c], 0.0);
  }
}

// ================================================================ RMSNorm

struct RmsData {
  int m, d;
  double eps;
  Vec x, w, wy, wr;  // wr: objective weight on the residual path (dresid)
};

RmsData rms_data(int m, int d, double eps, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  RmsData r{m, d, eps, {}, {}, {}, {}};
  r.x = rand_vec(rng, std::size_t(m) * d, -2.0, 2.0);
  r.w = rand_vec(rng, std::size_t(d), 0.5, 1.5);
  r.wy = rand_vec(rng, std::size_t(m) * d);
  r.wr = rand_vec(rng, std::size_t(m) * d);
  return r;
}

template <class T>
void rms_fwd(std::vector<T>& y, std::vector<T>& rstd, const std::vector<T>& x,
             const std::vector<T>& w, int m, int d, double eps) {
  y.assign(std::size_t(m) * d, T(0));
  rstd.assign(std::size_t(m), T(0));
  kern::rmsnorm_forward<T>(y.data(), rstd.data(), x.data(), w.data(), m, d, T(eps));
}

// L = Σ wy·y(x, w) + [with_resid] Σ wr·x  (the residual path: its gradient is dresid = wr)
double rms_loss(const RmsData& r, bool with_resid) {
  Vec y, rstd;
  rms_fwd(y, rstd, r.x, r.w, r.m, r.d, r.eps);
  return dot(r.wy, y) + (with_resid ? dot(r.wr, r.x) : 0.0);
}

class RmsNormFd : public ::testing::TestWithParam<int> {};  // param: d

TEST_P(RmsNormFd, ForwardMatchesFormula) {
  // d = 1 degenerates to x/sqrt(x² + eps): a larger eps keeps its gradient O(1).
  const int d = GetParam();
  auto r = rms_data(5, d, d == 1 ? 0.3 : 1e-5, 300 + d);
  Vec y, rstd;
  rms_fwd(y, rstd, r.x, r.w, r.m, r.d, r.eps);
  for (int i = 0; i < r.m; ++i) {
    double ss = 0;
    for (int c = 0; c < d; ++c) ss += r.x[i * d + c] * r.x[i * d + c];
    const double s = 1.0 / std::sqrt(ss / d + r.eps);
    EXPECT_NEAR(rstd[i], s, 1e-14 * s);
    for (int c = 0; c < d; ++c) EXPECT_NEAR(y[i * d + c], r.x[i * d + c] * s * r.w[c], 1e-14);
  }
}

TEST_P(RmsNormFd, DxMatchesFiniteDifferences) {
  const int d = GetParam();
  for (bool with_resid : {false, true}) {
    auto r = rms_data(5, d, d == 1 ? 0.3 : 1e-5, 310 + d);
    Vec y, rstd;
    rms_fwd(y, rstd, r.x, r.w, r.m, r.d, r.eps);
    Vec dx(r.x.size(), 55.0), dw(r.w.size(), 0.0);
    kern::rmsnorm_backward<double>(dx.data(), dw.data(), r.wy.data(),
                                   with_resid ? r.wr.data() : nullptr, r.x.data(), rstd.data(),
                                   r.w.data(), r.m, r.d);
    const Vec fd = fd_grad(r.x, [&] { return rms_loss(r, with_resid); });
    expect_grad_matches(dx, fd, with_resid ? "dx (with dresid)" : "dx (no dresid)");
  }
}

TEST_P(RmsNormFd, DwAccumulatesMatchesFiniteDifferences) {
  const int d = GetParam();
  auto r = rms_data(5, d, d == 1 ? 0.3 : 1e-5, 320 + d);
  Vec y, rstd;
  rms_fwd(y, rstd, r.x, r.w, r.m, r.d, r.eps);
  const double pre = 2.0;
  Vec dx(r.x.size()), dw(r.w.size(), pre);
  kern::rmsnorm_backward<double>(dx.data(), dw.data(), r.wy.data(), nullptr, r.x.data(),
                                 rstd.data(), r.w.data(), r.m, r.d);
  for (auto& v : dw) v -= pre;
  const Vec fd = fd_grad(r.w, [&] { return rms_loss(r, false); });
  expect_grad_matches(dw, fd, "dw");
}

TEST_P(RmsNormFd, FloatMatchesDouble) {
  const int d = GetParam();
  auto r = rms_data(5, d, d == 1 ? 0.3 : 1e-5, 330 + d);
  r.x = round_to_float(r.x);
  r.w = round_to_float(r.w);
  r.wy = round_to_float(r.wy);
  r.wr = round_to_float(r.wr);
  Vec y, rstd;
  rms_fwd(y, rstd, r.x, r.w, r.m, r.d, r.eps);
  Vec dx(r.x.size()), dw(r.w.size(), 0.0);
  kern::rmsnorm_backward<double>(dx.data(), dw.data(), r.wy.data(), r.wr.data(), r.x.data(),
                                 rstd.data(), r.w.data(), r.m, r.d);
  std::vector<float> yf, rstdf;
  const auto xf = to_float(r.x), wf = to_float(r.w), wyf = to_float(r.wy), wrf = to_float(r.wr);
  rms_fwd(yf, rstdf, xf, wf, r.m, r.d, r.eps);
  std::vector<float> dxf(xf.size()), dwf(wf.size(), 0.0f);
  kern::rmsnorm_backward<float>(dxf.data(), dwf.data(), wyf.data(), wrf.data(), xf.data(),
                                rstdf.data(), wf.data(), r.m, r.d);
  EXPECT_LE(rel_norm_err(to_double(yf), y), 1e-5);
  EXPECT_LE(rel_norm_err(to_double(rstdf), rstd), 1e-5);
  EXPECT_LE(rel_norm_err(to_double(dxf), dx), 1e-5);
  EXPECT_LE(rel_norm_err(to_double(dwf), dw), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Widths, RmsNormFd, ::testing::Values(7, 1),
                         [](const auto& tpi) { return std::string("d") + std::to_string(tpi.param); });

// ================================================================ RoPE

struct RopeLayout {
  int batch = 2, seq = 5, heads = 3, hd = 6, col0 = 2, ld = 2 + 3 * 6 + 3;
  int rows() const { return batch * seq; }
};

void rope_tables(Vec& c, Vec& s, const RopeLayout& L, double theta) {
  c.assign(std::size_t(L.seq) * L.hd / 2, 0.0);
  s.assign(c.size(), 0.0);
  kern::rope_table(c.data(), s.data(), L.seq, L.hd, theta);
}

TEST(Rope, ForwardMatchesHuggingFaceRotateHalf) {
  const RopeLayout L;
  for (double theta : {10000.0, 500000.0, 7.0}) {
    std::mt19937_64 rng(401);
    const Vec x0 = rand_vec(rng, std::size_t(L.rows()) * L.ld);
    Vec c, s;
    rope_tables(c, s, L, theta);
    Vec x = x0;
    kern::rope_forward(x.data(), c.data(), s.data(), L.rows(), L.seq, L.heads, L.hd, L.ld, L.col0);
    const int half = L.hd / 2;
    for (int r = 0; r < L.rows(); ++r) {
      const int pos = r % L.seq;
      for (int col = 0; col < L.ld; ++col) {
        const std::size_t i = std::size_t(r) * L.ld + col;
        const int rel = col - L.col0;
        if (rel < 0 || rel >= L.heads * L.hd) {
          EXPECT_EQ(x[i], x0[i]) << "column " << col << " outside the heads was modified";
          continue;
        }
        const int h = rel / L.hd, e = rel % L.hd, j = e % half;
        const double inv_freq = std::pow(theta, -2.0 * j / L.hd);
        const double ang = pos * inv_freq;
        const double* q = x0.data() + std::size_t(r) * L.ld + L.col0 + h * L.hd;
        // q' = q·cos + rotate_half(q)·sin, rotate_half(q) = cat(−q[half:], q[:half])
        const double rot = e < half ? -q[e + half] : q[e - half];
        const double want = q[e] * std::cos(ang) + rot * std::sin(ang);
        EXPECT_NEAR(x[i], want, 1e-14) << "theta " << theta << " row " << r << " col " << col;
      }
    }
  }
}

TEST(Rope, BackwardInvertsForward) {
  const RopeLayout L;
  std::mt19937_64 rng(402);
  const Vec x0 = rand_vec(rng, std::size_t(L.rows()) * L.ld);
  Vec c, s;
  rope_tables(c, s, L, 10000.0);
  Vec x = x0;
  kern::rope_forward(x.data(), c.data(), s.data(), L.rows(), L.seq, L.heads, L.hd, L.ld, L.col0);
  EXPECT_GT(rel_norm_err(x, x0), 1e-3);  // it did rotate something
  kern::rope_backward(x.data(), c.data(), s.data(), L.rows(), L.seq, L.heads, L.hd, L.ld, L.col0);
  expect_all_near(x, x0, 1e-15, "rope_backward(rope_forward(x))");
  // float too
  std::vector<float> cf(c.begin(), c.end()), sf(s.begin(), s.end());
  std::vector<float> xf = to_float(x0);
  kern::rope_forward(xf.data(), cf.data(), sf.data(), L.rows(), L.seq, L.heads, L.hd, L.ld, L.col0);
  kern::rope_backward(xf.data(), cf.data(), sf.data(), L.rows(), L.seq, L.heads, L.hd, L.ld,
                      L.col0);
  expect_all_near(to_double(xf), round_to_float(x0), 3e-7, "float round trip");
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  const RopeLayout L;
  std::mt19937_64 rng(403);
  Vec x = rand_vec(rng, std::size_t(L.rows()) * L.ld);
  const Vec wy = rand_vec(rng, x.size());
  Vec c, s;
  rope_tables(c, s, L, 10000.0);
  auto loss = [&] {
    Vec y = x;
    kern::rope_forward(y.data(), c.data(), s.data(), L.rows(), L.seq, L.heads, L.hd, L.ld, L.col0);
    return dot(wy, y);
  };
  Vec g = wy;  // in place: dx = Rᵀ dy on the head columns, identity elsewhere
  kern::rope_backward(g.data(), c.data(), s.data(), L.rows(), L.seq, L.heads, L.hd, L.ld, L.col0);
  const Vec fd = fd_grad(x, loss);
  expect_grad_matches(g, fd, "rope dx");
}

// ================================================================ attention

struct AttnCase {
  std::string name;
  kern::AttnShape s;
};

kern::AttnShape packed(int b, int t, int h, int hkv, int hd, int block) {
  kern::AttnShape s{};
  s.batch = b;
  s.seq = t;
  s.heads = h;
  s.kv_heads = hkv;
  s.head_dim = hd;
  s.q_col = 0;
  s.k_col = h * hd;
  s.v_col = s.k_col + hkv * hd;
  s.ld_qkv = s.v_col + hkv * hd;
  s.block = block;
  return s;
}

void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }

std::vector<AttnCase> attn_cases() {
  std::vector<AttnCase> v;
  v.push_back({"GqaSeqNotMultipleOfBlock", packed(2, 7, 4, 2, 4, 3)});
  v.push_back({"SingleToken", packed(1, 1, 2, 1, 2, 64)});
  v.push_back({"Mha", packed(2, 9, 3, 3, 6, 4)});
  v.push_back({"MqaBlockOne", packed(1, 6, 3, 1, 2, 1)});
  // Padded, permuted layout: [pad | v (8) | pad pad | k (8) | pad | q (16) | pad pad pad]
  kern::AttnShape p = packed(2, 5, 4, 2, 4, 2);
  p.v_col = 1;
  p.k_col = 11;
  p.q_col = 20;
  p.ld_qkv = 39;
  v.push_back({"PaddedPermutedColumns", p});
  return v;
}

std::size_t rows_of(const kern::AttnShape& s) { return std::size_t(s.batch) * s.seq; }

bool is_qkv_col(const kern::AttnShape& s, int c) {
  const int qw = s.heads * s.head_dim, kw = s.kv_heads * s.head_dim;
  return (c >= s.q_col && c < s.q_col + qw) || (c >= s.k_col && c < s.k_col + kw) ||
         (c >= s.v_col && c < s.v_col + kw);
}

template <class T>
void attn_fwd(const kern::AttnShape& s, const std::vector<T>& qkv, std::vector<T>& out,
              std::vector<T>& lse) {
  out.assign(rows_of(s) * s.heads * s.head_dim, T(0));
  lse.assign(std::size_t(s.batch) * s.heads * s.seq, T(0));
  std::vector<T> scratch(kern::attention_scratch_elems(s, omp_get_max_threads()));
  kern::attention_forward<T>(out.data(), lse.data(), qkv.data(), s, scratch.data());
}

template <class T>
void attn_bwd(const kern::AttnShape& s, std::vector<T>& dqkv, const std::vector<T>& dout,
              const std::vector<T>& qkv, const std::vector<T>& out, const std::vector<T>& lse) {
  std::vector<T> scratch(kern::attention_scratch_elems(s, omp_get_max_threads()));
  kern::attention_backward<T>(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), s,
                              scratch.data());
}

// Straightforward causal GQA: full softmax per row, head h reads kv head h / (H/Hkv).
void naive_attention(const kern::AttnShape& s, const Vec& qkv, Vec& out, Vec& lse) {
  const int hd = s.head_dim, H = s.heads, ldo = H * hd, group = H / s.kv_heads;
  out.assign(rows_of(s) * ldo, 0.0);
  lse.assign(std::size_t(s.batch) * H * s.seq, 0.0);
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < H; ++h) {
      const int g = h / group;
      for (int i = 0; i < s.seq; ++i) {
        const double* q = &qkv[(std::size_t(b) * s.seq + i) * s.ld_qkv + s.q_col + h * hd];
        Vec sc(i + 1);
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j <= i; ++j) {
          const double* k = &qkv[(std::size_t(b) * s.seq + j) * s.ld_qkv + s.k_col + g * hd];
          double d = 0;
          for (int c = 0; c < hd; ++c) d += q[c] * k[c];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        double z = 0;
        for (int j = 0; j <= i; ++j) z += std::exp(sc[j] - mx);
        const double l = mx + std::log(z);
        lse[(std::size_t(b) * H + h) * s.seq + i] = l;
        double* o = &out[(std::size_t(b) * s.seq + i) * ldo + h * hd];
        for (int j = 0; j <= i; ++j) {
          const double p = std::exp(sc[j] - l);
          const double* v = &qkv[(std::size_t(b) * s.seq + j) * s.ld_qkv + s.v_col + g * hd];
          for (int c = 0; c < hd; ++c) o[c] += p * v[c];
        }
      }
    }
}

class AttentionFd : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionFd, ForwardMatchesNaiveReference) {
  const auto& s = GetParam().s;
  std::mt19937_64 rng(501);
  const Vec qkv = rand_vec(rng, rows_of(s) * s.ld_qkv, -1.5, 1.5);
  Vec out, lse, ref_out, ref_lse;
  attn_fwd(s, qkv, out, lse);
  naive_attention(s, qkv, ref_out, ref_lse);
  expect_all_near(out, ref_out, 1e-12, "out");
  expect_all_near(lse, ref_lse, 1e-12, "lse");
}

TEST_P(AttentionFd, BackwardMatchesFiniteDifferences) {
  const auto& s = GetParam().s;
  std::mt19937_64 rng(502);
  Vec qkv = rand_vec(rng, rows_of(s) * s.ld_qkv, -1.5, 1.5);
  const Vec w = rand_vec(rng, rows_of(s) * s.heads * s.head_dim);
  Vec out, lse;
  attn_fwd(s, qkv, out, lse);
  constexpr double kSentinel = 12345.0;
  Vec dqkv(qkv.size());
  for (std::size_t i = 0; i < dqkv.size(); ++i) {
    // q/k/v columns: garbage that must be overwritten; other columns: must survive.
    dqkv[i] = is_qkv_col(s, int(i % s.ld_qkv)) ? -777.0 : kSentinel;
  }
  attn_bwd(s, dqkv, w, qkv, out, lse);

  std::vector<std::size_t> idx;
  Vec g;
  for (std::size_t i = 0; i < qkv.size(); ++i) {
    if (is_qkv_col(s, int(i % s.ld_qkv))) {
      idx.push_back(i);
      g.push_back(dqkv[i]);
    } else {
      EXPECT_EQ(dqkv[i], kSentinel) << "non-qkv column " << i % s.ld_qkv << " row "
                                    << i / s.ld_qkv << " was written";
    }
  }
  auto loss = [&] {
    Vec o, l;
    attn_fwd(s, qkv, o, l);
    return dot(w, o);
  };
  const Vec fd = fd_grad(qkv, idx, loss);
  expect_grad_matches(g, fd, GetParam().name + " dqkv");

  // Per section too, so a failure says whether q, k or v is wrong.
  for (const char* part : {"q", "k", "v"}) {
    const int c0 = part[0] == 'q' ? s.q_col : part[0] == 'k' ? s.k_col : s.v_col;
    const int w0 = (part[0] == 'q' ? s.heads : s.kv_heads) * s.head_dim;
    Vec gp, fp;
    for (std::size_t n = 0; n < idx.size(); ++n) {
      const int c = int(idx[n] % s.ld_qkv);
      if (c >= c0 && c < c0 + w0) {
        gp.push_back(g[n]);
        fp.push_back(fd[n]);
      }
    }
    if (s.seq == 1 && part[0] != 'v') continue;  // one key: q and k do not matter (fd == 0)
    expect_grad_matches(gp, fp, GetParam().name + " d" + part);
  }
}

TEST_P(AttentionFd, FloatMatchesDouble) {
  const auto& s = GetParam().s;
  std::mt19937_64 rng(503);
  const Vec qkv = round_to_float(rand_vec(rng, rows_of(s) * s.ld_qkv, -1.5, 1.5));
  const Vec w = round_to_float(rand_vec(rng, rows_of(s) * s.heads * s.head_dim));
  Vec out, lse, dqkv(qkv.size(), 0.0);
  attn_fwd(s, qkv, out, lse);
  attn_bwd(s, dqkv, w, qkv, out, lse);
  const auto qkvf = to_float(qkv), wf = to_float(w);
  std::vector<float> outf, lsef, dqkvf(qkvf.size(), 0.0f);
  attn_fwd(s, qkvf, outf, lsef);
  attn_bwd(s, dqkvf, wf, qkvf, outf, lsef);
  EXPECT_LE(rel_norm_err(to_double(outf), out), 1e-5);
  EXPECT_LE(rel_norm_err(to_double(lsef), lse), 1e-5);
  EXPECT_LE(rel_norm_err(to_double(dqkvf), dqkv), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionFd, ::testing::ValuesIn(attn_cases()),
                         [](const auto& tpi) { return tpi.param.name; });

// ================================================================ SwiGLU

TEST(SwiGlu, ForwardMatchesFormula) {
  std::mt19937_64 rng(601);
  const int m = 3, f = 5;
  const Vec gu = rand_vec(rng, std::size_t(m) * 2 * f, -4.0, 4.0);
  Vec act(std::size_t(m) * f, 9.0);
  kern::swiglu_forward(act.data(), gu.data(), m, f);
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < f; ++c) {
      const double g = gu[r * 2 * f + c], u = gu[r * 2 * f + f + c];
      EXPECT_NEAR(act[r * f + c], g / (1.0 + std::exp(-g)) * u, 1e-15);
    }
}

TEST(SwiGlu, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(602);
  const int m = 3, f = 5;
  Vec gu = rand_vec(rng, std::size_t(m) * 2 * f, -4.0, 4.0);
  const Vec w = rand_vec(rng, std::size_t(m) * f);
  Vec dgu(gu.size(), 31.0);
  kern::swiglu_backward(dgu.data(), w.data(), gu.data(), m, f);
  auto loss = [&] {
    Vec act(std::size_t(m) * f);
    kern::swiglu_forward(act.data(), gu.data(), m, f);
    return dot(w, act);
  };
  const Vec fd = fd_grad(gu, loss);
  expect_grad_matches(dgu, fd, "dgu");
}

// ================================================================ distillation loss

struct DistillCase {
  std::string name;
  bool teacher;
  kern::Divergence div;
};

void PrintTo(const DistillCase& c, std::ostream* os) { *os << c.name; }

constexpr int kDR = 4, kDV = 11;  // three scored rows and one ignored row (label −1)

kern::DistillLossParams distill_params(kern::Divergence div) {
  kern::DistillLossParams p;
  p.temperature = 1.7;
  p.divergence = div;
  p.jsd_beta = 0.3;
  p.ce_scale = 0.4;
  p.kd_scale = 0.9;
  return p;
}

struct DistillData {
  Vec s, t;
  std::vector<std::int32_t> labels{4, -1, 0, 10};
};

DistillData distill_data(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  DistillData d;
  d.s = rand_vec(rng, std::size_t(kDR) * kDV, -3.0, 3.0);
  d.t = rand_vec(rng, std::size_t(kDR) * kDV, -3.0, 3.0);
  return d;
}

template <class T>
std::vector<kern::LossRow> distill_run(std::vector<T>& dlogits, const std::vector<T>& s,
                                       const std::vector<T>* t,
                                       const std::vector<std::int32_t>& labels,
                                       const kern::DistillLossParams& p) {
  std::vector<kern::LossRow> rows(kDR);
  dlogits.resize(s.size());
  kern::distill_loss_rows<T>(dlogits.data(), rows.data(), s.data(), t ? t->data() : nullptr,
                             labels.data(), kDR, kDV, p);
  return rows;
}

double distill_objective(const std::vector<kern::LossRow>& rows, const kern::DistillLossParams& p) {
  double L = 0;
  for (const auto& r : rows) L += p.ce_scale * r.ce + p.kd_scale * r.kd;
  return L;
}

Vec log_softmax_row(const double* x, int v, double tau) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < v; ++i) mx = std::max(mx, x[i] / tau);
  double z = 0;
  for (int i = 0; i < v; ++i) z += std::exp(x[i] / tau - mx);
  Vec out(v);
  for (int i = 0; i < v; ++i) out[i] = x[i] / tau - mx - std::log(z);
  return out;
}

// Independent per-row CE (untempered) and divergence (tempered) in double.
kern::LossRow direct_row(const double* s, const double* t, int y, int v,
                         const kern::DistillLossParams& p) {
  kern::LossRow r;
  if (y < 0) return r;
  r.ce = -log_softmax_row(s, v, 1.0)[y];
  if (t == nullptr) return r;
  const Vec lq = log_softmax_row(s, v, p.temperature), lp = log_softmax_row(t, v, p.temperature);
  double d = 0;
  for (int i = 0; i < v; ++i) {
    const double q = std::exp(lq[i]), pp = std::exp(lp[i]);
    switch (p.divergence) {
      case kern::Divergence::forward_kl: d += pp * std::log(pp / q); break;
      case kern::Divergence::reverse_kl: d += q * std::log(q / pp); break;
      case kern::Divergence::jensen_shannon: {
        const double b = p.jsd_beta, m = b * pp + (1 - b) * q;
        d += b * pp * std::log(pp / m) + (1 - b) * q * std::log(q / m);
        break;
      }
    }
  }
  r.kd = d;
  return r;
}

class DistillLossFd : public ::testing::TestWithParam<DistillCase> {};

TEST_P(DistillLossFd, ValuesMatchDirectComputation) {
  const auto& c = GetParam();
  const auto p = distill_params(c.div);
  auto d = distill_data(701);
  Vec g;
  const auto rows = distill_run<double>(g, d.s, c.teacher ? &d.t : nullptr, d.labels, p);
  for (int r = 0; r < kDR; ++r) {
    const auto want = direct_row(&d.s[r * kDV], c.teacher ? &d.t[r * kDV] : nullptr,
                                 d.labels[r], kDV, p);
    EXPECT_NEAR(rows[r].ce, want.ce, 1e-12 * std::max(1.0, want.ce)) << "row " << r;
    EXPECT_NEAR(rows[r].kd, want.kd, 1e-12 * std::max(1.0, want.kd)) << "row " << r;
    if (c.teacher && d.labels[r] >= 0) {
      EXPECT_GT(rows[r].kd, 1e-3) << "row " << r;
    }
  }
}

TEST_P(DistillLossFd, GradientMatchesFiniteDifferences) {
  const auto& c = GetParam();
  const auto p = distill_params(c.div);
  auto d = distill_data(702);
  const Vec* t = c.teacher ? &d.t : nullptr;
  Vec g(d.s.size(), 42.0);  // garbage, must be overwritten
  distill_run<double>(g, d.s, t, d.labels, p);
  auto loss = [&] {
    Vec gg;
    return distill_objective(distill_run<double>(gg, d.s, t, d.labels, p), p);
  };
  const Vec fd = fd_grad(d.s, loss);
  expect_grad_matches(g, fd, c.name + " dlogits");
}

TEST_P(DistillLossFd, IgnoredRowHasZeroGradientAndLoss) {
  const auto& c = GetParam();
  const auto p = distill_params(c.div);
  auto d = distill_data(703);
  Vec g(d.s.size(), 42.0);
  const auto rows = distill_run<double>(g, d.s, c.teacher ? &d.t : nullptr, d.labels, p);
  ASSERT_EQ(d.labels[1], -1);
  EXPECT_EQ(rows[1].ce, 0.0);
  EXPECT_EQ(rows[1].kd, 0.0);
  for (int i = 0; i < kDV; ++i) EXPECT_EQ(g[kDV + i], 0.0) << i;
}

// On-policy rows (GKD, kd_only): the divergence alone at kd_only_scale, no CE value or
// gradient; the other rows as before. Checked by finite differences of
// Σ_rows (kd_only ? kd_only_scale·D : ce_scale·CE + kd_scale·D).
TEST_P(DistillLossFd, OnPolicyRowsAreTheDivergenceAlone) {
  const auto& c = GetParam();
  if (!c.teacher) GTEST_SKIP() << "on-policy rows need a teacher";
  auto p = distill_params(c.div);
  p.kd_only_scale = 0.7;
  const std::vector<std::uint8_t> only{1, 0, 0, 1};  // row 1 is ignored (label -1) either way
  p.kd_only = only.data();
  auto d = distill_data(706);
  Vec g(d.s.size(), 42.0);
  const auto rows = distill_run<double>(g, d.s, &d.t, d.labels, p);
  auto plain = p;
  plain.kd_only = nullptr;
  Vec g_plain;
  const auto rows_plain = distill_run<double>(g_plain, d.s, &d.t, d.labels, plain);
  for (int r = 0; r < kDR; ++r) {
    EXPECT_EQ(rows[r].kd, rows_plain[r].kd) << "row " << r;
    EXPECT_EQ(rows[r].ce, only[r] ? 0.0 : rows_plain[r].ce) << "row " << r;
  }
  auto loss = [&] {
    Vec gg;
    const auto rs = distill_run<double>(gg, d.s, &d.t, d.labels, p);
    double L = 0;
    for (int r = 0; r < kDR; ++r) {
      L += only[r] ? p.kd_only_scale * rs[r].kd : p.ce_scale * rs[r].ce + p.kd_scale * rs[r].kd;
    }
    return L;
  };
  expect_grad_matches(g, fd_grad(d.s, loss), c.name + " dlogits with on-policy rows");
}

TEST_P(DistillLossFd, AliasedOutputGivesSameResult) {
  const auto& c = GetParam();
  const auto p = distill_params(c.div);
  auto d = distill_data(704);
  const Vec* t = c.teacher ? &d.t : nullptr;
  Vec g;
  const auto rows = distill_run<double>(g, d.s, t, d.labels, p);
  Vec inplace = d.s;
  std::vector<kern::LossRow> rows2(kDR);
  kern::distill_loss_rows<double>(inplace.data(), rows2.data(), inplace.data(),
                                  t ? t->data() : nullptr, d.labels.data(), kDR, kDV, p);
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_EQ(inplace[i], g[i]) << i;
  for (int r = 0; r < kDR; ++r) {
    EXPECT_EQ(rows2[r].ce, rows[r].ce);
    EXPECT_EQ(rows2[r].kd, rows[r].kd);
  }
}

TEST_P(DistillLossFd, FloatMatchesDouble) {
  const auto& c = GetParam();
  const auto p = distill_params(c.div);
  auto d = distill_data(705);
  d.s = round_to_float(d.s);
  d.t = round_to_float(d.t);
  Vec g;
  const auto rows = distill_run<double>(g, d.s, c.teacher ? &d.t : nullptr, d.labels, p);
  const auto sf = to_float(d.s), tf = to_float(d.t);
  std::vector<float> gf;
  const auto rowsf = distill_run<float>(gf, sf, c.teacher ? &tf : nullptr, d.labels, p);
  EXPECT_LE(rel_norm_err(to_double(gf), g), 1e-5);
  Vec ce, ced, kd, kdd;
  for (int r = 0; r < kDR; ++r) {
    ce.push_back(rowsf[r].ce);
    ced.push_back(rows[r].ce);
    kd.push_back(rowsf[r].kd);
    kdd.push_back(rows[r].kd);
  }
  EXPECT_LE(rel_norm_err(ce, ced), 1e-5);
  EXPECT_LE(rel_norm_err(kd, kdd), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Divergences, DistillLossFd,
    ::testing::Values(DistillCase{"ForwardKl", true, kern::Divergence::forward_kl},
                      DistillCase{"ReverseKl", true, kern::Divergence::reverse_kl},
                      DistillCase{"JensenShannon", true, kern::Divergence::jensen_shannon},
                      DistillCase{"CeOnly", false, kern::Divergence::forward_kl}),
    [](const auto& tpi) { return tpi.param.name; });

// ================================================================ feature loss

class FeatureLossFd : public ::testing::TestWithParam<kern::FeatureLoss> {};

double feature_loss_direct(const Vec& hs, const Vec& tg, int m, int d, kern::FeatureLoss kind) {
  double L = 0;
  for (int r = 0; r < m; ++r) {
    double ab = 0, aa = 0, bb = 0, se = 0;
    for (int c = 0; c < d; ++c) {
      const double a = hs[r * d + c], b = tg[r * d + c];
      ab += a * b;
      aa += a * a;
      bb += b * b;
      se += (a - b) * (a - b);
    }
    L += kind == kern::FeatureLoss::mse ? se : 1.0 - ab / std::sqrt(aa * bb);
  }
  return kind == kern::FeatureLoss::mse ? L / (double(m) * d) : L / m;
}

TEST_P(FeatureLossFd, LossAndGradientsMatch) {
  const auto kind = GetParam();
  const int m = 4, d = 5;
  const double scale = 0.7;
  std::mt19937_64 rng(801);
  Vec hs = rand_vec(rng, std::size_t(m) * d), tg = rand_vec(rng, std::size_t(m) * d);
  const double pre = 0.3;
  Vec dhs(hs.size(), pre), dtg(tg.size(), -88.0);
  const double L =
      kern::feature_loss<double>(dhs.data(), dtg.data(), hs.data(), tg.data(), m, d, kind, scale);
  EXPECT_NEAR(L, feature_loss_direct(hs, tg, m, d, kind), 1e-14);
  EXPECT_GT(L, 1e-2);

  auto loss = [&] {
    Vec a(hs.size(), 0.0), b(tg.size(), 0.0);
    return kern::feature_loss<double>(a.data(), b.data(), hs.data(), tg.data(), m, d, kind, 1.0);
  };
  Vec fd_hs = fd_grad(hs, loss), fd_tg = fd_grad(tg, loss);
  for (auto& v : fd_hs) v *= scale;
  for (auto& v : fd_tg) v *= scale;
  for (auto& v : dhs) v -= pre;  // dhs accumulates
  expect_grad_matches(dhs, fd_hs, "dhs");
  expect_grad_matches(dtg, fd_tg, "dtarget");  // dtarget overwrites
}

INSTANTIATE_TEST_SUITE_P(Kinds, FeatureLossFd,
                         ::testing::Values(kern::FeatureLoss::mse, kern::FeatureLoss::cosine),
                         [](const auto& tpi) {
                           return tpi.param == kern::FeatureLoss::mse ? std::string("Mse")
                                                                       : std::string("Cosine");
                         });

// ================================================================ AdamW

kern::AdamWStep first_step(double lr, double wd, double eps, double gs) {
  kern::AdamWStep s{};
  s.lr = lr;
  s.beta1 = 0.9;
  s.beta2 = 0.999;
  s.eps = eps;
  s.weight_decay = wd;
  s.bias_correction1 = 1.0 - 0.9;
  s.bias_correction2 = 1.0 - 0.999;
  s.grad_scale = gs;
  return s;
}

template <class T>
void adamw_first_step_closed_form(double tol) {
  std::mt19937_64 rng(901);
  const std::size_t n = 37;
  Vec p0 = rand_vec(rng, n, -2.0, 2.0), g0 = rand_vec(rng, n, -3.0, 3.0);
  g0[0] = 0.0;    // zero gradient: only the decay acts
  g0[1] = 1e-7;   // |g'| ~ eps: the eps term matters
  p0 = round_to_float(p0);
  g0 = round_to_float(g0);
  const double lr = 0.05, wd = 0.1, eps = 1e-8, gsc = 0.5;
  const auto st = first_step(lr, wd, eps, gsc);
  std::vector<T> p(p0.begin(), p0.end()), g(g0.begin(), g0.end()), m(n, T(0)), v(n, T(0));
  kern::adamw_update<T>(p.data(), g.data(), m.data(), v.data(), n, st);
  double worst[3] = {0, 0, 0};
  std::size_t where[3] = {0, 0, 0};
  auto track = [&](int a, double got, double want, double size, std::size_t i) {
    const double e = size > 0 ? std::abs(got - want) / size : std::abs(got - want);
    if (e > worst[a]) {
      worst[a] = e;
      where[a] = i;
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    // torch AdamW, first step from m = v = 0 with bc1 = 1 − β1, bc2 = 1 − β2:
    //   m = (1−β1)g', v = (1−β2)g'², denom = sqrt(v)/sqrt(bc2) + eps = |g'| + eps,
    //   p ← p(1 − lr·wd) − (lr/bc1)·m/denom = p(1 − lr·wd) − lr·g'/(|g'| + eps)
    // (1−β) taken from the double hyper-parameters, as torch does: its
    // `value=1 - beta2` is a Python float rounded once to the tensor's dtype.
    const double gp = g0[i] * gsc;
    const double want_p = p0[i] * (1 - lr * wd) - lr * gp / (std::abs(gp) + eps);
    const double want_m = 0.1 * gp, want_v = 0.001 * gp * gp;
    // p relative to the size of its two terms (they cancel where p0 is lr-sized).
    track(0, double(p[i]), want_p, std::abs(p0[i]) * (1 - lr * wd) + lr, i);
    track(1, double(m[i]), want_m, std::abs(want_m), i);
    track(2, double(v[i]), want_v, std::abs(want_v), i);
  }
  EXPECT_LE(worst[0], tol) << "param, worst at " << where[0];
  EXPECT_LE(worst[1], tol) << "exp_avg (m), worst at " << where[1];
  EXPECT_LE(worst[2], tol) << "exp_avg_sq (v), worst at " << where[2];
}

TEST(AdamW, FirstStepMatchesClosedFormDouble) { adamw_first_step_closed_form<double>(1e-13); }
TEST(AdamW, FirstStepMatchesClosedFormFloat) { adamw_first_step_closed_form<float>(1e-6); }

TEST(AdamW, ThreeStepsMatchTorchFormula) {
  std::mt19937_64 rng(902);
  const std::size_t n = 29;
  Vec p = round_to_float(rand_vec(rng, n, -2.0, 2.0));
  std::vector<float> pf = to_float(p), mf(n, 0.f), vf(n, 0.f);
  Vec pd = p, md(n, 0.0), vd(n, 0.0);
  Vec pr = p, mr(n, 0.0), vr(n, 0.0);
  const double lr = 0.01, wd = 0.05, eps = 1e-8, b1 = 0.9, b2 = 0.999;
  for (int t = 1; t <= 3; ++t) {
    const Vec g = round_to_float(rand_vec(rng, n, -1.0, 1.0));
    const double gsc = 0.8 - 0.1 * t;
    kern::AdamWStep st{};
    st.lr = lr;
    st.beta1 = b1;
    st.beta2 = b2;
    st.eps = eps;
    st.weight_decay = wd;
    st.bias_correction1 = 1 - std::pow(b1, t);
    st.bias_correction2 = 1 - std::pow(b2, t);
    st.grad_scale = gsc;
    const auto gf = to_float(g);
    kern::adamw_update<float>(pf.data(), gf.data(), mf.data(), vf.data(), n, st);
    kern::adamw_update<double>(pd.data(), g.data(), md.data(), vd.data(), n, st);
    for (std::size_t i = 0; i < n; ++i) {
      const double gg = g[i] * gsc;
      pr[i] *= 1 - lr * wd;
      mr[i] = b1 * mr[i] + (1 - b1) * gg;
      vr[i] = b2 * vr[i] + (1 - b2) * gg * gg;
      const double denom = std::sqrt(vr[i]) / std::sqrt(st.bias_correction2) + eps;
      pr[i] -= lr / st.bias_correction1 * mr[i] / denom;
    }
  }
  EXPECT_LE(rel_norm_err(pd, pr), 1e-13) << "double param";
  EXPECT_LE(rel_norm_err(md, mr), 1e-13) << "double exp_avg";
  EXPECT_LE(rel_norm_err(vd, vr), 1e-13) << "double exp_avg_sq";
  EXPECT_LE(rel_norm_err(to_double(pf), pr), 1e-6) << "float param";
  EXPECT_LE(rel_norm_err(to_double(mf), mr), 1e-6) << "float exp_avg";
  EXPECT_LE(rel_norm_err(to_double(vf), vr), 1e-6) << "float exp_avg_sq";
}

// ================================================================ reductions

template <class T>
void sum_squares_case() {
  std::mt19937_64 rng(1001);
  const std::size_t n = (std::size_t(1) << 14) * 5 + 123;  // several ordered chunks
  const Vec xd = rand_vec(rng, n, -2.0, 2.0);
  const std::vector<T> x(xd.begin(), xd.end());
  double ref = 0;
  for (T v : x) ref += double(v) * double(v);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = kern::sum_squares(x.data(), n);
  omp_set_num_threads(2);
  const double two = kern::sum_squares(x.data(), n);
  omp_set_num_threads(saved);
  EXPECT_NEAR(one, ref, 1e-12 * ref);
  EXPECT_EQ(one, two) << "sum_squares depends on the thread count";
  EXPECT_EQ(kern::sum_squares(x.data(), 0), 0.0);
  EXPECT_EQ(kern::sum_squares(x.data(), 1), double(x[0]) * double(x[0]));
}

TEST(Reductions, SumSquaresFloat) { sum_squares_case<float>(); }
TEST(Reductions, SumSquaresDouble) { sum_squares_case<double>(); }

template <class T>
void first_non_finite_case() {
  const std::size_t n = 5000;
  std::vector<T> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = T(std::sin(double(i)) * 1e3);
  EXPECT_EQ(kern::first_non_finite(x.data(), n), -1);
  EXPECT_EQ(kern::first_non_finite(x.data(), 0), -1);
  auto y = x;
  y[3171] = std::numeric_limits<T>::quiet_NaN();
  EXPECT_EQ(kern::first_non_finite(y.data(), n), 3171);
  y[42] = std::numeric_limits<T>::infinity();
  EXPECT_EQ(kern::first_non_finite(y.data(), n), 42);
  auto z = x;
  z[n - 1] = -std::numeric_limits<T>::infinity();
  EXPECT_EQ(kern::first_non_finite(z.data(), n), std::ptrdiff_t(n - 1));
  auto w = x;
  w[0] = std::numeric_limits<T>::max();  // large but finite
  w[1] = std::numeric_limits<T>::denorm_min();
  EXPECT_EQ(kern::first_non_finite(w.data(), n), -1);
}

TEST(Reductions, FirstNonFiniteFloat) { first_non_finite_case<float>(); }
TEST(Reductions, FirstNonFiniteDouble) { first_non_finite_case<double>(); }

TEST(Reductions, ScaleAndAddInplace) {
  std::mt19937_64 rng(1002);
  const std::size_t n = 1037;
  const Vec a = rand_vec(rng, n), b = rand_vec(rng, n);
  Vec x = a;
  kern::scale_inplace(x.data(), n, -0.37);
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(x[i], a[i] * -0.37) << i;
  Vec y = a;
  kern::add_inplace(y.data(), b.data(), n);
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(y[i], a[i] + b[i]) << i;
  std::vector<float> xf = to_float(a), bf = to_float(b);
  kern::scale_inplace(xf.data(), n, 3.0f);
  kern::add_inplace(xf.data(), bf.data(), n);
  for (std::size_t i = 0; i < n; ++i) {
    volatile float t = float(a[i]) * 3.0f;  // two roundings, as the two kernels do
    EXPECT_EQ(xf[i], t + float(b[i])) << i;
  }
}

}  // namespace
