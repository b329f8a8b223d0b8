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
//  * layers: whole transformer blocks (all seven linear layers; a block whose linears are
//    zero is the identity on the residual stream), ranked by a block importance measured
//    on data (block_importance.h); floor(sparsity · n_layers) blocks.
//  * hold: no choice of its own: the elements that are exactly zero in the weights when it
//    runs (a `kdtrain prune` result given as train.init_from) are pruned, `sparsity` unused.
//
// `targets` (tensor-name globs) restricts the criterion: unstructured criteria prune only
// the matched tensors, structured ones only the layers holding a matched tensor (the model
// is then non-uniform, which export --compact refuses).
#pragma once

#include <string>
#include <vector>

#include "trainer/model/llama.h"
#include "trainer/prune/mask.h"

namespace kd::prune {

enum class Criterion { magnitude_layer, magnitude_global, n_m, heads, neurons, layers, hold };
enum class DepthScore { cosine, skip_loss };

struct PruneTarget {
  Criterion criterion = Criterion::magnitude_global;
  double sparsity = 0.5;  // [0, 1); unused by n_m
  int n = 2, m = 4;       // n_m: keep at most n of every m
  std::vector<std::string> targets;     // globs over tensor names; empty: all prunable
  std::vector<double> block_importance;  // layers: one score per block, the lowest pruned first
};

// Throws InputError naming `where` (the config key) for a sparsity outside [0, 1), n/m out
// of range, m not dividing a prunable tensor's input dimension, or a target glob that
// matches nothing, an unprunable tensor, or a tensor without the criterion's structure.
void check_target(const PruneTarget& t, const ModelSpec& spec, const std::string& where);

// The prunable tensors the target's globs select (all of them without globs).
std::vector<const TensorInfo*> selected_tensors(const PruneTarget& t, const ParamTable& table);

// Every element of block l's seven linear layers (q/k/v/o_proj, gate/up/down_proj).
template <class F>
void for_block_linears(const LlamaLayout& lay, std::size_t l, F&& f) {
  const ModelSpec& s = lay.spec();
  const auto& L = lay.layers()[l];
  const std::size_t d = s.d_model;
  const std::size_t spans[][2] = {{L.wqkv, (std::size_t(s.q_dim()) + 2 * std::size_t(s.kv_dim())) * d},
                                  {L.wo, d * std::size_t(s.q_dim())},
                                  {L.wgu, 2 * std::size_t(s.d_ff) * d},
                                  {L.wdown, d * std::size_t(s.d_ff)}};
  for (const auto& [begin, n] : spans) {
    for (std::size_t i = begin; i < begin + n; ++i) f(i);
  }
}

Mask prune(const PruneTarget& t, const LlamaLayout& layout, const ParamTable& table, const float* weights,
           const Mask& current, const std::string& where);

}  // namespace kd::prune
