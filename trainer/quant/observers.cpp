#include "trainer/quant/observers.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "trainer/dist/comm.h"
#include "base/errors.h"

namespace kd::quant {

namespace {

constexpr std::array<std::pair<std::string_view, Calibrator>, 5> kCalibrators{{
    {"minmax", Calibrator::minmax},
    {"moving_average", Calibrator::moving_average},
    {"percentile", Calibrator::percentile},
    {"mse", Calibrator::mse},
    {"kl", Calibrator::kl},
}};

std::string calibrator_list() {
  std::string s;
  for (const auto& [name, c] : kCalibrators) s += (s.empty() ? "" : ", ") + std::string(name);
  return s;
}

bool is_histogram_kind(Calibrator c) {
  return c == Calibrator::percentile || c == Calibrator::mse || c == Calibrator::kl;
}

// FP8 targets have no zero point: always symmetric.
bool symmetric(const Target& t) { return t.fp8.has_value() || t.symmetric; }

// Smallest power of two strictly above a > 0 (a = m·2^e with m in [0.5, 1) is below 2^e).
double pow2_above(double a) {
  int e = 0;
  std::frexp(a, &e);
  return std::ldexp(1.0, e);
}

bool is_pow2(double r) {
  int e = 0;
  return std::isfinite(r) && r > 0.0 && std::frexp(r, &e) == 0.5;
}

// Extremes and count of the finite values of a batch.
struct BatchStats {
  float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
  std::uint64_t finite = 0;
};
BatchStats batch_stats(const float* x, std::size_t n) {
  BatchStats b;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    b.lo = std::min(b.lo, x[i]);
    b.hi = std::max(b.hi, x[i]);
    ++b.finite;
  }
  return b;
}

// A state value that must be a count: a non-negative integer exact in a double.
bool is_count(double v) { return v >= 0.0 && v <= 9007199254740992.0 && std::floor(v) == v; }
bool is_float(double v) { return std::isfinite(v) && double(float(v)) == v; }

// ---------------------------------------------------------------- expected quantization error
// The values a quantizer outputs, ascending, with the integral of its squared error
//   F(x) = ∫_{g_0}^{x} (t - Q(t))² dt,
// Q(t) the nearest grid value (cell k = [b_k, b_{k+1}) holds the t that round to g_k,
// b_k the midpoint of g_{k-1} and g_k; the first and last cells run to ∓infinity, which is
// the clipping error). Closed form per cell: the error of x in cell k is (x - g_k)².
class ErrorIntegral {
 public:
  explicit ErrorIntegral(std::vector<double> grid)
      : g_(std::move(grid)), b_(g_.size(), 0.0), c_(g_.size(), 0.0), p_(g_.size(), 0.0) {
    KD_ASSERT(!g_.empty(), "empty quantization grid");
    for (std::size_t k = 1; k < g_.size(); ++k) {
      b_[k] = 0.5 * (g_[k - 1] + g_[k]);
      c_[k] = cube(b_[k] - g_[k]);
      p_[k] = p_[k - 1] + (cube(b_[k] - g_[k - 1]) - c_[k - 1]) / 3.0;
    }
  }

  // Evaluates F and the error at ascending x: each call only moves forward.
  class Cursor {
   public:
    explicit Cursor(const ErrorIntegral& e) : e_(e) {}
    double integral(double x) {  // F(x)
      seek(x);
      return e_.p_[k_] + (cube(x - e_.g_[k_]) - e_.c_[k_]) / 3.0;
    }
    double error(double x) {  // (x - Q(x))²
      seek(x);
      const double d = x - e_.g_[k_];
      return d * d;
    }

   private:
    void seek(double x) {
      while (k_ + 1 < e_.g_.size() && x >= e_.b_[k_ + 1]) ++k_;
    }
    const ErrorIntegral& e_;
    std::size_t k_ = 0;
  };

