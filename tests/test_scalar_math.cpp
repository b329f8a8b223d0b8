// Element math shared by every backend (kernels/common/scalar_math.h, kd_math.h).
//
// What is checked, and why the bounds are what they are:
//  * exp_fast (float) against std::exp evaluated in double, over a dense sweep of
//    [-87, 88] (10^6 points plus the float neighbours of a few awkward points):
//    relative error <= 4 ulp = 4·2^-23 ≈ 4.8e-7. The header promises 2 ulp (degree-6
//    Taylor on |r| <= ln2/2 truncates at ~1.2e-7, plus a few float roundings); 4 ulp
//    leaves headroom for FMA contraction while a wrong coefficient or a broken
//    Cody-Waite split shows at >= 1e-5. Saturation: exactly 0 below ln(FLT_MIN)
//    and for -inf, +inf above 88 and for +inf, NaN propagates, exp_fast(0) == 1.
//  * sigmoid / silu / silu_grad / log_add_exp: the double instantiation (libm exp)
//    against the textbook formulas in double to ~1e-15 relative (a few roundings);
//    the float instantiation (exp_fast) against the double formula to 1e-6 relative
//    plus a 1e-30 absolute floor where the true value is below float resolution.
//    silu_grad is also checked against a central finite difference of silu in double
//    (truncation h²·f'''/6 ≈ 1e-11 with h = 1e-5, rounding ε/h ≈ 1e-11: bound 1e-8).
//  * kd_math.h divergence gradients: their values against the direct formulas, and,
//    more importantly, against central finite differences of the divergences
//    themselves (computed independently in double from softmaxes of the logits);
//    same FD error budget as above, bound 1e-7 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/common/kd_math.h"
#include "kernels/common/scalar_math.h"

