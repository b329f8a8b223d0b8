// Range observers and calibrators: from the values a tensor takes to the clipping range
// [lo, hi] that its quantizer covers (QAT observers, PTQ calibration).
//
//  * Observer: one per quantized tensor, fed batch after batch (activations), per-tensor
//    statistics. minmax and moving_average keep two numbers, as PyTorch's
//    MinMaxObserver / MovingAverageMinMaxObserver; percentile, mse and kl keep a Histogram
//    and choose the range when asked, for the Target it will be quantized to.
//  * minmax_range / mse_range: weights, observed in full each time; the caller applies
//    them per tensor, per output channel or per group.
//  * to_affine: the range as a scale and zero point (PyTorch's _calculate_qparams, or
//    amax / fp8 max for FP8).
//
// Every observer skips non-finite values (NaN, ±Inf): the trainer's NaN policy deals with
// those, and one Inf must not turn the range into Inf for the rest of the run.
// The state exported for checkpoints round-trips exactly: observing more after
// load_state(state()) gives what observing without the stop would have given.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/common/quant_math.h"

namespace kd::dist {
class Comm;
}

namespace kd::quant {

enum class Calibrator { minmax, moving_average, percentile, mse, kl };

// `where` names the config key in the error ("quant.activations.calibrator").
Calibrator parse_calibrator(std::string_view name, const std::string& where);
std::string_view to_string(Calibrator c);

// What the range will be quantized to. Integer: `grid` and `symmetric`, as in
// common::affine_params. FP8: scale = amax / fp8 max, zero point 0 (grid and symmetric
// are ignored).
struct Target {
  common::IntGrid grid{-128, 127};
  bool symmetric = true;
  std::optional<common::Fp8Format> fp8;
};

// A clipping range; lo <= hi. Affine grids are widened to include 0 by to_affine.
struct Range {
  float lo = 0.0f, hi = 0.0f;
};

struct ObserverConfig {
  Calibrator kind = Calibrator::minmax;
  double averaging_constant = 0.01;  // moving_average: weight c of each new batch, in (0, 1]
  double percentile = 99.99;         // percentile: in [50, 100]; 100 keeps the extremes
  // Histogram kinds: bins over [-R, R], even, in [8, 2^20]. 4096 gives the |x| histogram
  // (bins/2 bins over [0, R)) TensorRT's 2048 bins.
  int bins = 4096;
  void validate(const std::string& where) const;  // InputError naming `where` and the key
};

// ---------------------------------------------------------------- histogram
// Signed histogram over [-R, R) with `bins` bins of width 2R/bins; bin i holds
// [-R + i·w, -R + (i+1)·w), so 0 is the edge between bins/2 - 1 and bins/2.
// R is the smallest power of two above every |x| seen (0 while only zeros were seen).
// When data exceeds R, R doubles and pairs of bins merge exactly (pairs counted from 0,
// so the old range becomes the middle half); as R depends only on the largest |x|, the
// counts are the same whatever the batches were and whenever R grew.
class Histogram {
 public:
  explicit Histogram(int bins);

  void add(const float* x, std::size_t n);  // finite values only
  // Adds another histogram's counts (both widened to the larger radius first: exact, as
  // the counts do not depend on when R grew).
  void merge(const Histogram& o);
  // Data parallel: every rank of the group ends up with the sum of their histograms.
  void all_reduce(dist::Comm& group);

  int bins() const { return int(counts_.size()); }
  double radius() const { return radius_; }
  double width() const { return 2.0 * radius_ / double(counts_.size()); }
  double lower_edge(int i) const { return (double(i) - double(counts_.size() / 2)) * width(); }
  std::span<const std::uint64_t> counts() const { return counts_; }
  std::uint64_t total() const { return total_; }
  bool empty() const { return total_ == 0; }
  float min() const { return min_; }  // exact extremes seen (meaningless while empty)
  float max() const { return max_; }
  double amax() const { return std::max(-double(min_), double(max_)); }

  // |x| histogram: bins/2 bins of width() over [0, R) (bin j: |x| in [j·w, (j+1)·w)).
  std::vector<std::uint64_t> folded() const;

  // Quantiles, values uniform within a bin, the extreme bins cut at the exact min/max:
  // quantile(q) of x, abs_quantile(q) of |x|, q in [0, 1].
  double quantile(double q) const;
  double abs_quantile(double q) const;

  // Checkpoint state: {bins, total, min, max, R, counts...}.
  static constexpr std::size_t kHeader = 5;
  void append_state(std::vector<double>& out) const;
  void load_state(std::span<const double> s, std::string_view who);  // InputError