 private:
  static double cube(double d) { return d * d * d; }
  // cell k starts at b_k (cell 0 at -infinity: F is anchored at g_0, so c_0 = 0);
  // F(x) = p_k + ((x - g_k)³ - c_k) / 3 in cell k, with c_k = (b_k - g_k)³, p_k = F(b_k)
  std::vector<double> g_, b_, c_, p_;
};

// Positive and negative finite FP8 values, ascending, one zero.
const std::vector<double>& fp8_values(common::Fp8Format f) {
  static const auto make = [](common::Fp8Format fmt) {
    std::vector<double> v;
    for (int c = 0; c < 256; ++c) {
      const float x = common::fp8_decode(std::uint8_t(c), fmt);
      if (std::isfinite(x)) v.push_back(x);
    }
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());  // -0 == +0
    return v;
  };
  static const std::vector<double> e4m3 = make(common::Fp8Format::e4m3), e5m2 = make(common::Fp8Format::e5m2);
  return f == common::Fp8Format::e4m3 ? e4m3 : e5m2;
}

// The grid quant_dequant maps onto, as the float values it returns.
ErrorIntegral error_integral(Range r, const Target& t) {
  const common::Affine a = to_affine(r, t);
  std::vector<double> g;
  if (t.fp8) {
    for (double v : fp8_values(*t.fp8)) g.push_back(double(float(v) * a.scale));
    g.erase(std::unique(g.begin(), g.end()), g.end());
  } else {
    for (int q = t.grid.qmin; q <= t.grid.qmax; ++q) g.push_back(double(float(q - a.zero_point) * a.scale));
  }
  return ErrorIntegral(std::move(g));
}

// The non-empty bins of a histogram as intervals [u, v] (the extreme bins cut at the
// exact min/max; u == v: all those values are equal) with their counts.
struct BinMass {
  double u, v, n;
};
std::vector<BinMass> bin_masses(const Histogram& h) {
  std::vector<BinMass> m;
  const auto c = h.counts();
  for (int i = 0; i < h.bins(); ++i) {
    if (c[i] == 0) continue;
    const double u = std::max(h.lower_edge(i), double(h.min()));
    const double v = std::min(h.lower_edge(i + 1), double(h.max()));
    m.push_back({u, std::max(u, v), double(c[i])});
  }
  return m;
}

double expected_error(const std::vector<BinMass>& mass, double total, Range r, const Target& t) {
  const ErrorIntegral e = error_integral(r, t);
  ErrorIntegral::Cursor cur(e);
  double sum = 0.0;
  for (const BinMass& b : mass) {
    if (b.v > b.u) {
      const double fu = cur.integral(b.u);
      sum += b.n * (cur.integral(b.v) - fu) / (b.v - b.u);
    } else {
      sum += b.n * cur.error(b.u);
    }
  }
  return sum / total;
}

// ---------------------------------------------------------------- histogram calibrators
// mse, symmetric (and FP8): ±threshold over every bin edge below amax, and amax.
Range mse_symmetric(const Histogram& h, const Target& t) {
  const auto mass = bin_masses(h);
  const double total = double(h.total()), amax = h.amax(), w = h.width();
  const auto clip = [](double a) { return Range{-float(a), float(a)}; };
  Range best = clip(amax);
  double best_err = expected_error(mass, total, best, t);
  const std::int64_t top = w > 0.0 ? std::int64_t(std::ceil(amax / w)) - 1 : 0;  // edges i·w < amax
  for (std::int64_t i = top; i >= 1; --i) {  // widest first: ties keep the wider range
    const Range r = clip(double(i) * w);
    const double err = expected_error(mass, total, r, t);
    if (err < best_err) best_err = err, best = r;
  }
  return best;
}

// Candidate ends, outermost first: `end` (the data's extreme, widened to 0), then every
// bin edge strictly between it and 0, then 0.
std::vector<float> edge_candidates(double end, double w) {
  std::vector<float> c{float(end)};
  if (end == 0.0) return c;
  const double dir = end < 0.0 ? -1.0 : 1.0;
  for (std::int64_t i = std::int64_t(std::ceil(std::fabs(end) / w)) - 1; i >= 0; --i)
    c.push_back(float(dir * double(i) * w));
  return c;
}

