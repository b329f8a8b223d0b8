// Autoregressive generation on the KV cache (trainer/model/kv_decoder.h): the prompts of a
// batch are prefilled together, then every unfinished sequence gets one token per decoding
// step, each sampled from its own seeded stream (trainer/eval/sampling.h), so a sequence's
// text depends on its prompt, index and seed, not on the batch around it. A sequence stops
// at its stop token, at max_new_tokens, or when it fills the context (the model's
// positions): generation never slides a window over the context, it says it stopped there.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/eval/sampling.h"
#include "trainer/model/kv_decoder.h"
#include "trainer/model/llama.h"

namespace kd {

enum class StopReason { length, stop_token, context };
const char* stop_reason_name(StopReason r);

struct Generation {
  std::vector<std::int32_t> tokens;  // the new tokens only (the stop token included)
  StopReason stop = StopReason::length;
};

struct GenerationStats {
  std::int64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_s = 0, decode_s = 0;
};

class Generator {
 public:
  // context: positions per sequence (prompt + new tokens); batch: sequences at most per
  // generate(). hook (nullable): the model's linear layers run through it (quantized
  // inference, QAT's fake quantization).
  // recompute: no KV cache — every token runs the whole context again at batch 1, as the
  // generator did before the cache (the reference benches measure against: --no-kv-cache).
  Generator(const LlamaLayout& model, int context, int batch, int threads, LinearHook<float>* hook = nullptr,
            bool recompute = false);
  // What the generator allocates (KV cache and activations), for the memory check before it.
  static std::size_t bytes(const ModelSpec& s, int context, int batch, int threads);

  // One generation per prompt (at most `batch`); sequence i samples from
  // sequence_stream(s.seed, first_index + i). InputError naming the prompt: empty, longer
  // than the context, a token outside the vocabulary.
  std::vector<Generation> generate(const float* params, const std::vector<std::vector<std::int32_t>>& prompts,
                                   const SamplingSpec& s, std::uint64_t first_index = 0);
  // The same with each sequence's stream index given: sequence_stream(s.seed, stream_ids[i]).
  std::vector<Generation> generate(const float* params, const std::vector<std::vector<std::int32_t>>& prompts,
                                   const SamplingSpec& s, const std::vector<std::uint64_t>& stream_ids);
  const GenerationStats& stats() const { return stats_; }
  int context() const { return context_; }
  int batch() const { return batch_; }

 private:
  static int prefill_rows(int context, int batch);
  // the logits of position len-1 of `seq` by the full forward over the context (recompute)
  void recompute_logits(const float* params, const std::vector<std::int32_t>& seq, float* logits);
  const LlamaLayout& model_;
  LinearHook<float>* hook_;
  int context_, batch_;
  bool recompute_;
  KvDecoder dec_;
  FrozenActivations<float> full_;  // recompute: batch 1 × context
  std::vector<std::int32_t> window_;
  GenerationStats stats_;
  std::vector<float> logits_;
  std::vector<std::pair<float, int>> cand_;
};

}  // namespace kd