 private:
  void grow_to(double radius);

  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  double radius_ = 0.0;
  float min_ = 0.0f, max_ = 0.0f;
};

// Expected squared quantization error per element of the histogrammed data (uniform
// within each bin, extreme bins cut at min/max) when quantized over `r` to `t`: rounding
// inside the grid and clipping outside it, integrated exactly over each bin.
double histogram_mse(const Histogram& h, Range r, const Target& t);

// ---------------------------------------------------------------- observer
class Observer {
 public:
  explicit Observer(const ObserverConfig& cfg);  // validates cfg (InputError)

  // Accumulates one batch (moving_average: one observe = one batch).
  void observe(const float* x, std::size_t n);
  void observe(std::span<const float> x) { observe(x.data(), x.size()); }
  // Accumulates `batch` (a minmax or a histogram observer, what one training step saw) as
  // one batch: minmax widens, moving_average takes one averaging step with the batch's
  // min and max, histogram kinds add the counts.
  void merge(const Observer& batch);
  // Data parallel: every rank of the group ends up with the statistics of all of them.
  // minmax and histogram kinds only (a moving average does not reduce: reduce the step's
  // minmax, then merge it).
  void all_reduce(dist::Comm& group);

  bool empty() const;
  // The clipping range for `t` (asserts !empty()):
  //  * minmax: {min, max} of everything seen.
  //  * moving_average: the averaged {min, max}.
  //  * percentile: symmetric targets ±(percentile of |x|); asymmetric the lower and upper
  //    percentiles (100 - p, p) of x.
  //  * mse: the range minimising histogram_mse for `t`. Symmetric (and FP8): ±threshold
  //    for every bin edge below amax and amax itself. Asymmetric: pairs of bin edges
  //    (lo in [min, 0], hi in [0, max]), a coarse 2-D grid then coordinate descent over
  //    every edge. Ties keep the wider range.
  //  * kl: TensorRT's entropy calibration on the |x| histogram (see observers.cpp) with
  //    `levels` = half the grid's codes (128 for 8 bits); an asymmetric grid over data
  //    that is never negative gets all its codes (256). ±threshold for symmetric targets,
  //    [-threshold, threshold] ∩ [min, max] for asymmetric ones (the threshold is chosen
  //    on |x| for those too). FP8 targets fall back to mse (KL's quantized distribution
  //    assumes evenly spaced levels).
  Range range(const Target& t) const;

  // Checkpoint state: {kind, ...}. minmax: {kind, values seen, min, max};
  // moving_average: {kind, batches, min, max}; histogram kinds: {kind, Histogram state}.
  // load_state throws InputError (naming the kind) on a malformed or mismatched state.
  std::vector<double> state() const;
  void load_state(std::span<const double> s);

  Calibrator kind() const { return cfg_.kind; }
  const ObserverConfig& config() const { return cfg_; }
  const Histogram* histogram() const { return hist_ ? &*hist_ : nullptr; }

 private:
  ObserverConfig cfg_;
  std::uint64_t seen_ = 0;  // minmax: finite values; moving_average: batches
  float min_ = 0.0f, max_ = 0.0f;
  std::optional<Histogram> hist_;
};

// ---------------------------------------------------------------- direct (weights)
// {min, max} of the finite values; {0, 0} when there are none.
Range minmax_range(const float* x, std::size_t n);

// The clip minimising the measured squared error of quant_dequant over x.
// Symmetric / FP8: ±amax·i/candidates, i = 1..candidates. Asymmetric: (lo·i/c, hi·j/c)
// with lo = min(min, 0), hi = max(max, 0): both ends shrunk together (i = j), then single
// steps of one end (i or j ± 1) while they lower the error. Ties keep the wider range.
// Cost: about candidates passes over x (symmetric), a few more (asymmetric).
Range mse_range(const float* x, std::size_t n, const Target& t, int candidates = 100);

// ---------------------------------------------------------------- to the quantizer
float fp8_max(common::Fp8Format f);  // 448 (E4M3), 57344 (E5M2)

// Integer: common::affine_params(lo, hi, grid, symmetric). FP8: scale = max(|lo|, |hi|) /
// fp8 max (at least affine_params' eps), zero point 0.
common::Affine to_affine(Range r, const Target& t);

// x quantized and dequantized as the target's fake-quant does: common::fake_quant, or
// fp8_round(x · (1/scale)) · scale for FP8.
float quant_dequant(float x, const common::Affine& a, const Target& t);

}  // namespace kd::quant
