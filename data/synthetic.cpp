#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>

namespace kd::data {

SyntheticTokens::SyntheticTokens(SyntheticKind kind, int vocab, int support,
                                 std::uint64_t chain_seed, std::uint64_t stream_seed)
    : kind_(kind), vocab_(vocab), rng_(stream_seed), stream_seed_(stream_seed) {
  if (kind_ != SyntheticKind::markov) return;
  std::mt19937_64 crng(chain_seed);
  std::vector<int> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::uniform_real_distribution<double> u(0.05, 1.0);
  for (int s = 0; s < vocab; ++s) {
    std::shuffle(ids.begin(), ids.end(), crng);
    succ_.emplace_back(ids.begin(), ids.begin() + support);
    std::vector<double> p(support);
    double total = 0;
    for (double& x : p) total += (x = u(crng));
    for (double& x : p) x /= total;
    next_.emplace_back(p.begin(), p.end());
    prob_.push_back(std::move(p));
  }
}

int SyntheticTokens::sample_next(int state) { return succ_[state][next_[state](rng_)]; }

std::vector<double> SyntheticTokens::transition(int state) const {
  std::vector<double> dense(vocab_, 0.0);
  for (std::size_t k = 0; k < succ_[state].size(); ++k) dense[succ_[state][k]] = prob_[state][k];
  return dense;
}

void SyntheticTokens::next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) {
  seq_buf_.resize(std::size_t(seq) + 1);
  drawn_ += batch;
  std::uniform_int_distribution<int> uni(0, vocab_ - 1);
  for (int b = 0; b < batch; ++b) {
    std::int32_t* x = seq_buf_.data();
    std::int32_t* lab = labels + std::size_t(b) * seq;
    switch (kind_) {
      case SyntheticKind::random:
        for (int t = 0; t <= seq; ++t) x[t] = uni(rng_);
        break;
      case SyntheticKind::markov:
        x[0] = uni(rng_);
        for (int t = 1; t <= seq; ++t) x[t] = sample_next(x[t - 1]);
        break;
      case SyntheticKind::copy: {
        const int half = (seq + 1) / 2;
        for (int t = 0; t < half; ++t) x[t] = uni(rng_);
        for (int t = half; t <= seq; ++t) x[t] = x[t - half];
        break;
      }
    }
    std::copy_n(x, seq, tokens + std::size_t(b) * seq);
    for (int t = 0; t < seq; ++t) lab[t] = x[t + 1];
    if (kind_ == SyntheticKind::copy) {
      // only the repeated half is predictable; the random half carries no target
      const int half = (seq + 1) / 2;
      for (int t = 0; t + 1 < half; ++t) lab[t] = -1;
    }
  }
}

void SyntheticTokens::seek(std::int64_t sequences, int seq) {
  rng_.seed(stream_seed_);
  drawn_ = 0;
  std::vector<std::int32_t> t(seq), l(seq);
  for (std::int64_t i = 0; i < sequences; ++i) next(t.data(), l.data(), 1, seq);
}

std::uint64_t SyntheticTokens::rng_fingerprint() const {
  std::ostringstream state;
  state << rng_;
  return std::hash<std::string>{}(state.str()) ^ std::uint64_t(drawn_);
}

double SyntheticTokens::entropy_rate() const {
  if (kind_ != SyntheticKind::markov) return std::log(double(vocab_));
  // stationary distribution by power iteration
  std::vector<double> pi(vocab_, 1.0 / vocab_), nxt(vocab_);
  for (int it = 0; it < 2000; ++it) {
    std::fill(nxt.begin(), nxt.end(), 0.0);
    for (int s = 0; s < vocab_; ++s) {
      for (std::size_t k = 0; k < succ_[s].size(); ++k) nxt[succ_[s][k]] += pi[s] * prob_[s][k];
    }
    pi.swap(nxt);
  }
  double h = 0;
  for (int s = 0; s < vocab_; ++s) {
    for (double p : prob_[s]) h -= pi[s] * p * std::log(p);
  }
  return h;
}

}  // namespace kd::data
