// How much each transformer block matters, measured on data, for depth pruning (the
// `layers` criterion prunes the least important blocks first).
//  * cosine: 1 − the mean cosine similarity of a block's input and output hidden states
//    (ShortGPT's Block Influence; Minitron ranks depth by it). A block that barely turns
//    the residual stream scores near 0.
//  * skip_loss: the mean next-token cross-entropy with the block skipped (its linear layers
//    zero, so it is the identity) minus the loss of the whole model.
// The same batches are used on every call (the source is rewound to its start), so a
// resumed run scores exactly as an uninterrupted one.
#pragma once

#include <vector>

#include "data/batch_source.h"
#include "trainer/model/llama.h"
#include "trainer/prune/criteria.h"

namespace kd::prune {

struct ScoringData {
  data::BatchSource* source = nullptr;
  int batches = 4, batch = 8, seq = 128, threads = 1;
};

std::vector<double> block_importance(DepthScore score, const LlamaLayout& lay, const float* params,
                                     std::size_t n_params, const ScoringData& data);

}  // namespace kd::prune
