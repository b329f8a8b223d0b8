// Range observers and calibrators (trainer/quant/observers.h) on data with a known answer:
//  * minmax exact, moving average = PyTorch's float32 formula (numbers worked by hand);
//  * checkpoint state: save / load / continue == never stopping, for every kind, across
//    histogram growth; the histogram's doubling makes the counts independent of batching;
//  * percentile and KL clip a Gaussian's outliers, minmax keeps them;
//  * mse picks the clip that a brute-force search with the real fake-quant finds best;
//    uniform data is not clipped;
//  * bad names and states are InputErrors that say what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <numbers>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "trainer/quant/observers.h"
#include "base/errors.h"

namespace {

using kd::quant::Calibrator;
using kd::quant::Histogram;
using kd::quant::Observer;
using kd::quant::ObserverConfig;
using kd::quant::Range;
using kd::quant::Target;

const Target kInt8Sym{kd::common::int_grid(8, true), true, std::nullopt};
const Target kInt4Sym{kd::common::int_grid(4, true), true, std::nullopt};
const Target kUint8Asym{kd::common::int_grid(8, false), false, std::nullopt};
const Target kUint4Asym{kd::common::int_grid(4, false), false, std::nullopt};
const Target kE4m3{kd::common::int_grid(8, true), true, kd::common::Fp8Format::e4m3};

std::vector<float> gaussian(std::size_t n, double sigma, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = float(d(rng));
  return v;
}

std::vector<float> uniform(std::size_t n, double lo, double hi, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = float(d(rng));
  return v;
}

// Skewed, mostly positive: exponential(1) shifted by -0.3 (an asymmetric grid's case).
std::vector<float> shifted_exponential(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> d(1.0);
  std::vector<float> v(n);
  for (auto& x : v) x = float(d(rng) - 0.3);
  return v;
}

// N(0,1), 200k samples, plus 5 outliers at +50 and 5 at -50.
std::vector<float> gaussian_with_outliers() {
  std::vector<float> v = gaussian(200000, 1.0, 7);
  for (int i = 0; i < 5; ++i) {
    v.push_back(50.0f);
    v.push_back(-50.0f);
  }
  return v;
}

Observer observed(Calibrator kind, const std::vector<float>& x) {
  ObserverConfig cfg;
  cfg.kind = kind;
  Observer o(cfg);
  o.observe(x);
  return o;
}

// Mean squared error of the target's real fake-quant over x with the clip r.
double measured_mse(const std::vector<float>& x, Range r, const Target& t) {
  const kd::common::Affine a = kd::quant::to_affine(r, t);
  double s = 0.0;
  for (float v : x) {
    const double d = double(kd::quant::quant_dequant(v, a, t)) - double(v);
    s += d * d;
  }
  return s / double(x.size());
}

// Brute force: the least measured MSE over clips ±amax·k/steps (symmetric and FP8) or
// (lo·i/steps, hi·j/steps) (asymmetric).
double best_on_grid(const std::vector<float>& x, const Target& t, int steps) {
  const Range mm = kd::quant::minmax_range(x.data(), x.size());
  double best = INFINITY;
  if (t.fp8 || t.symmetric) {
    const double amax = std::max(-double(mm.lo), double(mm.hi));
    for (int k = 1; k <= steps; ++k) {
      const auto a = float(amax * k / steps);
      best = std::min(best, measured_mse(x, {-a, a}, t));
    }
    return best;
  }
  const double lo = std::min(double(mm.lo), 0.0), hi = std::max(double(mm.hi), 0.0);
  for (int i = 0; i <= steps; ++i)
    for (int j = 1; j <= steps; ++j)
      best = std::min(best, measured_mse(x, {float(lo * i / steps), float(hi * j / steps)}, t));
  return best;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kd::InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// ---------------------------------------------------------------- names and config
TEST(Calibrator, NamesRoundTripAndBadNameListsTheValidOnes) {
  for (auto c : {Calibrator::minmax, Calibrator::moving_average, Calibrator::percentile, Calibrator::mse,
                 Calibrator::kl})
    EXPECT_EQ(kd::quant::parse_calibrator(kd::quant::to_string(c), "k"), c);
  const std::string msg = error_of([] { kd::quant::parse_calibrator("foo", "quant.activations.calibrator"); });
  EXPECT_NE(msg.find("quant.activations.calibrator"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'foo'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("minmax, moving_average, percentile, mse, kl"), std::string::npos) << msg;
}

TEST(ObserverConfig, OutOfRangeFieldsNameTheKey) {
  ObserverConfig c;
  c.bins = 4095;
  EXPECT_NE(error_of([&] { c.validate("quant.act"); }).find("quant.act.bins is 4095"), std::string::npos);
  c = {};
  c.percentile = 40;
  EXPECT_NE(error_of([&] { c.validate("quant.act"); }).find("quant.act.percentile"), std::string::npos);
  c = {};
  c.averaging_constant = 0;
  EXPECT_NE(error_of([&] { c.validate("quant.act"); }).find("quant.act.averaging_constant"), std::string::npos);
  EXPECT_THROW(Observer{c}, kd::InputError);
}

// ---------------------------------------------------------------- minmax, moving average
TEST(MinMax, ExactOverBatchesNonFiniteSkipped) {
  ObserverConfig cfg;
  Observer o(cfg);
  EXPECT_TRUE(o.empty());
  const std::vector<float> nan_only{NAN, INFINITY};
  o.observe(nan_only);
  EXPECT_TRUE(o.empty());
  o.observe(std::vector<float>{0.5f, -0.25f, NAN});
  o.observe(std::vector<float>{3.0f, -INFINITY, 1.0f});
  o.observe(std::vector<float>{-7.125f, 2.0f});
  EXPECT_EQ(o.range(kInt8Sym).lo, -7.125f);
  EXPECT_EQ(o.range(kInt8Sym).hi, 3.0f);
  const std::vector<float> all{0.5f, -0.25f, NAN, 3.0f, -INFINITY, 1.0f, -7.125f, 2.0f};
  const Range direct = kd::quant::minmax_range(all.data(), all.size());
  EXPECT_EQ(direct.lo, -7.125f);
  EXPECT_EQ(direct.hi, 3.0f);
}

TEST(MovingAverage, FormulaWorkedByHand) {
  // c = 1/4 and binary fractions: every step is exact, so the expected values are too.
  ObserverConfig cfg;
  cfg.kind = Calibrator::moving_average;
  cfg.averaging_constant = 0.25;
  Observer o(cfg);
  o.observe(std::vector<float>{-1.0f, 0.5f, 2.0f});  // first batch sets them: [-1, 2]
  EXPECT_EQ(o.range(kInt8Sym).lo, -1.0f);
  EXPECT_EQ(o.range(kInt8Sym).hi, 2.0f);
  o.observe(std::vector<float>{-3.0f, 6.0f});  // -1 + (-3 + 1)/4 = -1.5;  2 + (6 - 2)/4 = 3
  EXPECT_EQ(o.range(kInt8Sym).lo, -1.5f);
  EXPECT_EQ(o.range(kInt8Sym).hi, 3.0f);
  o.observe(std::vector<float>{NAN});  // no finite value: not a batch
  o.observe(std::vector<float>{1.0f, 3.0f});  // -1.5 + 2.5/4 = -0.875;  3 + 0 = 3
  EXPECT_EQ(o.range(kInt8Sym).lo, -0.875f);
  EXPECT_EQ(o.range(kInt8Sym).hi, 3.0f);
  o.observe(std::vector<float>{0.125f, 7.0f});  // -0.875 + 1/4 = -0.625;  3 + 1 = 4
  EXPECT_EQ(o.range(kInt8Sym).lo, -0.625f);
  EXPECT_EQ(o.range(kInt8Sym).hi, 4.0f);
}

TEST(MovingAverage, DefaultConstantInFloat32AsTorch) {
  // c = 0.01: torch computes min + float(0.01)·(batch_min - min) in float32, one rounding
  // per operation: the same three roundings here give the exact expected value, and the
  // real-number formula (in double) agrees to float precision.
  ObserverConfig cfg;
  cfg.kind = Calibrator::moving_average;
  Observer o(cfg);
  const std::vector<std::pair<float, float>> batches{{-1.0f, 1.0f}, {-3.0f, 2.5f}, {-0.5f, 9.0f}, {-2.0f, 0.25f}};
  float mn = 0, mx = 0;
  double mn_real = 0, mx_real = 0;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    const auto [lo, hi] = batches[b];
    o.observe(std::vector<float>{lo, 0.0f, hi});
    if (b == 0) {
      mn = lo, mx = hi, mn_real = lo, mx_real = hi;
    } else {
      const volatile float dn = 0.01f * (lo - mn), dx = 0.01f * (hi - mx);
      mn = mn + dn, mx = mx + dx;
      mn_real += 0.01 * (lo - mn_real), mx_real += 0.01 * (hi - mx_real);
    }
    EXPECT_EQ(o.range(kInt8Sym).lo, mn) << "batch " << b;
    EXPECT_EQ(o.range(kInt8Sym).hi, mx) << "batch " << b;
    EXPECT_NEAR(o.range(kInt8Sym).lo, mn_real, 1e-6) << "batch " << b;
    EXPECT_NEAR(o.range(kInt8Sym).hi, mx_real, 1e-6) << "batch " << b;
  }
  EXPECT_NEAR(mn_real, -1.024652, 1e-12);  // by hand: -1 -> -1.02 -> -1.0148 -> -1.024652
  EXPECT_NEAR(mx_real, 1.0864015, 1e-12);  // 1 -> 1.015 -> 1.09485 -> 1.0864015
}

// ---------------------------------------------------------------- checkpoint state
class StateRoundTrip : public ::testing::TestWithParam<Calibrator> {};

TEST_P(StateRoundTrip, SaveLoadContinueEqualsNeverStopping) {
  ObserverConfig cfg;
  cfg.kind = GetParam();
  const std::vector<float> a1 = gaussian(3000, 0.3, 1), a2 = gaussian(3000, 0.5, 2);
  const std::vector<float> b1 = gaussian(3000, 6.0, 3), b2 = gaussian(3000, 40.0, 4);  // R grows in B
  Observer straight(cfg), first(cfg);
  for (const auto* x : {&a1, &a2, &b1, &b2}) straight.observe(*x);
  first.observe(a1);
  first.observe(a2);
  const std::vector<double> saved = first.state();
  Observer resumed(cfg);
  resumed.load_state(saved);
  EXPECT_EQ(resumed.state(), saved);  // exact, value for value
  resumed.observe(b1);
  resumed.observe(b2);
  EXPECT_EQ(resumed.state(), straight.state());
  for (const Target& t : {kInt8Sym, kUint8Asym, kInt4Sym, kE4m3}) {
    EXPECT_EQ(resumed.range(t).lo, straight.range(t).lo);
    EXPECT_EQ(resumed.range(t).hi, straight.range(t).hi);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, StateRoundTrip,
                         ::testing::Values(Calibrator::minmax, Calibrator::moving_average, Calibrator::percentile,
                                           Calibrator::mse, Calibrator::kl),
                         [](const auto& p) { return std::string(kd::quant::to_string(p.param)); });

TEST(State, MalformedOrMismatchedStatesNameTheKind) {
  ObserverConfig mm, ma, hist;
  ma.kind = Calibrator::moving_average;
  hist.kind = Calibrator::kl;
  hist.bins = 64;
  Observer o_mm(mm), o_ma(ma), o_h(hist);
  const std::vector<float> x = gaussian(500, 1.0, 5);
  o_mm.observe(x);
  o_ma.observe(x);
  o_h.observe(x);

  std::vector<double> s = o_mm.state();
  s.push_back(0.0);
  EXPECT_NE(error_of([&] { Observer(mm).load_state(s); }).find("minmax observer state"), std::string::npos);
  s = o_ma.state();
  s.pop_back();
  EXPECT_NE(error_of([&] { Observer(ma).load_state(s); }).find("moving_average observer state"), std::string::npos);
  s = o_h.state();
  s.pop_back();
  EXPECT_NE(error_of([&] { Observer(hist).load_state(s); }).find("kl observer state"), std::string::npos);
  EXPECT_NE(error_of([&] { Observer(mm).load_state(o_h.state()); }).find("the state is of a kl observer"),
            std::string::npos);
  ObserverConfig other_bins = hist;
  other_bins.bins = 128;
  EXPECT_THROW(Observer(other_bins).load_state(o_h.state()), kd::InputError);
  EXPECT_THROW(Observer(mm).load_state(std::vector<double>{}), kd::InputError);

  s = o_h.state();
  s[1 + Histogram::kHeader + 30] += 1.0;  // bins no longer sum to the total
  EXPECT_NE(error_of([&] { Observer(hist).load_state(s); }).find("sum to"), std::string::npos);
  s = o_h.state();
  s[1 + Histogram::kHeader + 30] = 0.5;
  EXPECT_NE(error_of([&] { Observer(hist).load_state(s); }).find("not a count"), std::string::npos);
  s = o_h.state();
  s[1 + 4] = 3.0;  // radius not a power of two
  EXPECT_NE(error_of([&] { Observer(hist).load_state(s); }).find("power of two"), std::string::npos);
  s = o_mm.state();
  s[2] = NAN;
  EXPECT_THROW(Observer(mm).load_state(s), kd::InputError);

  Observer untouched(hist);  // a failed load leaves the observer as it was
  EXPECT_THROW(untouched.load_state(s), kd::InputError);
  EXPECT_TRUE(untouched.empty());
}

// ---------------------------------------------------------------- histogram
TEST(Histogram, BinsByHandAndMergesOnGrowth) {
  Histogram h(8);
  h.add(std::vector<float>{0.0f, 0.0f}.data(), 2);  // only zeros: R stays 0, bin 4 ([0, w))
  EXPECT_EQ(h.radius(), 0.0);
  EXPECT_EQ(h.counts()[4], 2u);
  const std::vector<float> a{0.3f};  // R = 0.5, w = 0.125: bin 4 + floor(0.3 / 0.125) = 6
  h.add(a.data(), a.size());
  EXPECT_EQ(h.radius(), 0.5);
  EXPECT_EQ(h.counts()[6], 1u);
  const std::vector<float> b{-0.3f, 1.5f, 3.0f, -4.0f + 1e-6f};  // R = 4, w = 1
  h.add(b.data(), b.size());
  EXPECT_EQ(h.radius(), 4.0);
  const std::vector<std::uint64_t> want{1, 0, 0, 1, 3, 1, 0, 1};  // 0.3 merged from bin 6 to 4
  EXPECT_EQ(std::vector<std::uint64_t>(h.counts().begin(), h.counts().end()), want);
  EXPECT_EQ(h.total(), 7u);
  EXPECT_EQ(h.min(), -4.0f + 1e-6f);
  EXPECT_EQ(h.max(), 3.0f);
  // |x|: {0, 0, 0.3, 0.3}, {1.5}, {}, {3, 3.99..}
  EXPECT_EQ(h.folded(), (std::vector<std::uint64_t>{4, 1, 0, 2}));
}

TEST(Histogram, OneBatchOrManyGivesTheSameCounts) {
  // Batches of growing scale (R doubles many times, from 0), in every grouping and order:
  // identical state. bins = 10 makes bins/2 odd, so merged pairs straddle the old edges.
  std::vector<std::vector<float>> batches{std::vector<float>(50, 0.0f)};
  for (int k = 0; k < 8; ++k) batches.push_back(gaussian(1000, std::ldexp(0.01, 2 * k), 100 + k));
  batches.push_back({-1e6f, 3e-30f, -3e-30f});
  for (int bins : {10, 64, 4096}) {
    Histogram one(bins), many(bins), backwards(bins);
    std::vector<float> all;
    for (const auto& b : batches) {
      all.insert(all.end(), b.begin(), b.end());
      many.add(b.data(), b.size());
    }
    for (auto it = batches.rbegin(); it != batches.rend(); ++it) backwards.add(it->data(), it->size());
    one.add(all.data(), all.size());
    std::vector<double> s_one, s_many, s_back;
    one.append_state(s_one);
    many.append_state(s_many);
    backwards.append_state(s_back);
    EXPECT_EQ(s_many, s_one) << bins << " bins";
    EXPECT_EQ(s_back, s_one) << bins << " bins";
    EXPECT_EQ(one.radius(), 1048576.0);  // the smallest power of two above 1e6
    EXPECT_EQ(one.total(), all.size());
  }
}

// ---------------------------------------------------------------- outliers
TEST(Outliers, PercentileAndKlClipThemMinmaxKeepsThem) {
  const std::vector<float> x = gaussian_with_outliers();
  const Range mm = observed(Calibrator::minmax, x).range(kInt8Sym);
  EXPECT_EQ(mm.lo, -50.0f);
  EXPECT_EQ(mm.hi, 50.0f);
  // 99.99% of |x|: the top 20 of 200010 values are the 10 outliers and the 10 largest
  // |N(0,1)|, so the clip is near the Gaussian's 1 - 5e-5 two-sided quantile, 4.06;
  // [3.5, 4.6] covers its sampling spread (about ±0.1) and the bin interpolation.
  const Range p = observed(Calibrator::percentile, x).range(kInt8Sym);
  EXPECT_GT(p.hi, 3.5f);
  EXPECT_LT(p.hi, 4.6f);
  EXPECT_EQ(p.lo, -p.hi);
  // asymmetric: the lower and upper 0.01% each, about ±3.7 (1 - 1e-4 one-sided, 3.72)
  const Range pa = observed(Calibrator::percentile, x).range(kUint8Asym);
  EXPECT_LT(pa.lo, -3.2f);
  EXPECT_GT(pa.lo, -4.3f);
  EXPECT_GT(pa.hi, 3.2f);
  EXPECT_LT(pa.hi, 4.3f);
  // KL: well inside the outliers and outside the bulk of the Gaussian
  const Range kl = observed(Calibrator::kl, x).range(kInt8Sym);
  EXPECT_GT(kl.hi, 2.0f);
  EXPECT_LT(kl.hi, 10.0f);
  EXPECT_EQ(kl.lo, -kl.hi);
  // mse does NOT clip them: dropping ten values from 50 to ~4 costs 10·46²/200010 = 0.106
  // of squared error per element, keeping them costs a rounding error of (50/127.5)²/12 =
  // 0.013. Its optimum trims a little off the outliers: ~45 (brute force: Mse below).
  const Range ms = observed(Calibrator::mse, x).range(kInt8Sym);
  EXPECT_GT(ms.hi, 40.0f);
  EXPECT_LE(ms.hi, 50.0f);
}

TEST(Kl, Fp8FallsBackToMse) {
  const std::vector<float> x = gaussian_with_outliers();
  const Range kl = observed(Calibrator::kl, x).range(kE4m3), ms = observed(Calibrator::mse, x).range(kE4m3);
  EXPECT_EQ(kl.lo, ms.lo);
  EXPECT_EQ(kl.hi, ms.hi);
}

// ---------------------------------------------------------------- mse
struct MseCase {
  const char* name;
  std::vector<float> (*data)();
  Target target;
};

std::vector<float> gauss200k() { return gaussian(200000, 1.0, 11); }
std::vector<float> exp200k() { return shifted_exponential(200000, 12); }

void PrintTo(const MseCase& c, std::ostream* os) { *os << c.name; }

class Mse : public ::testing::TestWithParam<MseCase> {};

// The histogram search and the direct search both land within 1% of the least measured
// MSE over a 400-step (symmetric) or 60 x 60 (asymmetric) brute-force grid of clips. Why 1%:
// the MSE is flat (quadratic) around its minimum; the histogram's candidates are bin edges
// (~0.1% of amax apart) and its error estimate assumes values uniform within a bin, and
// mse_range's 100 candidates are 1% of amax apart, either of which moves the measured
// MSE by well under 1% near the optimum.
TEST_P(Mse, ChosenClipIsTheBruteForceBest) {
  const std::vector<float> x = GetParam().data();
  const Target& t = GetParam().target;
  const bool sym = t.fp8 || t.symmetric;
  // the 2-D brute force measures 61 x 60 clips: 40k values keep it to a second
  const std::vector<float> sample(x.begin(), x.begin() + std::ptrdiff_t(sym ? x.size() : 40000));
  const double best = best_on_grid(sample, t, sym ? 400 : 60);
  const Observer o = observed(Calibrator::mse, sample);
  const Range h = o.range(t);
  const Range d = kd::quant::mse_range(sample.data(), sample.size(), t);
  const double mh = measured_mse(sample, h, t), md = measured_mse(sample, d, t);
  EXPECT_LE(mh, best * 1.01) << "histogram clip [" << h.lo << ", " << h.hi << "]";
  EXPECT_LE(md, best * 1.01) << "direct clip [" << d.lo << ", " << d.hi << "]";
  // and the histogram's estimate of its own choice is the measured MSE, within 2% (the
  // uniform-within-bin approximation; sampling noise is ~0.3% here)
  EXPECT_NEAR(kd::quant::histogram_mse(*o.histogram(), h, t) / mh, 1.0, 0.02);
}

INSTANTIATE_TEST_SUITE_P(Distributions, Mse,
                         ::testing::Values(MseCase{"gauss_outliers_int8", gaussian_with_outliers, kInt8Sym},
                                           MseCase{"gauss_int4", gauss200k, kInt4Sym},
                                           MseCase{"gauss_int8", gauss200k, kInt8Sym},
                                           MseCase{"gauss_fp8_e4m3", gaussian_with_outliers, kE4m3},
                                           MseCase{"exp_uint8_asym", exp200k, kUint8Asym},
                                           MseCase{"exp_uint4_asym", exp200k, kUint4Asym}),
                         [](const auto& p) { return std::string(p.param.name); });

// Expected squared error of N(0, 1) quantized to `t` with the clip ±a: the midpoint rule
// over [-8, 8] with h = 1e-3 (mass beyond 8σ: 1e-15; the rule's error is far below the
// differences between neighbouring clips compared here).
double gaussian_expected_mse(float a, const Target& t) {
  const kd::common::Affine q = kd::quant::to_affine({-a, a}, t);
  const double h = 1e-3;
  double s = 0.0;
  for (double x = -8.0 + h / 2; x < 8.0; x += h) {
    const double d = double(kd::quant::quant_dequant(float(x), q, t)) - x;
    s += d * d * std::exp(-0.5 * x * x);
  }
  return s * h / std::sqrt(2.0 * std::numbers::pi);
}

TEST(Mse, Int4GaussianClipIsThePopulationOptimum) {
  // The clip minimising the true expected error of N(0, 1) on the int4 grid (found here by
  // integration, 0.005 apart over [1.5, 3.5]) vs the histogram search on 200k samples.
  // 0.1σ: the sample's optimum wanders that far at most (the error curve is flat: ±0.1σ
  // changes the population MSE by < 0.5%).
  float best_a = 0;
  double best = INFINITY;
  for (int k = 0; k <= 400; ++k) {
    const float a = 1.5f + 0.005f * float(k);
    const double e = gaussian_expected_mse(a, kInt4Sym);
    if (e < best) best = e, best_a = a;
  }
  const std::vector<float> x = gauss200k();
  const Range h = observed(Calibrator::mse, x).range(kInt4Sym);
  EXPECT_NEAR(h.hi, best_a, 0.1);
  EXPECT_EQ(h.lo, -h.hi);
  EXPECT_LT(gaussian_expected_mse(h.hi, kInt4Sym), best * 1.005);
  const Range d = kd::quant::mse_range(x.data(), x.size(), kInt4Sym);
  EXPECT_NEAR(d.hi, best_a, 0.1);
  std::printf("int4 N(0,1): population optimum %.3f, histogram %.4f, direct %.4f\n", best_a, h.hi, d.hi);
}

TEST(HistogramMse, EstimateMatchesMeasuredAtManyClips) {
  // The integral of the squared error over uniform bins vs the real fake-quant on the data:
  // within 2% from heavy clipping to none (bins are ≤ 1/8 of a step at these clips).
  const std::vector<float> x = gauss200k();
  const Observer o = observed(Calibrator::mse, x);
  for (const Target& t : {kInt8Sym, kInt4Sym, kUint8Asym, kE4m3}) {
    for (float c : {0.5f, 1.5f, 3.0f, 4.0f}) {
      const Range r{t.symmetric || t.fp8 ? -c : -c / 2, c};
      EXPECT_NEAR(kd::quant::histogram_mse(*o.histogram(), r, t) / measured_mse(x, r, t), 1.0, 0.02)
          << "clip " << c << " bits " << t.grid.qmax;
    }
  }
}

// ---------------------------------------------------------------- uniform: no clipping
TEST(Uniform, MseAndKlKeepNearlyTheWholeRange) {
  // U(-1, 1) at 8 bits: clipping by δ saves ~2δ of rounding error per unit but costs δ³/3,
  // the optimum clips under 1%; KL sees any clipping as a spike in P's last bin.
  // 3% leaves room for the histogram's resolution and the sampling noise of the KL.
  const std::vector<float> x = uniform(200000, -1.0, 1.0, 21);
  const Range mm = kd::quant::minmax_range(x.data(), x.size());
  const float amax = std::max(-mm.lo, mm.hi);
  for (Calibrator k : {Calibrator::mse, Calibrator::kl}) {
    const Range r = observed(k, x).range(kInt8Sym);
    EXPECT_GT(r.hi, 0.97f * amax) << kd::quant::to_string(k);
    const Range a = observed(k, x).range(kUint8Asym);
    EXPECT_GT(a.hi, 0.97f * mm.hi) << kd::quant::to_string(k);
    EXPECT_LT(a.lo, 0.97f * mm.lo) << kd::quant::to_string(k);
  }
  const Range d = kd::quant::mse_range(x.data(), x.size(), kInt8Sym);
  EXPECT_GT(d.hi, 0.97f * amax);
  const Range da = kd::quant::mse_range(x.data(), x.size(), kUint8Asym);
  EXPECT_GT(da.hi, 0.97f * mm.hi);
  EXPECT_LT(da.lo, 0.97f * mm.lo);
}

// ---------------------------------------------------------------- to the quantizer
TEST(ToAffine, IntegerIsAffineParamsFp8IsAmaxOverMax) {
  const kd::common::Affine a = kd::quant::to_affine({-1.0f, 3.0f}, kUint8Asym);
  const kd::common::Affine b = kd::common::affine_params(-1.0f, 3.0f, kUint8Asym.grid, false);
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.zero_point, b.zero_point);
  const kd::common::Affine f = kd::quant::to_affine({-896.0f, 10.0f}, kE4m3);
  EXPECT_EQ(f.scale, 2.0f);  // 896 / 448
  EXPECT_EQ(f.zero_point, 0);
  EXPECT_EQ(kd::quant::quant_dequant(896.0f * 2, f, kE4m3), 896.0f);  // saturates at the max
  EXPECT_EQ(kd::quant::fp8_max(kd::common::Fp8Format::e5m2), 57344.0f);
}

TEST(Observer, NonFiniteValuesAreSkippedByEveryKind) {
  std::vector<float> x = gaussian(1000, 1.0, 31), dirty = x;
  dirty.insert(dirty.begin() + 10, {NAN, INFINITY, -INFINITY});
  for (Calibrator k : {Calibrator::minmax, Calibrator::moving_average, Calibrator::percentile, Calibrator::mse,
                       Calibrator::kl})
    EXPECT_EQ(observed(k, dirty).state(), observed(k, x).state()) << kd::quant::to_string(k);
}

}  // namespace
