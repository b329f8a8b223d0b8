// A tiny Llama with random weights (2 blocks, d_model 32, 4 query heads on 2 KV heads, d_ff
// 64) for the decoding tests: `std` large enough that attention is far from uniform and the
// logits are not flat.
#pragma once

#include <memory>
#include <vector>

#include "trainer/model/llama.h"

namespace kdtest {

struct RandomModel {
  kd::ModelSpec spec;
  kd::ParamTable table;
  std::unique_ptr<kd::LlamaLayout> lay;
  std::vector<float> params;
  RandomModel(int vocab, std::uint64_t seed, double std) {
    spec.vocab = vocab;
    spec.d_model = 32;
    spec.n_layers = 2;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.d_ff = 64;
    lay = std::make_unique<kd::LlamaLayout>(spec, table);
    params.assign(table.total(), 0.f);
    lay->init(params.data(), seed, std);
  }
};

}  // namespace kdtest