// mse, asymmetric: pairs of edges. A coarse 2-D grid (about 32 x 32) finds the basin, then
// coordinate descent over every edge (each end scanned in full with the other fixed,
// until neither moves) refines it.
Range mse_asymmetric(const Histogram& h, const Target& t) {
  const auto mass = bin_masses(h);
  const double total = double(h.total()), w = h.width();
  const std::vector<float> los = edge_candidates(std::min(double(h.min()), 0.0), w);
  const std::vector<float> his = edge_candidates(std::max(double(h.max()), 0.0), w);
  const auto err_at = [&](std::size_t i, std::size_t j) {
    if (los[i] == 0.0f && his[j] == 0.0f) return std::numeric_limits<double>::infinity();
    return expected_error(mass, total, Range{los[i], his[j]}, t);
  };
  std::size_t bi = 0, bj = 0;
  double best = err_at(0, 0);
  const std::size_t si = std::max<std::size_t>(1, los.size() / 32), sj = std::max<std::size_t>(1, his.size() / 32);
  for (std::size_t i = 0; i < los.size(); i += si) {
    for (std::size_t j = 0; j < his.size(); j += sj) {
      const double e = err_at(i, j);
      if (e < best) best = e, bi = i, bj = j;
    }
  }
  for (int round = 0; round < 1000; ++round) {  // each move lowers the error: terminates
    bool moved = false;
    for (std::size_t j = 0; j < his.size(); ++j) {
      const double e = err_at(bi, j);
      if (e < best) best = e, bj = j, moved = true;
    }
    for (std::size_t i = 0; i < los.size(); ++i) {
      const double e = err_at(i, bj);
      if (e < best) best = e, bi = i, moved = true;
    }
    if (!moved) break;
  }
  return {los[bi], his[bj]};
}

// kl: TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017),
// as MXNet's _get_optimal_threshold and pytorch-quantization's _compute_amax_entropy
// implement it, on the |x| histogram f (bins/2 bins of width w):
//   for i = levels .. (last non-empty bin + 1):
//     P = f[0:i], with the outliers sum(f[i:]) added to P[i-1];
//     Q = f[0:i] merged into `levels` groups (bin j in group j·levels/i: pytorch-quantization's
//         even split), each group's count spread evenly over the bins where P is non-zero,
//         0 where P is 0;
//     KL(P || Q) of the normalised distributions; a bin where P > 0 but Q is 0 (the outlier
//     bin of an empty group) counts Q as 1e-4 of a sample (MXNet's _smooth_distribution
//     eps, without its O(1e-4) shift of the other bins).
// The threshold is i·w (the right edge of P's last bin, capped at amax) for the i of
// least divergence, the largest such i on ties. With fewer non-empty bins than levels
// nothing needs clipping: amax.
double kl_threshold(const Histogram& h, int levels) {
  const std::vector<std::uint64_t> f = h.folded();
  const double amax = h.amax(), w = h.width();
  int n = int(f.size());
  while (n > 0 && f[n - 1] == 0) --n;
  if (n <= levels) return amax;
  std::vector<double> suffix(f.size() + 1, 0.0);
  for (int j = int(f.size()) - 1; j >= 0; --j) suffix[j] = suffix[j + 1] + double(f[j]);
  constexpr double kEps = 1e-4;
  std::vector<double> group_sum(levels), group_nonzero(levels);
  double best_kl = std::numeric_limits<double>::infinity();
  int best_i = n;
  for (int i = levels; i <= n; ++i) {
    const auto group = [&](int j) { return int(std::int64_t(j) * levels / i); };
    const auto p = [&](int j) { return double(f[j]) + (j == i - 1 ? suffix[i] : 0.0); };
    std::fill(group_sum.begin(), group_sum.end(), 0.0);
    std::fill(group_nonzero.begin(), group_nonzero.end(), 0.0);
    for (int j = 0; j < i; ++j) {
      group_sum[group(j)] += double(f[j]);
      if (p(j) > 0.0) group_nonzero[group(j)] += 1.0;
    }
    const auto q = [&](int j) {
      const int g = group(j);
      const double v = group_sum[g] / group_nonzero[g];  // only asked where p(j) > 0
      return v > 0.0 ? v : kEps;
    };
    double q_total = 0.0;
    for (int j = 0; j < i; ++j)
      if (p(j) > 0.0) q_total += q(j);
    const double p_total = suffix[0];
    double kl = 0.0;
    for (int j = 0; j < i; ++j) {
      const double pj = p(j);
      if (pj == 0.0) continue;
      const double pn = pj / p_total, qn = q(j) / q_total;
      kl += pn * std::log(pn / qn);
    }
    if (kl <= best_kl) best_kl = kl, best_i = i;
  }
  return std::min(double(best_i) * w, amax);
}

}  // namespace

