// The micro-tiles of linear_int8 (internal to the CPU backend): up to a layout's tile rows
// of prepared activations against one 16-channel panel of a PreparedWeight.
#pragma once

#include <cstdint>

namespace kd::kern::detail {

inline constexpr int kPairsTileRows = 6;  // 6 rows × 16 channels = 12 int32 accumulators (of 16 ymm)
inline constexpr int kQuadsTileRows = 4;  // 8 accumulators + the int16 partial sums in flight

struct IntTile {
  // int16_pairs: a16 (rows, lda) = xq - x_zero; b16 the panel [k_pad/2][16][2].
  const std::int16_t* a16 = nullptr;
  const std::int16_t* b16 = nullptr;
  // int8_quads: a8 (rows, lda) = xq + 128; b8 the panel [k_pad/4][16][4]; bsum [groups][16]
  // = Σ weight codes per group; act_offset = 128 + x_zero, the shift to take back out.
  const std::uint8_t* a8 = nullptr;
  const std::int8_t* b8 = nullptr;
  const std::int32_t* bsum = nullptr;
  int act_offset = 0;

  int lda = 0;             // activation row length (k_pad)
  int group_k = 0;         // K elements summed exactly in int32 before each rescale
  int groups = 0;
  const float* bscale = nullptr;  // panel scales: [groups][16]
  const float* xscale = nullptr;  // per-row activation scale: xscale[r · xscale_stride]
  int xscale_stride = 0;          // 1 per row, 0 one scale
  float* y = nullptr;             // (rows, ldy), columns [0, cols) of this panel
  int ldy = 0;
  int rows = 0, cols = 0;         // rows ≤ the layout's tile rows, cols ≤ 16
  bool accumulate = false;
};

// y[r][c] (+)= Σ_g  float(Σ_{k in g} x[r][k]·w[k][c]) · (bscale[g][c] · xscale[r])
// summed into y one group at a time (each group's int32 sum is exact).
// The build's fastest version (AVX2 when compiled with it):
void int_tile_pairs(const IntTile& t);
void int_tile_quads(const IntTile& t);
// The plain C++ reference, always built; the same bits (tests/test_int_gemm.cpp).
void int_tile_pairs_reference(const IntTile& t);
void int_tile_quads_reference(const IntTile& t);

}  // namespace kd::kern::detail
