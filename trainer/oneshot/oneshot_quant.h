// `kdtrain ptq --method gptq|awq|smoothquant`: a quantization plan's weights compressed
// one-shot, block by block (block_sequential.h), in the float parameter buffer, before the
// usual PTQ path writes the codes (trainer/quant/ptq.h):
//  * gptq: every planned weight of a site by GPTQ (obs_compress.h), its scales fixed;
//  * awq: per site, AWQ's scales searched on the block's float layers (as llm-awq does:
//    v→o must be folded before v is quantized) and folded into the norm in front (q/k/v,
//    gate/up) or the producing linear's rows (o from v_proj without grouped KV heads;
//    down from up_proj), the planned weights clipped; at the block's end its planned
//    weights are rounded to nearest, scales fixed, so the next block sees them quantized;
//  * smoothquant: per site with a norm in front (q/k/v, gate/up), the scales folded; the
//    weights stay float for PTQ's round-to-nearest and static activation scales;
//  * sparsegpt: SparseGPT's pruning and GPTQ-style quantization in one pass (the paper's
//    joint mode), to `sparsity`; the masks come back with the scales.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "trainer/model/llama.h"
#include "trainer/model/param_table.h"
#include "trainer/oneshot/obs_compress.h"
#include "trainer/quant/quant_plan.h"
#include "trainer/quant/quantized_model.h"

namespace kd::oneshot {

enum class QuantMethod { rtn, gptq, awq, smoothquant, sparsegpt };
// "rtn" | "gptq" | "awq" | "smoothquant" | "sparsegpt"; InputError naming `key` otherwise.
QuantMethod parse_quant_method(const std::string& text, const std::string& key);
const char* method_name(QuantMethod m);

struct OneshotQuantOptions {
  QuantMethod method = QuantMethod::rtn;
  ObsOptions obs;              // gptq, sparsegpt
  Sparsity sparsity;           // sparsegpt
  double alpha = 0.5;          // smoothquant's migration strength
  bool clip = true;            // awq's clipping search
  // a pruned model's mask over the whole parameter buffer (1 kept), or null: GPTQ holds
  // its zeros (AWQ's scaling and round-to-nearest keep a zero zero by themselves)
  const std::uint8_t* keep = nullptr;
};

struct OneshotReport {
  // tensor name → the scales a method fixed (GPTQ, AWQ): PTQ writes the codes with them
  std::map<std::string, quant::WeightScales> scales;
  std::map<std::string, std::vector<std::uint8_t>> masks;  // sparsegpt: tensor name → (rows, cols), 1 kept
  std::vector<double> awq_alphas;  // awq: the α chosen at each searched site, in calibration order
  std::vector<std::string> notes;  // Hessian retries, v→o folds skipped, …
  double seconds = 0;
};

// InputError before any work: a method that does not support a planned format (gptq and
// awq: integer weights; smoothquant: an activation format with static per-tensor scales
// somewhere, else it changes nothing), act-order with dynamic groups.
void check_method_for_plan(const OneshotQuantOptions& o, const quant::QuantPlan& plan);

// Compresses params (the model of `lay`/`table`) in place with the calibration tokens.
OneshotReport quantize_oneshot(const OneshotQuantOptions& o, const quant::QuantPlan& plan, const LlamaLayout& lay,
                               const ParamTable& table, float* params, const std::vector<std::int32_t>& tokens,
                               int samples, int seq_len, int threads,
                               const std::function<void(const std::string&)>& progress);

}  // namespace kd::oneshot
