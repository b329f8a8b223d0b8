// `kdtrain prune CKPT --method magnitude|wanda|sparsegpt`: every linear layer of the blocks
// (q/k/v/o, gate/up/down) pruned to a sparsity target, one-shot:
//  * magnitude: the least |w| of each output row (or of each m inputs, N:M) — the baseline,
//    compared within rows as Wanda is (no data);
//  * wanda: |w|·‖x‖₂ within each row, the norms from the calibration pass;
//  * sparsegpt: SparseGPT's masks and weight updates (obs_compress.h);
// wanda and sparsegpt block by block over the calibration tokens (block_sequential.h), each
// site seeing the sites before it already pruned.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "trainer/model/llama.h"
#include "trainer/model/param_table.h"
#include "trainer/oneshot/obs_compress.h"
#include "trainer/oneshot/sparsity.h"

namespace kd::oneshot {

enum class PruneMethod { magnitude, wanda, sparsegpt };
// "magnitude" | "wanda" | "sparsegpt"; InputError naming `key` otherwise.
PruneMethod parse_prune_method(const std::string& text, const std::string& key);
const char* method_name(PruneMethod m);

struct OneshotPruneOptions {
  PruneMethod method = PruneMethod::magnitude;
  Sparsity sparsity;
  ObsOptions obs;  // sparsegpt
};

struct PruneReport {
  std::map<std::string, std::vector<std::uint8_t>> masks;  // tensor name → (rows, cols), 1 kept
  std::vector<std::string> notes;
  double seconds = 0;
};

// InputError naming `key` and the layer when an N:M pattern does not divide a layer's rows.
void check_prune_for_model(const OneshotPruneOptions& o, const ModelSpec& spec, const std::string& key);

// Prunes params in place; tokens (samples × seq_len) are used by wanda and sparsegpt.
PruneReport prune_oneshot(const OneshotPruneOptions& o, const LlamaLayout& lay, const ParamTable& table, float* params,
                          const std::vector<std::int32_t>& tokens, int samples, int seq_len, int threads,
                          const std::function<void(const std::string&)>& progress);

}  // namespace kd::oneshot
