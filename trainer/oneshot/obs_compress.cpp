#include "trainer/oneshot/obs_compress.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "base/errors.h"
#include "trainer/oneshot/hessian_factor.h"
#include "trainer/oneshot/rtn.h"
#include "trainer/quant/quant_format.h"

namespace kd::oneshot {

namespace {

void check_format(const kern::QuantFormat& f, const std::string& method, const std::string& layer, int cols) {
  KD_CHECK_INPUT(f.kind == kern::QuantKind::integer && f.granularity != kern::QuantGranularity::token,
                 "{}: {} quantizes to integer formats with tensor, channel or group scales, not {} ({})", method,
                 method == "gptq" ? "GPTQ" : "SparseGPT", quant::to_string(f), layer);
  KD_CHECK_INPUT(f.granularity != kern::QuantGranularity::group || cols % f.group == 0,
                 "{}: groups of {} do not divide {}'s rows of {} inputs", method, f.group, layer, cols);
}

// The OBS column loop shared by GPTQ and SparseGPT. W (rows, cols) float64, updated in
// place; u the upper factor. column(r, wr, i, i1, i2) returns the new value of row r's
// column i (wr: the row as updated so far; [i1, i2) the lazy block).
template <class Column>
void obs_loop(std::vector<double>& W, int rows, int cols, const std::vector<double>& u, int block, Column column) {
  const std::size_t n = std::size_t(cols);
  std::vector<double> err(std::size_t(rows) * block);
  for (int i1 = 0; i1 < cols; i1 += block) {
    const int i2 = std::min(i1 + block, cols), nb = i2 - i1;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
      double* wr = W.data() + std::size_t(r) * n;
      double* er = err.data() + std::size_t(r) * nb;
      for (int i = i1; i < i2; ++i) {
        const double q = column(r, wr, i, i1, i2);
        const double* ui = u.data() + std::size_t(i) * n;
        const double e = (wr[i] - q) / ui[i];
        wr[i] = q;
        er[i - i1] = e;
        for (int j = i + 1; j < i2; ++j) wr[j] -= e * ui[j];
      }
    }
    if (i2 < cols) {  // the lazy batch: W[:, i2:] -= Err · U[i1:i2, i2:]
      kern::gemm<double>(false, false, rows, cols - i2, nb, -1.0, err.data(), nb, u.data() + std::size_t(i1) * n + i2,
                         cols, 1.0, W.data() + i2, cols);
    }
  }
}

std::vector<double> widened(const float* w, std::size_t n) { return std::vector<double>(w, w + n); }

void zero_dead(std::vector<double>& W, int rows, int cols, const std::vector<int>& dead) {
  for (int r = 0; r < rows; ++r) {
    for (const int j : dead) W[std::size_t(r) * cols + j] = 0.0;
  }
}

// The slots fixed before the loop: one for the tensor, or one per row (channel), from the
// weights as they are; group slots are left to the caller (static or as the loop reaches them).
std::vector<Slot> slots_before_loop(const std::vector<double>& W, int rows, int cols, const kern::QuantFormat& f) {
  std::vector<Slot> slot(f.scale_count(rows, cols));
  if (f.granularity == kern::QuantGranularity::tensor) slot[0] = slot_of_range(W.data(), rows * cols, f);
  if (f.granularity == kern::QuantGranularity::channel) {
    for (int r = 0; r < rows; ++r) slot[r] = slot_of_range(W.data() + std::size_t(r) * cols, cols, f);
  }
  return slot;
}

void store_slots(const std::vector<Slot>& slot, CompressedWeight& out) {
  out.scale.resize(slot.size());
  out.zero.resize(slot.size());
  for (std::size_t k = 0; k < slot.size(); ++k) {
    out.scale[k] = slot[k].scale;
    out.zero[k] = std::int32_t(slot[k].zero);
  }
}

}  // namespace