namespace {

using kd::common::exp_fast;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

double rel_err(double got, double want) {
  if (got == want) return 0.0;
  return std::abs(got - want) / std::abs(want);
}

// ---------------------------------------------------------------- exp_fast

TEST(ExpFast, DenseSweepWithinFourUlp) {
  constexpr int kPoints = 1000000;
  constexpr double kLo = -87.0, kHi = 88.0;
  const double bound = 4.0 * std::ldexp(1.0, -23);
  double worst = 0;
  float worst_x = 0;
  for (int i = 0; i <= kPoints; ++i) {
    const float x = float(kLo + (kHi - kLo) * double(i) / kPoints);
    const double e = rel_err(double(exp_fast(x)), std::exp(double(x)));
    if (e > worst) {
      worst = e;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, bound) << "worst relative error " << worst << " at x = " << worst_x;
}

TEST(ExpFast, ReductionBoundariesWithinFourUlp) {
  // The neighbours of k·ln2/2 (where the rounding of k flips) and of the clamps.
  const double bound = 4.0 * std::ldexp(1.0, -23);
  std::vector<float> xs;
  for (int k = -250; k <= 252; ++k) {
    const float c = float(k * 0.5 * 0.69314718055994530942);
    if (c < -87.0f || c > 88.0f) continue;
    float a = c, b = c;
    for (int s = 0; s < 8; ++s) {
      xs.push_back(a);
      xs.push_back(b);
      a = std::nextafter(a, -kInfF);
      b = std::nextafter(b, kInfF);
    }
  }
  xs.push_back(88.0f);
  xs.push_back(-87.0f);
  xs.push_back(1e-30f);
  xs.push_back(-1e-30f);
  xs.push_back(std::numeric_limits<float>::denorm_min());
  for (float x : xs) {
    EXPECT_LE(rel_err(double(exp_fast(x)), std::exp(double(x))), bound) << "x = " << x;
  }
}

TEST(ExpFast, ZeroIsExactlyOne) { EXPECT_EQ(exp_fast(0.0f), 1.0f); EXPECT_EQ(exp_fast(-0.0f), 1.0f); }

TEST(ExpFast, UnderflowFlushesToExactZero) {
  for (float x : {-87.35f, -87.5f, -88.0f, -100.0f, -1e4f, -1e30f,
                  -std::numeric_limits<float>::max(), -kInfF}) {
    EXPECT_EQ(exp_fast(x), 0.0f) << "x = " << x;
  }
}

TEST(ExpFast, OverflowSaturatesToInfinity) {
  for (float x : {88.5f, 89.0f, 1e4f, 1e30f, std::numeric_limits<float>::max(), kInfF}) {
    EXPECT_EQ(exp_fast(x), kInfF) << "x = " << x;
  }
}

TEST(ExpFast, NaNPropagates) {
  EXPECT_TRUE(std::isnan(exp_fast(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(exp_fast(-std::numeric_limits<float>::quiet_NaN())));
}

TEST(ExpFast, ExpTDispatchesToLibmForDouble) {
  for (double x : {-700.0, -3.7, 0.0, 0.1, 5.5, 700.0}) {
    EXPECT_EQ(kd::common::exp_t<double>(x), std::exp(x)) << x;
  }
  EXPECT_EQ(kd::common::exp_t<float>(1.25f), exp_fast(1.25f));
}

// ---------------------------------------------------------------- sigmoid, silu

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double silu_ref(double x) { return x / (1.0 + std::exp(-x)); }
double silu_grad_ref(double x) {
  const double s = sigmoid_ref(x);
  return s + x * s * (1.0 - s);
}

std::vector<double> sweep_points() {
  std::vector<double> xs;
  for (int i = -4000; i <= 4000; ++i) xs.push_back(i * 0.01);  // [-40, 40]
  for (double x : {-200.0, -95.0, -88.5, -87.0, -60.0, 60.0, 87.0, 88.5, 95.0, 200.0}) {
    xs.push_back(x);
  }
  return xs;
}

TEST(Silu, DoubleMatchesFormula) {
  for (double x : sweep_points()) {
    EXPECT_NEAR(kd::common::sigmoid<double>(x), sigmoid_ref(x), 1e-15 * sigmoid_ref(x) + 1e-300)
        << x;
    EXPECT_NEAR(kd::common::silu<double>(x), silu_ref(x), 1e-15 * std::abs(silu_ref(x)) + 1e-300)
        << x;
    // s(1 + x(1 − s)) cancels near x ≈ −1.28: bound relative to the terms' size.
    EXPECT_NEAR(kd::common::silu_grad<double>(x), silu_grad_ref(x),
                1e-14 * sigmoid_ref(x) * (1.0 + std::abs(x)) + 1e-300)
        << x;
  }
}

TEST(Silu, FloatMatchesDoubleFormula) {
  for (double xd : sweep_points()) {
    const float x = float(xd);
    const double xr = double(x);
    EXPECT_NEAR(double(kd::common::sigmoid<float>(x)), sigmoid_ref(xr),
                1e-6 * sigmoid_ref(xr) + 1e-30)
        << x;
    EXPECT_NEAR(double(kd::common::silu<float>(x)), silu_ref(xr),
                1e-6 * std::abs(silu_ref(xr)) + 1e-30)
        << x;
    // silu_grad = s(1 + x(1 − s)): near its zero (x ≈ −1.28) the two terms cancel, so
    // the bound is relative to the size of the terms, |s|·(1 + |x|).
    const double scale = sigmoid_ref(xr) * (1.0 + std::abs(xr));
    EXPECT_NEAR(double(kd::common::silu_grad<float>(x)), silu_grad_ref(xr), 2e-6 * scale + 1e-30)
        << x;
  }
}

TEST(Silu, GradMatchesFiniteDifferenceOfSilu) {
  const double h = 1e-5;
  for (int i = -200; i <= 200; ++i) {
    const double x = i * 0.1 + 0.013;
    const double fd =
        (kd::common::silu<double>(x + h) - kd::common::silu<double>(x - h)) / (2 * h);
    EXPECT_NEAR(kd::common::silu_grad<double>(x), fd, 1e-8) << x;
  }
}

TEST(Silu, SaturatesWithoutNaN) {
  EXPECT_EQ(kd::common::silu<float>(-1000.0f), -0.0f);
  EXPECT_EQ(kd::common::silu<float>(1000.0f), 1000.0f);
  EXPECT_EQ(kd::common::silu_grad<float>(-1000.0f), 0.0f);
  EXPECT_EQ(kd::common::silu_grad<float>(1000.0f), 1.0f);
  EXPECT_EQ(kd::common::silu_grad<double>(1000.0), 1.0);
  EXPECT_FALSE(std::isnan(kd::common::silu_grad<double>(-1000.0)));
}

// ---------------------------------------------------------------- log_add_exp

TEST(LogAddExp, MatchesDirectFormula) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-30.0, 30.0);
  for (int i = 0; i < 2000; ++i) {
    const double a = u(rng), b = u(rng);
    const double want = std::log(std::exp(a) + std::exp(b));
    EXPECT_NEAR(kd::common::log_add_exp(a, b), want, 4e-16 * std::max(1.0, std::abs(want)))
        << a << " " << b;
    const float af = float(a), bf = float(b);
    const double wantf = std::log(std::exp(double(af)) + std::exp(double(bf)));
    EXPECT_NEAR(double(kd::common::log_add_exp(af, bf)), wantf,
                3e-7 * std::max(1.0, std::abs(wantf)))
        << af << " " << bf;
  }
}

TEST(LogAddExp, LargeArgumentsDoNotOverflow) {
  EXPECT_NEAR(kd::common::log_add_exp(1000.0, 1000.0), 1000.0 + std::log(2.0), 1e-12);
  EXPECT_NEAR(kd::common::log_add_exp(-1000.0, -1001.0), -1000.0 + std::log1p(std::exp(-1.0)),
              1e-12);
  EXPECT_NEAR(double(kd::common::log_add_exp(500.0f, 499.0f)),
              500.0 + std::log1p(std::exp(-1.0)), 1e-4);
}

TEST(LogAddExp, NegativeInfinityInputs) {
  EXPECT_EQ(kd::common::log_add_exp(-kInf, 3.5), 3.5);
  EXPECT_EQ(kd::common::log_add_exp(3.5, -kInf), 3.5);
  EXPECT_EQ(kd::common::log_add_exp(-kInf, -kInf), -kInf);
  EXPECT_EQ(kd::common::log_add_exp(-kInfF, -2.0f), -2.0f);
  EXPECT_EQ(kd::common::log_add_exp(-2.0f, -kInfF), -2.0f);
  EXPECT_EQ(kd::common::log_add_exp(-kInfF, -kInfF), -kInfF);
  EXPECT_EQ(kd::common::log_add_exp(-kInf, -1e300), -1e300);
}

TEST(LogAddExp, SymmetricAndNaNPropagates) {
  EXPECT_EQ(kd::common::log_add_exp(0.3, -2.0), kd::common::log_add_exp(-2.0, 0.3));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(kd::common::log_add_exp(nan, 1.0)));
  EXPECT_TRUE(std::isnan(kd::common::log_add_exp(1.0, nan)));
}

// ---------------------------------------------------------------- kd_math.h

// Tempered log-softmax in double.
std::vector<double> log_softmax(const std::vector<double>& x, double tau) {
  double mx = -kInf;
  for (double v : x) mx = std::max(mx, v / tau);
  double z = 0;
  for (double v : x) z += std::exp(v / tau - mx);
  std::vector<double> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] / tau - mx - std::log(z);
  return out;
}