// ---------------------------------------------------------------- names and config
Calibrator parse_calibrator(std::string_view name, const std::string& where) {
  for (const auto& [n, c] : kCalibrators)
    if (n == name) return c;
  throw InputError(fmt::format("{}: unknown calibrator '{}'; allowed values: {}", where, name, calibrator_list()));
}

std::string_view to_string(Calibrator c) {
  for (const auto& [n, k] : kCalibrators)
    if (k == c) return n;
  KD_ASSERT(false, "calibrator {}", int(c));
  return "?";
}

void ObserverConfig::validate(const std::string& where) const {
  KD_CHECK_INPUT(averaging_constant > 0.0 && averaging_constant <= 1.0,
                 "{}.averaging_constant is {}; it must be in (0, 1] (the weight of each new batch)", where,
                 averaging_constant);
  KD_CHECK_INPUT(percentile >= 50.0 && percentile <= 100.0,
                 "{}.percentile is {}; it must be in [50, 100] (the range keeps that share of the values)", where,
                 percentile);
  KD_CHECK_INPUT(bins >= 8 && bins <= (1 << 20) && bins % 2 == 0,
                 "{}.bins is {}; it must be even and in [8, 1048576] (4096 is the usual choice)", where, bins);
}

// ---------------------------------------------------------------- histogram
Histogram::Histogram(int bins) : counts_(std::size_t(bins), 0) {
  KD_ASSERT(bins >= 2 && bins % 2 == 0, "histogram bins {}", bins);
}

void Histogram::grow_to(double radius) {
  if (radius_ > 0.0) {
    // bin index relative to 0, floor-divided by 2^k (>> is floor for negatives in C++20;
    // past 63 doublings everything is in the two bins around 0)
    const int k = std::min(std::ilogb(radius) - std::ilogb(radius_), 63);
    const std::int64_t half = std::int64_t(counts_.size() / 2);
    std::vector<std::uint64_t> merged(counts_.size(), 0);
    for (std::int64_t i = 0; i < std::int64_t(counts_.size()); ++i) merged[half + ((i - half) >> k)] += counts_[i];
    counts_ = std::move(merged);
  }  // else only zeros were seen: they are in bin bins/2 at any radius
  radius_ = radius;
}

void Histogram::merge(const Histogram& o) {
  KD_ASSERT(o.bins() == bins(), "merging histograms of {} and {} bins", o.bins(), bins());
  if (o.empty()) return;
  Histogram other = o;
  const double r = std::max(radius_, other.radius_);
  if (r > radius_) grow_to(r);
  if (r > other.radius_) other.grow_to(r);
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = total_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = total_ == 0 ? other.max_ : std::max(max_, other.max_);
  total_ += other.total_;
}

