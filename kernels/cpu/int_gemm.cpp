// linear_int8: preparing a stored quantized weight for the integer GEMM, and the blocked,
// threaded driver around the micro-tiles (kernels/cpu/int_gemm_tile.cpp).
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu/int_gemm_tile.h"
#include "kernels/int_gemm.h"

namespace kd::kern {

namespace {

constexpr int kPanel = PreparedWeight::kPanel;
// Rows of activations prepared at a time: 96 rows × K int16 stay in L2 (147 KiB at K = 768).
// A task is such a block × 64 output channels; each tile of rows (in L1) meets the task's 4
// panels in turn, so y is written 64 channels of a row at a time. (Panel-major order wrote
// 96 rows 16 floats wide: at N = 4096, a 16 KiB row stride, that piled onto a few cache
// sets and ran ~35% slower.)
constexpr int kBlockRows = 96;
static_assert(kBlockRows % detail::kPairsTileRows == 0 && kBlockRows % detail::kQuadsTileRows == 0);
constexpr int kTaskPanels = 4;  // 64 output channels per task

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("int_gemm: " + what);
}

int group_zero(const QuantWeight& w, int row, int g) {
  return w.zero ? w.zero[std::size_t(row) * (w.k / w.group) + g] : 0;
}

// The activation operand of each layout, rows (rows, lda), padding columns 0 (they meet
// zero weights): int16_pairs: xq - x_zero as int16; int8_quads: xq + 128 as uint8.
void prepare_rows(std::int16_t* a, int lda, const std::int8_t* xq, int k, int rows, int x_zero) {
  for (int r = 0; r < rows; ++r) {
    const std::int8_t* x = xq + std::size_t(r) * k;
    std::int16_t* ar = a + std::size_t(r) * lda;
#pragma omp simd
    for (int i = 0; i < k; ++i) ar[i] = std::int16_t(x[i] - x_zero);
    for (int i = k; i < lda; ++i) ar[i] = 0;
  }
}
void prepare_rows(std::uint8_t* a, int lda, const std::int8_t* xq, int k, int rows, int /*x_zero*/) {
  for (int r = 0; r < rows; ++r) {
    const std::int8_t* x = xq + std::size_t(r) * k;
    std::uint8_t* ar = a + std::size_t(r) * lda;
#pragma omp simd
    for (int i = 0; i < k; ++i) ar[i] = std::uint8_t(x[i] + 128);
    for (int i = k; i < lda; ++i) ar[i] = 0;
  }
}

bool quads_fit(const QuantWeight& w) { return w.bits == 4 && (w.group == w.k || w.group % 8 == 0); }

// Runs the tiles of one layout over rows [r0, r0 + rows) and panels [p0, p1); `a` holds
// those rows prepared for the layout.
template <class A>
void run_tiles(const PreparedWeight& w, const A* a, float* y, const float* x_scale, bool x_per_row, int x_zero,
               int r0, int rows, int p0, int p1, bool accumulate) {
  constexpr bool quads = sizeof(A) == 1;
  constexpr int tile_rows = quads ? detail::kQuadsTileRows : detail::kPairsTileRows;
  detail::IntTile t;
  t.act_offset = 128 + x_zero;
  t.lda = w.k_pad;
  t.group_k = w.group == w.k ? w.k_pad : w.group;
  t.groups = w.groups;
  t.xscale_stride = x_per_row ? 1 : 0;
  t.ldy = w.n;
  t.accumulate = accumulate;
  for (int i = 0; i < rows; i += tile_rows) {
    if constexpr (quads) t.a8 = a + std::size_t(i) * w.k_pad;
    else t.a16 = a + std::size_t(i) * w.k_pad;
    t.xscale = x_scale + (x_per_row ? r0 + i : 0);
    t.rows = std::min(tile_rows, rows - i);
    for (int panel = p0; panel < p1; ++panel) {
      const std::size_t codes_at = std::size_t(panel) * w.k_pad * kPanel;  // both layouts: k_pad · 16 codes a panel
      if constexpr (quads) {
        t.b8 = w.quads.data() + codes_at;
        t.bsum = w.sums.data() + std::size_t(panel) * w.groups * kPanel;
      } else {
        t.b16 = w.pairs.data() + codes_at;
      }
      t.bscale = w.scales.data() + std::size_t(panel) * w.groups * kPanel;
      t.cols = std::min(kPanel, w.n - panel * kPanel);
      t.y = y + std::size_t(r0 + i) * w.n + panel * kPanel;
      if constexpr (quads) detail::int_tile_quads(t);
      else detail::int_tile_pairs(t);
    }
  }
}

template <class A>
void linear_int8_layout(float* y, const std::int8_t* xq, const float* x_scale, bool x_per_row, int x_zero,
                        const PreparedWeight& w, int m, bool accumulate) {
  const int panels = (w.n + kPanel - 1) / kPanel;
  const int row_blocks = (m + kBlockRows - 1) / kBlockRows;
  const int col_tasks = (panels + kTaskPanels - 1) / kTaskPanels;
  const int tasks = row_blocks * col_tasks;
#pragma omp parallel
  {
    std::vector<A> a(std::size_t(kBlockRows) * w.k_pad);
    int held = -1;  // the row block `a` holds: static chunks are row-block major, so a
                    // thread prepares each of its row blocks once
#pragma omp for schedule(static)
    for (int task = 0; task < tasks; ++task) {
      const int rb = task / col_tasks, ct = task % col_tasks;
      const int r0 = rb * kBlockRows, rows = std::min(kBlockRows, m - r0);
      if (held != rb) {
        prepare_rows(a.data(), w.k_pad, xq + std::size_t(r0) * w.k, w.k, rows, x_zero);
        held = rb;
      }
      run_tiles(w, a.data(), y, x_scale, x_per_row, x_zero, r0, rows, ct * kTaskPanels,
                std::min(panels, (ct + 1) * kTaskPanels), accumulate);
    }
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
  return prepare_weight(w, quads_fit(w) ? IntLayout::int8_quads : IntLayout::int16_pairs);
}

PreparedWeight prepare_weight(const QuantWeight& w, IntLayout layout) {
  check_weight(w);
  const bool quads = layout == IntLayout::int8_quads;
  require(!quads || quads_fit(w), "int8_quads holds 4-bit weights with group k or a multiple of 8");
  const int unit = quads ? 4 : 2;  // K per channel in a panel row
  const int step = quads ? 8 : 2;  // K per step of the tile
  PreparedWeight p;
  p.layout = layout;
  p.n = w.n;
  p.k = w.k;
  p.group = w.group;
  p.k_pad = (w.k + step - 1) / step * step;
  p.groups = w.k / w.group;
  const int panels = (w.n + kPanel - 1) / kPanel;
  const std::size_t codes = std::size_t(panels) * p.k_pad * kPanel;
  if (quads) {
    p.quads.assign(codes, 0);
    p.sums.assign(std::size_t(panels) * p.groups * kPanel, 0);
  } else {
    p.pairs.assign(codes, 0);
  }
  p.scales.assign(std::size_t(panels) * p.groups * kPanel, 0.0f);
  for (int row = 0; row < w.n; ++row) {
    const int panel = row / kPanel, c = row % kPanel;
    for (int g = 0; g < p.groups; ++g) {
      const int z = group_zero(w, row, g);
      const std::size_t pg = (std::size_t(panel) * p.groups + g) * kPanel + c;
      p.scales[pg] = w.scale[std::size_t(row) * p.groups + g];
      for (int col = g * w.group; col < (g + 1) * w.group; ++col) {
        const int v = weight_code(w, row, col) - z;
        const std::size_t at = ((std::size_t(panel) * (p.k_pad / unit) + col / unit) * kPanel + c) * unit + col % unit;
        if (quads) {
          p.quads[at] = std::int8_t(v);
          p.sums[pg] += v;
        } else {
          p.pairs[at] = std::int16_t(v);
        }
      }
    }
  }
  return p;
}

void linear_int8(float* y, const std::int8_t* xq, const float* x_scale, bool x_per_row, int x_zero,
                 const PreparedWeight& w, int m, bool accumulate) {
  require(x_zero >= -128 && x_zero <= 127, "activation zero point off the int8 grid");
  if (w.layout == IntLayout::int8_quads)
    linear_int8_layout<std::uint8_t>(y, xq, x_scale, x_per_row, x_zero, w, m, accumulate);
  else
    linear_int8_layout<std::int16_t>(y, xq, x_scale, x_per_row, x_zero, w, m, accumulate);
}

void linear_int8(float* y, const std::int8_t* xq, const float* x_scale, bool x_per_row, int x_zero,
                 const QuantWeight& w, int m, bool accumulate) {
  linear_int8(y, xq, x_scale, x_per_row, x_zero, prepare_weight(w), m, accumulate);
}

}  // namespace kd::kern
