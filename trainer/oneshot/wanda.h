// Pruning without weight updates, by a saliency compared within each output row: Wanda's
// |W_ij| · ‖X_j‖₂ (Sun et al. 2023, "pruning by weights and activations") and plain
// magnitude |W_ij| (its baseline). Unstructured: each row loses floor(fraction · cols) of its
// least salient weights; N:M: each group of m consecutive inputs of a row loses its n least.
// Ties go to the lower column.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/oneshot/sparsity.h"

namespace kd::oneshot {

// (rows, cols) mask, 1 kept. squared_norms: Σ_n x_nj² per input (InputStats::squared_norms).
std::vector<std::uint8_t> wanda_mask(const float* w, int rows, int cols, const std::vector<double>& squared_norms,
                                     const Sparsity& s);
std::vector<std::uint8_t> magnitude_mask(const float* w, int rows, int cols, const Sparsity& s);

}  // namespace kd::oneshot
