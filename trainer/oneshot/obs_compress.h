// GPTQ and SparseGPT: one weight matrix compressed column by column, each column's error
// fed back into the columns not yet done through the upper Cholesky factor U of the
// inverse Hessian (the optimal brain surgeon update), with lazy batches of `block` columns
// (the rest of the matrix updated once per block by one GEMM). All in float64; the values
// written back are float32, on the quantization grid where quantized.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "trainer/oneshot/sparsity.h"

namespace kd::oneshot {

struct CompressedWeight {
  std::vector<float> w;             // (rows, cols) the new weights
  std::vector<float> scale;         // quantized: one per scale slot of the format (row-major)
  std::vector<std::int32_t> zero;   // quantized: the slots' zero points (unshifted, as FakeQuant's)
  std::vector<std::uint8_t> mask;   // pruned: (rows, cols), 1 kept
  double damp = 0;                  // the Hessian's dampening used (after any retries)
};

struct ObsOptions {
  int block = 128;             // lazy-batch block; SparseGPT's mask block too
  double damp = 0.01;          // λ = damp · mean(diag H)
  std::string damp_key = "--damp";
  bool act_order = false;      // GPTQ: columns by decreasing H_jj
  bool static_groups = false;  // group scales from the original weights, fixed before the loop
};

// GPTQ (Frantar et al. 2022, Algorithm 1) of w (rows, cols) under the integer format f,
// h = (2/N) Σ x xᵀ of its inputs. Scales: tensor and channel from the weights before the
// loop; groups of g when the loop reaches a group's first column, from the updated weights
// (or all from the original weights, static_groups). InputError naming `layer`: an FP8
// format, act-order with groups but not static ones (a checkpoint stores no per-column
// group index), a Hessian that stays singular (hessian_factor.h). `notes`: retries.
// keep (nullable, rows × cols, 0 = pruned): a pruned model's mask, held: pruned weights end
// 0 (their columns' errors fed forward like SparseGPT's), and group ranges span kept ones.
CompressedWeight gptq(const float* w, int rows, int cols, std::vector<double> h, const kern::QuantFormat& f,
                      const ObsOptions& o, const std::string& layer, std::vector<std::string>& notes,
                      const std::uint8_t* keep = nullptr);

// SparseGPT (Frantar & Alistarh 2023, Algorithm 1): per block of o.block columns, each row
// prunes its floor(fraction · block) weights of least w²/U_jj² (N:M: the n least of every
// m, chosen when the loop reaches the group), then the OBS update. With an enabled integer
// format f the kept weights are quantized in the same pass (the paper's joint
// sparsification and quantization), group scales as GPTQ's without act-order.
CompressedWeight sparsegpt(const float* w, int rows, int cols, std::vector<double> h, const Sparsity& s,
                           const kern::QuantFormat& f, const ObsOptions& o, const std::string& layer,
                           std::vector<std::string>& notes);

}  // namespace kd::oneshot
