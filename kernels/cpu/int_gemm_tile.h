// The micro-tile of linear_int8 (internal to the CPU backend): `rows` (≤ kTileRows) rows
// of widened activations against one 16-channel panel of a PreparedWeight.
#pragma once

#include <cstdint>

namespace kd::kern::detail {

inline constexpr int kTileRows = 6;  // 6 rows × 16 channels = 12 int32 accumulators (of 16 ymm)

struct IntTile {
  const std::int16_t* a;   // (rows, lda) activation codes minus their zero point, lda even
  int lda;
  const std::int16_t* b;   // panel: [k_pad/2][16][2] weight codes minus their zero points
  const float* bscale;     // panel scales: [groups][16]
  int pairs_per_group;     // K pairs summed exactly in int32 before each rescale
  int groups;
  const float* xscale;     // per-row activation scale: xscale[r · xscale_stride]
  int xscale_stride;       // 1 per row, 0 one scale
  float* y;                // (rows, ldy), columns [0, cols) of this panel
  int ldy;
  int rows, cols;          // rows ≤ kTileRows, cols ≤ 16
  bool accumulate;
};

// y[r][c] (+)= Σ_g  float(Σ_{k in g} a[r][k]·b[k][c]) · (bscale[g][c] · xscale[r])
// summed into y one group at a time (each group's int32 sum is exact).
void int_tile(const IntTile& t);

}  // namespace kd::kern::detail
