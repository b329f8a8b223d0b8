// Validation metrics of a model (forward only, no gradients): loss in nats per token,
// perplexity, bits per byte (comparable across tokenizers: nats × tokens ÷ bytes ÷ ln 2),
// and, given a teacher, top-1 agreement with it and KL(teacher ‖ model) at T = 1.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "data/batch_source.h"
#include "data/shards/token_shard.h"
#include "trainer/model/llama.h"

namespace kd {

struct EvalResult {
  double loss = 0;  // mean CE, nats per scored token
  double ppl = 0;
  double bpb = std::numeric_limits<double>::quiet_NaN();  // NaN when the shard's text size is unknown
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
};

}  // namespace kd
