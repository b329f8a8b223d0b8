// Picking the next token from logits: greedy, or temperature sampling restricted to the top
// k and then to the nucleus (the smallest prefix of the sorted candidates whose probability
// reaches top_p), with a per-sequence random stream so that a sequence's samples depend on
// its seed alone, not on the batch it is decoded in.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace kd {

struct SamplingSpec {
  int max_new_tokens = 128;
  double temperature = 0.8;  // 0 = greedy
  int top_k = 40;            // 0 = off
  double top_p = 0.95;       // 1 = off
  std::uint64_t seed = 1;
  int stop_token = -1;       // stop after emitting this id (e.g. end-of-text); -1 = never
};

// The random stream of sequence `index` under `seed` (splitmix64 of both).
std::mt19937_64 sequence_stream(std::uint64_t seed, std::uint64_t index);

// The next token from logits[0..vocab). cand: scratch (kept between calls to save allocations).
int sample_token(const float* logits, int vocab, const SamplingSpec& s, std::mt19937_64& rng,
                 std::vector<std::pair<float, int>>& cand);

}  // namespace kd
