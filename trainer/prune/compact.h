// Compaction of a structured-pruned model: the blocks, KV groups and FFN neurons its mask
// removed are cut out, so the model is physically smaller (n_layers, n_heads, n_kv_heads
// and d_ff shrink; head_dim is kept and written to the config) and runs faster. The result is
// a plain Llama of the new shape: the same logits as the masked model.
#pragma once

#include <memory>
#include <vector>

#include "trainer/model/llama.h"
#include "trainer/prune/mask.h"

namespace kd::prune {

struct Compacted {
  ModelSpec spec;
  ParamTable table;
  std::unique_ptr<LlamaLayout> layout;
  std::vector<float> params;
  int removed_layers = 0;
  int removed_kv_groups = 0;  // per layer
  int removed_neurons = 0;    // per layer
};

// What a mask removed as whole structures: the blocks left, and per block the KV groups and
// FFN neurons left. uniform: every block left keeps as many of each (a standard Llama).
struct Structure {
  std::vector<std::size_t> kept_layers;
  std::vector<std::vector<int>> kept_groups, kept_neurons;  // indexed by original layer
  bool uniform = true;
};
Structure structure_of(const LlamaLayout& layout, const Mask& mask);

// Throws InputError when the removed structures differ between layers (a non-uniform model
// is no standard Llama config) or when every KV group or neuron of a kept layer is gone.
Compacted compact(const LlamaLayout& layout, const float* weights, const Mask& mask);

// The model that keeps exactly `kept` (uniform: the same number of groups and neurons in
// every kept layer; the caller checks): also a tensor-parallel shard of a teacher.
Compacted compact_structure(const LlamaLayout& layout, const float* weights, const Structure& kept);

}  // namespace kd::prune
