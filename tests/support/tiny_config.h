// Small training configs for tests, written as YAML so they go through the same loader
// and validation as a user's file.
#pragma once

#include <string>
#include <vector>

#include "trainer/config/config.h"

namespace kdtest {

// A Markov-chain task (vocab 24, 3 successors per state), a 2-layer GQA student and a
// 3-layer teacher. `extra` is appended (later keys override via --set style overrides).
inline kd::Config tiny_config(const std::vector<std::string>& overrides = {}) {
  const std::string yaml = R"(
teacher: {vocab: 24, d_model: 48, n_layers: 3, n_heads: 4, n_kv_heads: 2, d_ff: 96}
model: {vocab: 24, d_model: 24, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 48, tie_embeddings: true}
distill: {alpha: 0.2, temperature: 1.0, divergence: forward_kl}
optim: {lr: 3.0e-3, beta2: 0.99, weight_decay: 0.0, grad_clip: 1.0, warmup_steps: 5, schedule: constant}
train: {steps: 200, batch_size: 8, seq_len: 16, seed: 11, threads: 2}
data: {kind: markov, markov_support: 3}
)";
  return kd::load_config_text(yaml, "tiny_config", overrides);
}

}  // namespace kdtest
