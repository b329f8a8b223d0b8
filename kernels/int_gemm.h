// Integer GEMM for quantized inference: int8 activations × int8/int4 weights with exact
// int32 accumulation (W8A8, W4A8), and fp32 activations × int8/int4 weights (W4A16).
// Included at the end of kernels/kernels.h; same conventions (row-major, outputs first,
// OpenMP over the caller's pool). Every result is computed by one thread in a fixed order,
// so it does not depend on the thread count.
//
// Math. A quantized tensor is codes q and float scales s (and optionally zero points z):
// the value is (q - z)·s. For y = x·W^T with activation row r and weight row n:
//   y[r][n] = sx[r] · Σ_g sw[n][g] · Σ_{k in group g} (qx[r][k] - zx)(qw[n][k] - zw[n][g])
// The inner sum is an exact int32 (|(qx-zx)(qw-zw)| ≤ 255², K ≤ kIntGemmMaxK); the scales
// are applied in float once per group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kd::kern {

// ---------------------------------------------------------------- activation quantization
// Dynamic per-token (per-row) symmetric int8: scale[r] = absmax_r / 127 and
// q = clamp(nearbyint(x · (1/scale[r])), -127, 127) (common::quant_code: PyTorch's rounding).
// A row of zeros gets scale 1 (all codes 0); a row whose absmax/127 is below FLT_MIN gets
// FLT_MIN, so 1/scale stays finite. Inputs must be finite.
// q (M,K), scale (M) ← x (M,K)
void quantize_rows_int8(std::int8_t* q, float* scale, const float* x, int m, int k);
// Static (calibrated) int8, one scale and zero point for the whole tensor, grid -128..127:
// q = clamp(zero_point + nearbyint(x · (1/scale)), -128, 127).   q (M,K) ← x (M,K)
void quantize_rows_int8_static(std::int8_t* q, const float* x, int m, int k, float scale,
                               int zero_point);

// ---------------------------------------------------------------- int4 packing
// Two signed 4-bit codes (-8..7) per byte, in order: element 2j in the LOW nibble of byte j,
// element 2j+1 in the HIGH nibble; each nibble is the code's two's complement (code & 0xF),
// sign-extended on unpack. An unsigned uint4 grid 0..15 with zero point z is the same
// tensor as signed codes u-8 with zero point z-8.
// packed (n/2) ← codes (n), n even; codes outside -8..7 are a caller error (low bits kept).
void pack_int4(std::uint8_t* packed, const std::int8_t* codes, std::size_t n);
// codes (n) ← packed (n/2)
void unpack_int4(std::int8_t* codes, const std::uint8_t* packed, std::size_t n);

// ---------------------------------------------------------------- quantized weights
// A quantized linear weight in [out, in] = (N,K) layout, as stored (non-owning view).
// Groups run along K: `group` consecutive elements of a row share scale and zero point.
//   group == k: per output channel;  otherwise a divisor of k (32, 64, 128), even.
struct QuantWeight {
  int n = 0, k = 0;
  int bits = 8;                          // 8 (codes -128..127) or 4 (codes -8..7)
  int group = 0;                         // elements per scale along K (k = per channel)
  const std::int8_t* q8 = nullptr;       // bits 8: (N,K) codes
  const std::uint8_t* q4 = nullptr;      // bits 4: (N,K/2) bytes, each row pack_int4'd; k even
  const float* scale = nullptr;          // (N, K/group)
  const std::int32_t* zero = nullptr;    // (N, K/group) zero points on the code grid, or null = 0
};
// Largest K whose int32 sums are exact for any codes and zero points: K · 255² < 2³¹.
inline constexpr int kIntGemmMaxK = 33025;

