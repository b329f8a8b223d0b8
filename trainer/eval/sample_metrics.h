// What on-policy distillation is for, measured on the student's own text: on a fixed set of
// evaluation prompts (windows of the validation shard, cut after their last end of text)
// the student samples continuations at temperature 1 (fixed seeds), and
//  * teacher_nll: the teacher's mean negative log-likelihood (nats) of the sampled tokens —
//    how plausible the student's text is to the teacher (lower is better);
//  * entropy: the student's mean entropy (nats) at the sampled positions — a collapsed,
//    repetitive student scores a low teacher NLL with a low entropy;
//  * distinct2: distinct bigrams over all bigrams of the samples — repetition shows as a low
//    value, so degenerate text cannot look good on the NLL alone.
// Logged at every evaluation of a run with its teacher in process, printed by `eval` with a
// teacher.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "data/shards/token_shard.h"
#include "trainer/eval/generator.h"
#include "trainer/model/llama.h"

namespace kd {

struct SampleQuality {
  double teacher_nll = std::numeric_limits<double>::quiet_NaN();
  double entropy = std::numeric_limits<double>::quiet_NaN();
  double distinct2 = std::numeric_limits<double>::quiet_NaN();
  std::int64_t tokens = 0;  // sampled tokens scored
};

struct SampleMetricsSpec {
  int prompts = 16;
  int prompt_tokens = 32;
  int new_tokens = 64;
};

// `prompts` prompts of prompt_tokens, new_tokens new ones (a run's distill.sample_prompts,
// on_policy.prompt_tokens and max_new_tokens), fitted into the model's context seq_len.
SampleMetricsSpec fit_sample_spec(int prompts, int prompt_tokens, int new_tokens, int seq_len);

// The prompt of a window: the tokens after its last end of text (a new document's start,
// [eot], when it ends with one). Shared with generate-data.
std::vector<std::int32_t> document_prompt(const std::int32_t* window, int n, int eot);

class SampleMetrics {
 public:
  // shard: the prompts' (validation) shard; eot: the stop token (-1: none). InputError when
  // the shard holds fewer than one prompt window.
  SampleMetrics(const LlamaLayout& student, const LlamaLayout& teacher, const data::TokenShard& shard,
                const SampleMetricsSpec& spec, int eot, int threads);
  SampleQuality run(const float* student_params, LinearHook<float>* student_hook, const float* teacher_params,
                    LinearHook<float>* teacher_hook);

 private:
  const LlamaLayout& student_;
  const LlamaLayout& teacher_;
  SampleMetricsSpec spec_;
  int eot_;
  std::vector<std::vector<std::int32_t>> prompts_;
  Generator gen_;
  FrozenActivations<float> sact_, tact_;  // every prompt + sample at once, padded
  std::vector<float> logits_;
};

}  // namespace kd
