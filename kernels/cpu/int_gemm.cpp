// linear_int8: preparing a stored quantized weight for the integer GEMM, and the blocked,
// threaded driver around the micro-tile (kernels/cpu/int_gemm_tile.cpp).
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu/int_gemm_tile.h"
#include "kernels/int_gemm.h"

namespace kd::kern {

namespace {

constexpr int kPanel = PreparedWeight::kPanel;
// Rows of activations widened at a time: 96 rows × K int16 stay in L2 (147 KiB at K = 768)
// while every panel of the task's columns streams over them from L1.
constexpr int kBlockRows = 16 * detail::kTileRows;
constexpr int kTaskPanels = 4;  // 64 output channels per task

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("int_gemm: " + what);
}

int group_zero(const QuantWeight& w, int row, int g) {
  return w.zero ? w.zero[std::size_t(row) * (w.k / w.group) + g] : 0;
}

// a (rows, lda) int16 = xq - x_zero; the padding column of an odd K stays 0.
void widen_rows(std::int16_t* a, int lda, const std::int8_t* xq, int k, int rows, int x_zero) {
  for (int r = 0; r < rows; ++r) {
    const std::int8_t* x = xq + std::size_t(r) * k;
    std::int16_t* ar = a + std::size_t(r) * lda;
#pragma omp simd
    for (int i = 0; i < k; ++i) ar[i] = std::int16_t(x[i] - x_zero);
    for (int i = k; i < lda; ++i) ar[i] = 0;
  }
}

}  // namespace

void check_weight(const QuantWeight& w) {
  require(w.n > 0 && w.k > 0, "empty weight");
  require(w.bits == 8 || w.bits == 4, "bits must be 8 or 4, got " + std::to_string(w.bits));
  require(w.bits == 8 ? w.q8 != nullptr : w.q4 != nullptr, "missing codes");
  require(w.scale != nullptr, "missing scales");
  require(w.group == w.k || (w.group > 0 && w.group % 2 == 0 && w.k % w.group == 0),
          "group must be k or an even divisor of k, got " + std::to_string(w.group));
  require(w.bits == 8 || w.k % 2 == 0, "4-bit rows pack two codes per byte: k must be even");
  require(w.k <= kIntGemmMaxK, "k too large for exact int32 sums");
  if (w.zero == nullptr) return;
  const int qmin = w.bits == 8 ? -128 : -8, qmax = w.bits == 8 ? 127 : 7;
  const std::size_t nz = std::size_t(w.n) * (w.k / w.group);
  for (std::size_t i = 0; i < nz; ++i)
    require(w.zero[i] >= qmin && w.zero[i] <= qmax, "zero point off the code grid: " + std::to_string(w.zero[i]));
}

PreparedWeight prepare_weight(const QuantWeight& w) {
  check_weight(w);
  PreparedWeight p;
  p.n = w.n;
  p.k = w.k;
  p.group = w.group;
  p.k_pad = w.k + w.k % 2;
  p.groups = w.k / w.group;
  const int panels = (w.n + kPanel - 1) / kPanel, pairs = p.k_pad / 2;
  p.codes.assign(std::size_t(panels) * pairs * kPanel * 2, 0);
  p.scales.assign(std::size_t(panels) * p.groups * kPanel, 0.0f);
  for (int row = 0; row < w.n; ++row) {
    const int panel = row / kPanel, c = row % kPanel;
    for (int g = 0; g < p.groups; ++g) {
      const int z = group_zero(w, row, g);
      p.scales[(std::size_t(panel) * p.groups + g) * kPanel + c] = w.scale[std::size_t(row) * p.groups + g];
      for (int col = g * w.group; col < (g + 1) * w.group; ++col) {
        const std::size_t at = ((std::size_t(panel) * pairs + col / 2) * kPanel + c) * 2 + col % 2;
        p.codes[at] = std::int16_t(weight_code(w, row, col) - z);
      }
    }
  }
  return p;
}

void linear_int8(float* y, const std::int8_t* xq, const float* x_scale, bool x_per_row, int x_zero,
                 const PreparedWeight& w, int m, bool accumulate) {
  require(x_zero >= -128 && x_zero <= 127, "activation zero point off the int8 grid");
  const int panels = (w.n + kPanel - 1) / kPanel, pairs = w.k_pad / 2;
  const int row_blocks = (m + kBlockRows - 1) / kBlockRows;
  const int col_tasks = (panels + kTaskPanels - 1) / kTaskPanels;
  const int tasks = row_blocks * col_tasks;
#pragma omp parallel
  {
    std::vector<std::int16_t> a(std::size_t(kBlockRows) * w.k_pad);
    int widened = -1;  // the row block `a` holds: static chunks are row-block major, so a
                       // thread widens each of its row blocks once
#pragma omp for schedule(static)
    for (int task = 0; task < tasks; ++task) {
      const int rb = task / col_tasks, ct = task % col_tasks;
      const int r0 = rb * kBlockRows, rows = std::min(kBlockRows, m - r0);
      if (widened != rb) {
        widen_rows(a.data(), w.k_pad, xq + std::size_t(r0) * w.k, w.k, rows, x_zero);
        widened = rb;
      }
      const int p_end = std::min(panels, (ct + 1) * kTaskPanels);
      for (int panel = ct * kTaskPanels; panel < p_end; ++panel) {
        detail::IntTile t{};
        t.lda = w.k_pad;
        t.b = w.codes.data() + std::size_t(panel) * pairs * kPanel * 2;
        t.bscale = w.scales.data() + std::size_t(panel) * w.groups * kPanel;
        t.pairs_per_group = w.group == w.k ? pairs : w.group / 2;
        t.groups = w.groups;
        t.xscale_stride = x_per_row ? 1 : 0;
        t.ldy = w.n;
        t.cols = std::min(kPanel, w.n - panel * kPanel);
        t.accumulate = accumulate;
        for (int i = 0; i < rows; i += detail::kTileRows) {
          t.a = a.data() + std::size_t(i) * w.k_pad;
          t.xscale = x_scale + (x_per_row ? r0 + i : 0);
          t.y = y + std::size_t(r0 + i) * w.n + panel * kPanel;
          t.rows = std::min(detail::kTileRows, rows - i);
          detail::int_tile(t);
        }
      }
    }
  }
}

void linear_int8(float* y, const std::int8_t* xq, const float* x_scale, bool x_per_row, int x_zero,
                 const QuantWeight& w, int m, bool accumulate) {
  linear_int8(y, xq, x_scale, x_per_row, x_zero, prepare_weight(w), m, accumulate);
}

}  // namespace kd::kern