double forward_kl(const std::vector<double>& s, const std::vector<double>& t, double tau) {
  const auto lq = log_softmax(s, tau), lp = log_softmax(t, tau);
  double d = 0;
  for (std::size_t i = 0; i < s.size(); ++i) d += std::exp(lp[i]) * (lp[i] - lq[i]);
  return d;
}

double reverse_kl(const std::vector<double>& s, const std::vector<double>& t, double tau) {
  const auto lq = log_softmax(s, tau), lp = log_softmax(t, tau);
  double d = 0;
  for (std::size_t i = 0; i < s.size(); ++i) d += std::exp(lq[i]) * (lq[i] - lp[i]);
  return d;
}

double gen_jsd(const std::vector<double>& s, const std::vector<double>& t, double tau,
               double beta) {
  const auto lq = log_softmax(s, tau), lp = log_softmax(t, tau);
  double kpm = 0, kqm = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const double p = std::exp(lp[i]), q = std::exp(lq[i]);
    const double m = beta * p + (1 - beta) * q;
    kpm += p * std::log(p / m);
    kqm += q * std::log(q / m);
  }
  return beta * kpm + (1 - beta) * kqm;
}

template <class F>
std::vector<double> fd_grad(std::vector<double> s, F&& f) {
  std::vector<double> g(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const double x0 = s[i], h = 1e-5 * std::max(1.0, std::abs(x0));
    s[i] = x0 + h;
    const double fp = f(s);
    const double xp = s[i];
    s[i] = x0 - h;
    const double fm = f(s);
    const double xm = s[i];
    s[i] = x0;
    g[i] = (fp - fm) / (xp - xm);
  }
  return g;
}

