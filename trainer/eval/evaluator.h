// Validation metrics of a model (forward only, no gradients): loss in nats per token,
// perplexity, bits per byte (comparable across tokenizers: the nats of the scored tokens ÷
// the bytes of text they stand for ÷ ln 2), and, given a teacher, top-1 agreement with it
// and KL(teacher ‖ model) at T = 1.
//
// Windowing (docs/data.md, "Evaluation"): the shard is cut from its start into windows of
// seq_len + 1 tokens with stride seq_len (each window's last token is the next one's first),
// and every position of a window is scored once, predicting the next token with the window's
// earlier tokens as context: up to seq_len tokens of context, none across windows. A token
// limit is rounded down to whole windows (at least one).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "data/batch_source.h"
#include "data/shards/token_shard.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "trainer/model/llama.h"

namespace kd {

struct EvalResult {
  double loss = 0;  // mean CE, nats per scored token
  double ppl = 0;
  // The scored tokens' own bytes (set_tokenizer) or, without a tokenizer, the shard's average
  // bytes per token times the tokens scored (an estimate: bpb_exact false); NaN when neither
  // is known.
  double bpb = std::numeric_limits<double>::quiet_NaN();
  bool bpb_exact = false;
  std::uint64_t bytes = 0;  // the bytes of text the scored tokens stand for (with a tokenizer)
  double agreement = std::numeric_limits<double>::quiet_NaN();  // top-1 argmax equal to the teacher's
  double kl = std::numeric_limits<double>::quiet_NaN();         // mean KL(teacher ‖ model), T = 1
  std::int64_t tokens = 0;  // scored tokens
};

class Evaluator {
 public:
  // hook (nullable): the model's linear layers run through it (fake-quantized or integer
  // inference); the teacher runs in float.
  Evaluator(const LlamaLayout& model, const LlamaLayout* teacher, int batch, int seq, int threads,
            LinearHook<float>* hook = nullptr);
  // Non-overlapping windows from the start of the shard, up to max_tokens scored tokens
  // (0 = the whole shard). Deterministic.
  EvalResult run(const float* params, const float* teacher_params, const data::TokenShard& shard,
                 std::int64_t max_tokens);
  // `batches` batches drawn from a stream (synthetic tasks); bits per byte stay NaN.
  EvalResult run(const float* params, const float* teacher_params, data::BatchSource& source, int batches);
  // The tokenizer of the data: bits per byte then count the bytes of each scored token's text
  // (special tokens: none). Without one, they come from the shard's average bytes per token.
  void set_tokenizer(const data::BpeTokenizer& tok);
  // The teacher's linear layers run through this (a bf16 teacher); null: float GEMMs.
  void set_teacher_hook(LinearHook<float>* h) { teacher_hook_ = h; }

 private:
  void reset();
  void score_batch(const float* params, const float* teacher_params);
  EvalResult result(std::uint64_t text_bytes, std::size_t shard_tokens) const;
  const LlamaLayout& model_;
  const LlamaLayout* teacher_;
  LinearHook<float>* hook_;
  LinearHook<float>* teacher_hook_ = nullptr;
  int batch_, seq_;
  FrozenActivations<float> act_, tact_;
  std::vector<float> zs_, zt_, scratch_;
  std::vector<std::int32_t> tokens_, labels_;
  std::vector<kern::LossRow> rows_;
  double nats_ = 0, kl_ = 0;
  std::int64_t scored_ = 0, agree_ = 0;
  std::vector<std::uint32_t> token_bytes_;  // per id; empty: no tokenizer
  std::uint64_t bytes_ = 0;                 // of the scored tokens
};

}  // namespace kd