void Histogram::all_reduce(dist::Comm& group) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  std::array<double, 3> mx{radius_, total_ ? -double(min_) : -inf, total_ ? double(max_) : -inf};
  group.all_reduce_max(mx);
  if (mx[0] > radius_) grow_to(mx[0]);
  // counts as doubles: exact below 2^53 values
  std::vector<double> c(counts_.size() + 1);
  c[0] = double(total_);
  for (std::size_t i = 0; i < counts_.size(); ++i) c[i + 1] = double(counts_[i]);
  group.all_reduce_sum(c);
  total_ = std::uint64_t(c[0]);
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] = std::uint64_t(c[i + 1]);
  if (total_ > 0) {
    min_ = float(-mx[1]);
    max_ = float(mx[2]);
  }
}

void Histogram::add(const float* x, std::size_t n) {
  const BatchStats b = batch_stats(x, n);
  if (b.finite == 0) return;
  min_ = total_ == 0 ? b.lo : std::min(min_, b.lo);
  max_ = total_ == 0 ? b.hi : std::max(max_, b.hi);
  const double a = std::max(-double(b.lo), double(b.hi));
  if (a > 0.0 && a >= radius_) grow_to(pow2_above(a));
  const std::int64_t half = std::int64_t(counts_.size() / 2);
  if (radius_ == 0.0) {
    counts_[half] += b.finite;
  } else {
    // (x / R) · half is exact in double (R a power of two, x 24 bits, half <= 2^19): the
    // bin of a value is the same whatever R was when it came.
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) continue;
      const auto rel = std::int64_t(std::floor(double(x[i]) / radius_ * double(half)));
      ++counts_[half + rel];
    }
  }
  total_ += b.finite;
}

std::vector<std::uint64_t> Histogram::folded() const {
  const std::size_t half = counts_.size() / 2;
  std::vector<std::uint64_t> f(half);
  for (std::size_t j = 0; j < half; ++j) f[j] = counts_[half + j] + counts_[half - 1 - j];
  return f;
}

double Histogram::quantile(double q) const {
  KD_ASSERT(total_ > 0, "quantile of an empty histogram");
  if (q <= 0.0) return min_;
  if (q >= 1.0) return max_;
  const double target = q * double(total_);
  double cum = 0.0;
  for (int i = 0; i < bins(); ++i) {
    const double c = double(counts_[i]);
    if (c == 0.0) continue;
    if (cum + c >= target) {
      const double u = std::max(lower_edge(i), double(min_)), v = std::min(lower_edge(i + 1), double(max_));
      return u + (target - cum) / c * std::max(0.0, v - u);
    }
    cum += c;
  }
  return max_;
}

double Histogram::abs_quantile(double q) const {
  KD_ASSERT(total_ > 0, "quantile of an empty histogram");
  const double amx = amax(), w = width();
  if (q >= 1.0) return amx;
  const std::vector<std::uint64_t> f = folded();
  const double target = std::max(q, 0.0) * double(total_);
  double cum = 0.0;
  for (std::size_t j = 0; j < f.size(); ++j) {
    const double c = double(f[j]);
    if (c == 0.0) continue;
    if (cum + c >= target) {
      const double u = std::min(double(j) * w, amx), v = std::min(double(j + 1) * w, amx);
      return u + (target - cum) / c * (v - u);
    }
    cum += c;
  }
  return amx;
}

void Histogram::append_state(std::vector<double>& out) const {
  out.insert(out.end(), {double(counts_.size()), double(total_), double(min_), double(max_), radius_});
  for (std::uint64_t c : counts_) out.push_back(double(c));
}

