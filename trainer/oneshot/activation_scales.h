// Per-input-channel scales that move quantization difficulty between a layer's inputs and
// its weights, folded into what produces the input (an RMSNorm's weight, or the rows of
// the linear before): the layer computes (W·diag(s))(diag(s)⁻¹x), the same function.
//  * AWQ (Lin et al. 2023, "activation-aware weight quantization", section 3.2):
//    s = mean|x|^α, normalised by sqrt(max s · min s), α searched on a grid of `grid`
//    points in [0, 1) for the least output error of the group's linears under
//    round-to-nearest of W·diag(s); then llm-awq's clipping search: per row and scale slot
//    the range shrunk by up to half (in steps of 1/grid) for the least error of that
//    slot's share of the output.
//  * SmoothQuant (Xiao et al. 2023, eq. 4): s_j = max|x_j|^α / max|W_:j|^(1−α) over every
//    linear of the group, for W8A8 with static per-tensor activation scales.
#pragma once

#include <vector>

#include "kernels/kernels.h"
#include "trainer/oneshot/input_stats.h"

namespace kd::oneshot {

// One linear of a group sharing an input: its weights (rows, cols).
struct GroupWeight {
  const float* w;
  int rows;
  kern::QuantFormat format{};  // AWQ: the weight's format (an integer one); SmoothQuant ignores it
};

struct AwqScales {
  double alpha = 0;
  std::vector<double> scales;  // (cols) of the chosen α
  std::vector<double> losses;  // Σ of the group's output errors, per grid point
};

// Each weight under its own integer format (tensor, channel or groups). Ties go to the
// smaller α.
AwqScales awq_search(const std::vector<GroupWeight>& group, int cols, const InputStats& x, int grid = 20);

// AWQ's clipping of one scaled weight ws = W·diag(s) (rows, cols), in place: per row and
// scale slot (channel: the row; groups: each group) the range m0 = max|ws| shrunk to
// m0·(1 − i/grid), i < grid·max_shrink, the least error of the slot's output share with
// inputs x/s kept (ties: less shrinking). Returns the ratios chosen (rows × slots per row).
// Not for tensor scales (no per-row slot): returns empty, ws unchanged.
std::vector<double> awq_clip(double* ws, int rows, int cols, const std::vector<double>& s, const InputStats& x,
                             const kern::QuantFormat& f, int grid = 20, double max_shrink = 0.5);

// SmoothQuant's scales for the group at migration strength alpha; 1 where an input never
// fired or no weight reads it.
std::vector<double> smoothquant_scales(const std::vector<GroupWeight>& group, int cols, const InputStats& x,
                                       double alpha);

}  // namespace kd::oneshot