CompressedWeight gptq(const float* w, int rows, int cols, std::vector<double> h, const kern::QuantFormat& f,
                      const ObsOptions& o, const std::string& layer, std::vector<std::string>& notes,
                      const std::uint8_t* keep) {
  check_format(f, "gptq", layer, cols);
  const bool groups = f.granularity == kern::QuantGranularity::group;
  KD_CHECK_INPUT(!(o.act_order && groups && !o.static_groups),
                 "gptq: --act-order with {} ({}) needs --static-groups: a quantized checkpoint keeps one group per "
                 "{} consecutive inputs, not a group index per column", quant::to_string(f), layer, f.group);
  const std::vector<int> dead = fix_dead_inputs(h, cols);
  std::vector<double> W0 = widened(w, std::size_t(rows) * cols);
  zero_dead(W0, rows, cols, dead);

  CompressedWeight out;
  std::vector<Slot> slot = slots_before_loop(W0, rows, cols, f);
  const int per_row = groups ? cols / f.group : 1;
  if (groups && o.static_groups) {
    for (int r = 0; r < rows; ++r) {
      for (int g = 0; g < per_row; ++g) {
        slot[std::size_t(r) * per_row + g] = slot_of_range(W0.data() + std::size_t(r) * cols + std::size_t(g) * f.group,
                                                           f.group, f);
      }
    }
  }
  std::vector<int> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order) perm = act_order(h, cols);
  std::vector<double> W(W0.size());
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < cols; ++i) W[std::size_t(r) * cols + i] = W0[std::size_t(r) * cols + perm[i]];
  }
  const HessianFactor hf = inverse_factor(o.act_order ? permute_symmetric(h, cols, perm) : std::move(h), cols, o.damp,
                                          layer, o.damp_key, notes);
  out.damp = hf.damp;
  const bool dynamic_groups = groups && !o.static_groups;
  obs_loop(W, rows, cols, hf.u, o.block, [&](int r, const double* wr, int i, int, int) {
    const int j = perm[i];  // the original column
    std::size_t k = 0;
    if (f.granularity == kern::QuantGranularity::channel) k = std::size_t(r);
    if (groups) k = std::size_t(r) * per_row + std::size_t(j / f.group);
    if (dynamic_groups && i % f.group == 0) {
      if (keep) {  // the range of the kept weights only (a pruned one ends 0, which every grid holds)
        std::vector<double> kept(f.group, 0.0);
        for (int c = 0; c < f.group; ++c) kept[c] = keep[std::size_t(r) * cols + perm[i + c]] ? wr[i + c] : 0.0;
        slot[k] = slot_of_range(kept.data(), f.group, f);
      } else {
        slot[k] = slot_of_range(wr + i, f.group, f);
      }
    }
    if (keep && !keep[std::size_t(r) * cols + j]) return 0.0;
    return quantize(wr[i], slot[k], f);
  });
  out.w.resize(W.size());
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < cols; ++i) out.w[std::size_t(r) * cols + perm[i]] = float(W[std::size_t(r) * cols + i]);
  }
  store_slots(slot, out);
  return out;
}

CompressedWeight sparsegpt(const float* w, int rows, int cols, std::vector<double> h, const Sparsity& s,
                           const kern::QuantFormat& f, const ObsOptions& o, const std::string& layer,
                           std::vector<std::string>& notes) {
  const bool quantized = f.enabled();
  if (quantized) check_format(f, "sparsegpt", layer, cols);
  check_sparsity_for(s, cols, layer, s.nm() ? "--nm" : "--sparsity");
  const bool groups = quantized && f.granularity == kern::QuantGranularity::group;
  const std::vector<int> dead = fix_dead_inputs(h, cols);
  std::vector<double> W = widened(w, std::size_t(rows) * cols);
  zero_dead(W, rows, cols, dead);
  std::vector<Slot> slot = quantized ? slots_before_loop(W, rows, cols, f) : std::vector<Slot>{};
  const int per_row = groups ? cols / f.group : 1;
  const HessianFactor hf = inverse_factor(std::move(h), cols, o.damp, layer, o.damp_key, notes);
  CompressedWeight out;
  out.damp = hf.damp;
  std::vector<std::uint8_t> pruned(std::size_t(rows) * cols, 0);
  const std::size_t n = std::size_t(cols);
  obs_loop(W, rows, cols, hf.u, o.block, [&](int r, const double* wr, int i, int i1, int i2) {
    std::uint8_t* pr = pruned.data() + std::size_t(r) * n;
    auto score_and_mark = [&](int c0, int c1, int count) {  // w²/U_jj² over [c0, c1), the `count` least pruned
      double sc[1024];
      std::vector<double> big;
      double* scores = sc;
      if (c1 - c0 > 1024) {
        big.resize(c1 - c0);
        scores = big.data();
      }
      for (int j = c0; j < c1; ++j) {
        const double d = hf.u[std::size_t(j) * n + j];
        scores[j - c0] = wr[j] * wr[j] / (d * d);
      }
      mark_smallest(scores, c1 - c0, count, pr + c0);
    };
    if (s.nm() && i % s.m == 0) score_and_mark(i, i + s.m, s.n);
    if (!s.nm() && i == i1) score_and_mark(i1, i2, int(std::floor(s.fraction * (i2 - i1))));
    double q = wr[i];
    if (quantized) {
      std::size_t k = 0;
      if (f.granularity == kern::QuantGranularity::channel) k = std::size_t(r);
      if (groups) {
        k = std::size_t(r) * per_row + std::size_t(i / f.group);
        if (i % f.group == 0) slot[k] = slot_of_range(wr + i, f.group, f);
      }
      q = quantize(q, slot[k], f);
    }
    return pr[i] ? 0.0 : q;
  });
  out.w.assign(W.begin(), W.end());
  out.mask.resize(pruned.size());
  for (std::size_t i = 0; i < pruned.size(); ++i) out.mask[i] = pruned[i] ? 0 : 1;
  if (quantized) store_slots(slot, out);
  return out;
}

}  // namespace kd::oneshot
