// On-policy rows of a distillation step (distill.on_policy, GKD): which sequences of the data
// stream the student generates, and their rewrite. A sampled sequence keeps its first
// prompt_tokens tokens; the student (the step's weights: fake quantization and masks applied,
// through the step's hook) samples up to max_new_tokens after them on the KV cache; the rest
// of the row is padding. Its labels become the sampled tokens at the positions that predict
// them (kd_only = 1 there: the divergence alone) and -1 elsewhere, so the teacher scores
// prompt + sample and only the sampled positions count.
//
// Everything is keyed by the global sequence index g of the data stream (the same on any
// number of ranks): sequence g is sampled when ⌊(g+1)λ⌋ > ⌊gλ⌋ (a share λ, evenly spread
// over the stream and its data-parallel slices), and samples from the stream
// sequence_stream(mix(train.seed, step), g).
#pragma once

#include <cstdint>
#include <memory>

#include "trainer/distill/distill_section.h"
#include "trainer/eval/generator.h"
#include "trainer/model/llama.h"

namespace kd {

struct RolloutStats {
  std::int64_t sequences = 0;  // rewritten rows
  std::int64_t tokens = 0;     // sampled tokens
  double seconds = 0;
};

class OnPolicyRollouts {
 public:
  // rows: this rank's sequences per micro-batch; seq: train.seq_len; eot: the padding and
  // stop token (-1: none, padding 0).
  OnPolicyRollouts(const LlamaLayout& student, const OnPolicySection& spec, int rows, int seq, int threads,
                   std::uint64_t seed, int eot);
  static bool sampled(std::int64_t global_index, double fraction);
  void set_end_of_text(int eot) { eot_ = eot; }
  // The KV cache and activations a run with on-policy rows holds (memory estimate).
  static std::size_t bytes(const ModelSpec& s, const OnPolicySection& spec, int rows, int seq, int threads);

  // Rewrites the sampled rows of one micro-batch of `rows` sequences, the first of global
  // index `first`: tokens and labels (rows, seq) in place, kd_only (rows, seq) filled.
  // params and hook: the student as the step's forward reads it.
  RolloutStats apply(const float* params, LinearHook<float>* hook, std::int64_t step, std::int64_t first,
                     std::int32_t* tokens, std::int32_t* labels, std::uint8_t* kd_only);

 private:
  const OnPolicySection spec_;
  int rows_, seq_, eot_;
  std::uint64_t seed_;
  std::unique_ptr<Generator> gen_;
  LinearHook<float>* bound_hook_ = nullptr;
  const LlamaLayout& student_;
  int threads_;
};

}  // namespace kd