// Throws std::invalid_argument naming the problem: bits, missing arrays, a group that is
// neither k nor an even divisor of k, an odd k with 4 bits, k > kIntGemmMaxK, a zero point
// off the code grid. Run by prepare_weight and linear_w4a16.
void check_weight(const QuantWeight& w);
// The code of element (row, col) of a stored weight (the reference the kernels are tested on).
int weight_code(const QuantWeight& w, int row, int col);

// The load-time form linear_int8 runs on (owning; build once per weight, run many GEMMs).
// The stored QuantWeight stays 4-bit packed; preparing subtracts each group's zero point
// from the codes (qw - zw: exact, -255..255 for 8 bits, -15..15 for 4) and re-lays them in
// panels of 16 output channels, N padded to 16 and K to the layout's step with zeros:
//  * int16_pairs (any weight): int16, 2 K per channel — the operand of AVX2's vpmaddwd
//    (int16 × int16, pairs summed exactly into int32). 2 bytes per weight element.
//  * int8_quads (4-bit weights): int8, 4 K per channel — the operand of vpmaddubsw, which
//    multiplies activations shifted to unsigned (xq + 128, 0..255) by these codes and sums
//    pairs into int16: |255·15·2| twice = 15300 < 2^15, so two steps add up exactly in int16
//    before widening (the saturation vpmaddubsw has on int8 × int8 cannot happen). The
//    shift is undone per group with Σ(qw - zw): Σ(xq - zx)(w) = Σ(xq + 128)w - (128 + zx)Σw.
//    About 1.3× the int16 path's speed (Zen 3); 1 byte per weight element.
// Scales (and sums) are re-laid per panel the same way.
enum class IntLayout { int16_pairs, int8_quads };
struct PreparedWeight {
  static constexpr int kPanel = 16;      // output channels per panel
  IntLayout layout = IntLayout::int16_pairs;
  int n = 0, k = 0, group = 0;
  int k_pad = 0;                         // k rounded up to the layout's step (2 or 8)
  int groups = 0;                        // k / group
  std::vector<std::int16_t> pairs;       // int16_pairs: [N/16][k_pad/2][16][2]
  std::vector<std::int8_t> quads;        // int8_quads:  [N/16][k_pad/4][16][4]
  std::vector<std::int32_t> sums;        // int8_quads:  [N/16][groups][16]  Σ (qw - zw)
  std::vector<float> scales;             // [N/16][groups][16]
};
// The fastest layout that holds w exactly: int8_quads for 4 bits when group % 8 == 0 or
// group == k, otherwise int16_pairs.
PreparedWeight prepare_weight(const QuantWeight& w);
// A given layout (tests compare both); throws std::invalid_argument if it cannot hold w.
PreparedWeight prepare_weight(const QuantWeight& w, IntLayout layout);

// ---------------------------------------------------------------- integer linear
// y (M,N) (+)= dequant(xq) · dequant(W)^T, int32-exact per group (W8A8 / W4A8).
// xq (M,K) int8 codes; activation value = (xq - x_zero) · x_scale[x_per_row ? r : 0]
// (per-token dynamic: per_row, zero 0; static: one scale, any zero point in -128..127).
void linear_int8(float* y, const std::int8_t* xq, const float* x_scale, bool x_per_row,
                 int x_zero, const PreparedWeight& w, int m, bool accumulate);
// Convenience for a single call: prepares W first (eval should prepare once instead).
void linear_int8(float* y, const std::int8_t* xq, const float* x_scale, bool x_per_row,
                 int x_zero, const QuantWeight& w, int m, bool accumulate);

// ---------------------------------------------------------------- weight-only (W4A16)
// y (M,N) (+)= x (M,K) · dequant(W)^T in fp32, for 4- or 8-bit W (W4A16 / W8A16): tiles of
// W's rows are dequantized to fp32 ((q - z)·s, as fake-quant computes them) and multiplied
// with single-threaded sgemm, one tile per OpenMP iteration.
void linear_w4a16(float* y, const float* x, const QuantWeight& w, int m, bool accumulate);

}  // namespace kd::kern