void expect_close_rel(const std::vector<double>& g, const std::vector<double>& ref, double tol,
                      const char* what) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    num += (g[i] - ref[i]) * (g[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  ASSERT_GT(den, 0.0) << what;
  EXPECT_LE(std::sqrt(num / den), tol) << what;
}

struct KdMathData {
  std::vector<double> s, t;
  double tau;
};

KdMathData kd_math_data() {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(-2.5, 2.5);
  KdMathData d;
  for (int i = 0; i < 9; ++i) {
    d.s.push_back(u(rng));
    d.t.push_back(u(rng));
  }
  d.tau = 1.7;
  return d;
}

TEST(KdMath, HelpersMatchTheirFormulas) {
  EXPECT_DOUBLE_EQ(kd::common::forward_kl_grad(0.3, 0.1, 0.5), (0.3 - 0.1) * 0.5);
  EXPECT_DOUBLE_EQ(kd::common::reverse_kl_grad(0.3, -0.2, 0.05, 0.5), 0.3 * (-0.2 - 0.05) * 0.5);
  EXPECT_DOUBLE_EQ(kd::common::jsd_grad(0.3, 0.4, 0.1, 0.7, 0.5), 0.7 * 0.5 * 0.3 * (0.4 - 0.1));
  EXPECT_FLOAT_EQ(kd::common::forward_kl_grad(0.3f, 0.1f, 0.5f), 0.1f);
}

TEST(KdMath, ForwardKlGradMatchesFiniteDifferences) {
  const auto d = kd_math_data();
  const auto lq = log_softmax(d.s, d.tau), lp = log_softmax(d.t, d.tau);
  std::vector<double> g(d.s.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    g[i] = kd::common::forward_kl_grad(std::exp(lq[i]), std::exp(lp[i]), 1.0 / d.tau);
  }
  const auto fd = fd_grad(d.s, [&](const std::vector<double>& s) { return forward_kl(s, d.t, d.tau); });
  expect_close_rel(g, fd, 1e-7, "forward KL");
}

TEST(KdMath, ReverseKlGradMatchesFiniteDifferences) {
  const auto d = kd_math_data();
  const auto lq = log_softmax(d.s, d.tau), lp = log_softmax(d.t, d.tau);
  double kl = 0;
  for (std::size_t i = 0; i < lq.size(); ++i) kl += std::exp(lq[i]) * (lq[i] - lp[i]);
  std::vector<double> g(d.s.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    g[i] = kd::common::reverse_kl_grad(std::exp(lq[i]), lq[i] - lp[i], kl, 1.0 / d.tau);
  }
  const auto fd = fd_grad(d.s, [&](const std::vector<double>& s) { return reverse_kl(s, d.t, d.tau); });
  expect_close_rel(g, fd, 1e-7, "reverse KL");
}

TEST(KdMath, JsdGradMatchesFiniteDifferences) {
  const auto d = kd_math_data();
  for (double beta : {0.3, 0.5, 0.9}) {
    const auto lq = log_softmax(d.s, d.tau), lp = log_softmax(d.t, d.tau);
    std::vector<double> lm(lq.size());
    double kl_qm = 0;
    for (std::size_t i = 0; i < lq.size(); ++i) {
      lm[i] = std::log(beta * std::exp(lp[i]) + (1 - beta) * std::exp(lq[i]));
      kl_qm += std::exp(lq[i]) * (lq[i] - lm[i]);
    }
    std::vector<double> g(d.s.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
      g[i] = kd::common::jsd_grad(std::exp(lq[i]), lq[i] - lm[i], kl_qm, 1 - beta, 1.0 / d.tau);
    }
    const auto fd =
        fd_grad(d.s, [&](const std::vector<double>& s) { return gen_jsd(s, d.t, d.tau, beta); });
    expect_close_rel(g, fd, 1e-7, "JSD");
  }
}

}  // namespace
