// Autoregressive sampling from a model: temperature, top-k and nucleus (top-p) sampling
// with a seeded generator, so the same seed gives the same text.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/model/llama.h"

namespace kd {

struct SamplingSpec {
  int max_new_tokens = 128;
  double temperature = 0.8;  // 0 = greedy
  int top_k = 40;            // 0 = off
  double top_p = 0.95;       // 1 = off
  std::uint64_t seed = 1;
  int stop_token = -1;       // stop after emitting this id (e.g. end-of-text); -1 = never
};

class Generator {
 public:
  // context: the longest sequence the model is run on (the training seq_len).
  // hook (nullable): the model's linear layers run through it (quantized inference).
  Generator(const LlamaLayout& model, int context, int threads, LinearHook<float>* hook = nullptr);
  // Returns the new tokens only. A prompt longer than the context is an InputError.
  std::vector<std::int32_t> generate(const float* params, const std::vector<std::int32_t>& prompt,
                                     const SamplingSpec& s);

 private:
  const LlamaLayout& model_;
  LinearHook<float>* hook_;
  int context_;
  FrozenActivations<float> act_;
  std::vector<std::int32_t> window_;
  std::vector<float> logits_;
  std::vector<std::pair<float, int>> cand_;
};

}  // namespace kd
