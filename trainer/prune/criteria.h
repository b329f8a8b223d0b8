// Pruning criteria as pure functions: (target, weights, current mask) → a new mask that
// prunes at least what `current` pruned (masks only grow). Ties everywhere: the smaller
// |w| (or score) is pruned first, and among equal ones the lower flat index (or unit index)
// first, so a result never depends on sort stability or thread count.
//
// Units:
//  * magnitude_layer / magnitude_global: elements of the kPrunable tensors (the linear
//    layers), per tensor or pooled; `sparsity` is the pruned fraction of elements.
//  * n_m: in every group of m consecutive elements along a row (the input dimension), at
//    most n kept (2:4, the pattern sparse tensor cores run).
//  * heads: whole KV groups (a key/value head, the query heads that share it, their q/k/v
//    rows and o_proj columns), scored by the L2 norm of all of those weights; the same
//    number floor(sparsity · n_kv_heads) per layer, so the compact model is still a
//    standard (GQA) Llama.
//  * neurons: FFN neurons (gate row, up row, down column), scored by their L2 norm;
//    floor(sparsity · d_ff) per layer.
#pragma once

#include <string>

#include "trainer/model/llama.h"
#include "trainer/prune/mask.h"

namespace kd::prune {

enum class Criterion { magnitude_layer, magnitude_global, n_m, heads, neurons };

struct PruneTarget {
  Criterion criterion = Criterion::magnitude_global;
  double sparsity = 0.5;  // [0, 1); unused by n_m
  int n = 2, m = 4;       // n_m: keep at most n of every m
};

// Throws InputError naming `where` (the config key) for a sparsity outside [0, 1), n/m out
// of range, or m not dividing a prunable tensor's input dimension (naming the tensor).
void check_target(const PruneTarget& t, const ModelSpec& spec, const std::string& where);

Mask prune(const PruneTarget& t, const LlamaLayout& layout, const ParamTable& table, const float* weights,
           const Mask& current, const std::string& where);

}  // namespace kd::prune
