// Synthetic token streams with known structure, for tests, the bench and the smallest
// demo: uniform random tokens, a fixed random Markov chain (whose true next-token
// distribution a teacher can know better than one sampled label shows), and copying.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "data/batch_source.h"

namespace kd::data {

enum class SyntheticKind { random, markov, copy };

class SyntheticTokens : public BatchSource {
 public:
  // chain_seed fixes the task (the Markov transition table); stream_seed the samples.
  SyntheticTokens(SyntheticKind kind, int vocab, int support, std::uint64_t chain_seed,
                  std::uint64_t stream_seed);
  void next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) override;
  std::int64_t position() const override { return drawn_; }
  // Replays the stream from its start (a synthetic stream has no random access).
  void seek(std::int64_t sequences, int seq) override;
  std::uint64_t rng_fingerprint() const override;  // a hash of the generator's whole state

  // Markov only: the next-token distribution of `state` (vocab entries) and the chain's
  // entropy rate in nats under its stationary distribution — the lowest possible CE.
  std::vector<double> transition(int state) const;
  double entropy_rate() const;

 private:
  int sample_next(int state);
  SyntheticKind kind_;
  int vocab_;
  // sparse chain: `support` successors per state (vocab² dense would not fit large vocabs)
  std::vector<std::vector<int>> succ_;
  std::vector<std::vector<double>> prob_;
  std::vector<std::discrete_distribution<int>> next_;
  std::mt19937_64 rng_;
  std::uint64_t stream_seed_;
  std::int64_t drawn_ = 0;
  std::vector<std::int32_t> seq_buf_;
};

}  // namespace kd::data