void Histogram::load_state(std::span<const double> s, std::string_view who) {
  const std::size_t nb = counts_.size();
  KD_CHECK_INPUT(s.size() == kHeader + nb, "{}: the histogram state has {} values; expected {} ({} bins)", who,
                 s.size(), kHeader + nb, nb);
  KD_CHECK_INPUT(s[0] == double(nb), "{}: the state has {} bins; the observer is configured with {}", who, s[0], nb);
  KD_CHECK_INPUT(is_count(s[1]), "{}: the state's total count {} is not a count", who, s[1]);
  const double r = s[4];
  KD_CHECK_INPUT(r == 0.0 || is_pow2(r), "{}: the state's histogram radius {} is not a power of two", who, r);
  std::vector<std::uint64_t> counts(nb);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < nb; ++i) {
    KD_CHECK_INPUT(is_count(s[kHeader + i]), "{}: histogram bin {} holds {}, not a count", who, i, s[kHeader + i]);
    counts[i] = std::uint64_t(s[kHeader + i]);
    sum += counts[i];
  }
  const auto total = std::uint64_t(s[1]);
  KD_CHECK_INPUT(sum == total, "{}: the histogram bins sum to {}, the state's total is {}", who, sum, total);
  if (total > 0) {
    KD_CHECK_INPUT(is_float(s[2]) && is_float(s[3]) && s[2] <= s[3], "{}: the state's min/max {} / {} are invalid",
                   who, s[2], s[3]);
    const double a = std::max(-s[2], s[3]);
    KD_CHECK_INPUT(r == 0.0 ? a == 0.0 : a < r, "{}: the state's max |x| {} does not fit its radius {}", who, a, r);
  } else {
    KD_CHECK_INPUT(r == 0.0, "{}: an empty histogram state with radius {}", who, r);
  }
  counts_ = std::move(counts);
  total_ = total;
  min_ = float(s[2]);
  max_ = float(s[3]);
  radius_ = r;
}

double histogram_mse(const Histogram& h, Range r, const Target& t) {
  KD_ASSERT(!h.empty(), "histogram_mse of an empty histogram");
  return expected_error(bin_masses(h), double(h.total()), r, t);
}

// ---------------------------------------------------------------- observer
Observer::Observer(const ObserverConfig& cfg) : cfg_(cfg) {
  cfg_.validate("observer");
  if (is_histogram_kind(cfg_.kind)) hist_.emplace(cfg_.bins);
}

void Observer::observe(const float* x, std::size_t n) {
  if (hist_) {
    hist_->add(x, n);
    return;
  }
  const BatchStats b = batch_stats(x, n);
  if (b.finite == 0) return;
  if (cfg_.kind == Calibrator::minmax || seen_ == 0) {
    min_ = seen_ == 0 ? b.lo : std::min(min_, b.lo);
    max_ = seen_ == 0 ? b.hi : std::max(max_, b.hi);
  } else {
    // PyTorch's MovingAverageMinMaxObserver in float32: min + c·(batch_min - min), three
    // roundings (volatile keeps the compiler from fusing the multiply-add)
    const float c = float(cfg_.averaging_constant);
    const volatile float dmin = c * (b.lo - min_), dmax = c * (b.hi - max_);
    min_ = min_ + dmin;
    max_ = max_ + dmax;
  }
  seen_ += cfg_.kind == Calibrator::minmax ? b.finite : 1;
}

void Observer::merge(const Observer& b) {
  if (b.empty()) return;
  if (hist_) {
    KD_ASSERT(b.hist_.has_value(), "merging a {} observer into a histogram one", to_string(b.kind()));
    hist_->merge(*b.hist_);
    return;
  }
  KD_ASSERT(b.kind() == Calibrator::minmax, "merging a {} observer", to_string(b.kind()));
  if (cfg_.kind == Calibrator::minmax || seen_ == 0) {
    min_ = seen_ == 0 ? b.min_ : std::min(min_, b.min_);
    max_ = seen_ == 0 ? b.max_ : std::max(max_, b.max_);
  } else {  // the same float32 update as observe()
    const float c = float(cfg_.averaging_constant);
    const volatile float dmin = c * (b.min_ - min_), dmax = c * (b.max_ - max_);
    min_ = min_ + dmin;
    max_ = max_ + dmax;
  }
  seen_ += cfg_.kind == Calibrator::minmax ? b.seen_ : 1;
}

void Observer::all_reduce(dist::Comm& group) {
  if (hist_) {
    hist_->all_reduce(group);
    return;
  }
  KD_ASSERT(cfg_.kind == Calibrator::minmax, "all_reduce of a {} observer", to_string(cfg_.kind));
  constexpr double inf = std::numeric_limits<double>::infinity();
  std::array<double, 2> mx{seen_ ? -double(min_) : -inf, seen_ ? double(max_) : -inf};
  std::array<double, 1> seen{double(seen_)};
  group.all_reduce_max(mx);
  group.all_reduce_sum(seen);
  seen_ = std::uint64_t(seen[0]);
  if (seen_ > 0) {
    min_ = float(-mx[0]);
    max_ = float(mx[1]);
  }
}

bool Observer::empty() const { return hist_ ? hist_->empty() : seen_ == 0; }

Range Observer::range(const Target& t) const {
  KD_ASSERT(!empty(), "range() of a {} observer that has seen no finite value", to_string(cfg_.kind));
  if (!hist_) return {min_, max_};
  const Histogram& h = *hist_;
  switch (cfg_.kind) {
    case Calibrator::percentile: {
      const double p = cfg_.percentile / 100.0;
      if (symmetric(t)) {
        const auto a = float(h.abs_quantile(p));
        return {-a, a};
      }
      return {float(h.quantile(1.0 - p)), float(h.quantile(p))};
    }
    case Calibrator::kl: {
      if (t.fp8) return mse_symmetric(h, t);
      // levels of |x|: half the grid, or all of it when an asymmetric grid only needs x >= 0
      const int codes = t.grid.qmax - t.grid.qmin + 1;
      const int levels = !t.symmetric && h.min() >= 0.0f ? codes : codes / 2;
      const double th = kl_threshold(h, std::max(levels, 1));
      if (t.symmetric) return {-float(th), float(th)};
      return {float(std::max(double(h.min()), -th)), float(std::min(double(h.max()), th))};
    }
    default:  // mse
      return symmetric(t) ? mse_symmetric(h, t) : mse_asymmetric(h, t);
  }
}

std::vector<double> Observer::state() const {
  std::vector<double> s{double(int(cfg_.kind))};
  if (hist_) {
    hist_->append_state(s);
  } else {
    s.insert(s.end(), {double(seen_), double(min_), double(max_)});
  }
  return s;
}

void Observer::load_state(std::span<const double> s) {
  const std::string who = fmt::format("{} observer state", to_string(cfg_.kind));
  KD_CHECK_INPUT(!s.empty(), "{}: empty", who);
  const auto tag = s[0];
  KD_CHECK_INPUT(tag == double(int(cfg_.kind)), "{}: the state is of {}", who,
                 tag >= 0 && tag < double(kCalibrators.size()) && std::floor(tag) == tag
                     ? fmt::format("a {} observer", kCalibrators[std::size_t(tag)].first)
                     : fmt::format("an unknown kind ({})", tag));
  if (hist_) {
    hist_->load_state(s.subspan(1), who);
    return;
  }
  KD_CHECK_INPUT(s.size() == 4, "{}: {} values; expected 4 (kind, count, min, max)", who, s.size());
  KD_CHECK_INPUT(is_count(s[1]), "{}: the count {} is not a count", who, s[1]);
  if (s[1] > 0) {
    KD_CHECK_INPUT(is_float(s[2]) && is_float(s[3]), "{}: min/max {} / {} are not finite floats", who, s[2], s[3]);
    // a moving average may cross (min above max) when the data shift; a running one never does
    KD_CHECK_INPUT(cfg_.kind == Calibrator::moving_average || s[2] <= s[3], "{}: min {} above max {}", who, s[2],
                   s[3]);
  }
  seen_ = std::uint64_t(s[1]);
  min_ = float(s[2]);
  max_ = float(s[3]);
}

// ---------------------------------------------------------------- direct (weights)
Range minmax_range(const float* x, std::size_t n) {
  const BatchStats b = batch_stats(x, n);
  return b.finite == 0 ? Range{} : Range{b.lo, b.hi};
}

Range mse_range(const float* x, std::size_t n, const Target& t, int candidates) {
  KD_ASSERT(candidates >= 1, "mse_range candidates {}", candidates);
  std::vector<float> v;  // the finite values, so that the measuring loop has no branch
  v.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) v.push_back(x[i]);
  const Range mm = minmax_range(v.data(), v.size());
  // Σ (quant_dequant(x) - x)² over the finite values, 1/scale computed once
  const auto measure = [&](Range r) {
    const common::Affine a = to_affine(r, t);
    const float inv = 1.0f / a.scale;
    double sum = 0.0;
    if (t.fp8) {
      for (float xi : v) {
        const double d = double(common::fp8_round(xi * inv, *t.fp8) * a.scale) - double(xi);
        sum += d * d;
      }
    } else {
      for (float xi : v) {
        const double d = double(common::fake_quant(xi, a.scale, inv, a.zero_point, t.grid)) - double(xi);
        sum += d * d;
      }
    }
    return sum;
  };
  const double c = candidates;
  if (symmetric(t)) {
    const double amax = std::max(-double(mm.lo), double(mm.hi));
    const auto clip = [&](int i) { return Range{-float(amax * i / c), float(amax * i / c)}; };
    Range best = clip(candidates);
    double best_err = measure(best);
    for (int i = candidates - 1; i >= 1; --i) {  // widest first: ties keep the wider range
      const double e = measure(clip(i));
      if (e < best_err) best_err = e, best = clip(i);
    }
    return best;
  }
  const double lo = std::min(double(mm.lo), 0.0), hi = std::max(double(mm.hi), 0.0);
  const auto pair = [&](int i, int j) { return Range{float(lo * i / c), float(hi * j / c)}; };
  const auto err_at = [&](int i, int j) {
    return i == 0 && j == 0 ? std::numeric_limits<double>::infinity() : measure(pair(i, j));
  };
  int bi = candidates, bj = candidates;
  double best = err_at(bi, bj);
  for (int k = candidates - 1; k >= 1; --k) {  // both ends together
    const double e = err_at(k, k);
    if (e < best) best = e, bi = bj = k;
  }
  // then each end alone, scanned in full with the other fixed, until neither moves: the
  // measured error is jagged in each end (the zero point is rounded), so single steps stop
  // in local minima (12% above the best on a 4-bit exponential)
  for (int round = 0; round < 1000; ++round) {  // each move lowers the error: terminates
    bool moved = false;
    for (int j = candidates; j >= 0; --j) {
      const double e = err_at(bi, j);
      if (e < best) best = e, bj = j, moved = true;
    }
    for (int i = candidates; i >= 0; --i) {
      const double e = err_at(i, bj);
      if (e < best) best = e, bi = i, moved = true;
    }
    if (!moved) break;
  }
  return pair(bi, bj);
}

// ---------------------------------------------------------------- to the quantizer
float fp8_max(common::Fp8Format f) { return common::fp8_decode(common::fp8_spec(f).max_code, f); }

common::Affine to_affine(Range r, const Target& t) {
  if (!t.fp8) return common::affine_params(r.lo, r.hi, t.grid, t.symmetric);
  constexpr float kEps = 1.1920928955078125e-07f;  // affine_params' floor
  const float amax = std::max(std::fabs(r.lo), std::fabs(r.hi));
  return {std::max(amax / fp8_max(*t.fp8), kEps), 0};
}

float quant_dequant(float x, const common::Affine& a, const Target& t) {
  const float inv = 1.0f / a.scale;
  if (t.fp8) return common::fp8_round(x * inv, *t.fp8) * a.scale;
  return common::fake_quant(x, a.scale, inv, a.zero_point, t.grid);
}

}  // namespace kd::quant
