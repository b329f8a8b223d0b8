// Generation on the KV cache (trainer/eval/generator.h): greedy tokens equal to decoding by
// the full forward (the whole sequence again for every token), a sequence's samples the
// same alone or in a batch with other prompts (its stream is keyed by seed and index), the
// stop reasons (stop token, max_new_tokens, the context's end: no silent sliding window),
// and bad prompts refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "base/errors.h"
#include "trainer/eval/generator.h"
#include "tests/support/random_model.h"
#include "trainer/model/llama.h"

namespace {

using namespace kd;

constexpr int kThreads = 2;

struct Model : kdtest::RandomModel {
  Model() : RandomModel(40, 9, 0.3) {}
};

// Greedy decoding by the full forward over the whole sequence, every token.
std::vector<std::int32_t> greedy_by_full_forward(const Model& m, std::vector<std::int32_t> seq, int n_new) {
  const int v = m.spec.vocab;
  std::vector<std::int32_t> out;
  for (int n = 0; n < n_new; ++n) {
    FrozenActivations<float> a;
    a.build(m.spec, 1, int(seq.size()), kThreads, {});
    llama_forward_frozen<float>(*m.lay, m.params.data(), seq.data(), a);
    std::vector<float> logits(static_cast<std::size_t>(v));
    head_forward_frozen<float>(*m.lay, m.params.data(), logits.data(),
                               a.final_norm + (seq.size() - 1) * std::size_t(m.spec.d_model), 1);
    const int t = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(t);
    seq.push_back(t);
  }
  return out;
}

TEST(Generator, GreedyTokensAreTheFullForwards) {
  Model m;
  Generator g(*m.lay, 64, 3, kThreads);
  SamplingSpec s;
  s.temperature = 0;
  s.max_new_tokens = 20;
  const std::vector<std::vector<std::int32_t>> prompts{{1, 2, 3, 4, 5}, {7}, {9, 8, 7, 6, 5, 4, 3, 2, 1}};
  const auto out = g.generate(m.params.data(), prompts, s);
  ASSERT_EQ(out.size(), 3u);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(out[i].tokens, greedy_by_full_forward(m, prompts[i], 20)) << "prompt " << i;
    EXPECT_EQ(out[i].stop, StopReason::length);
  }
  EXPECT_EQ(g.stats().prefill_tokens, 15);
  EXPECT_EQ(g.stats().decode_tokens, 3 * 19);  // the last sampled token is not fed back
}

TEST(Generator, WithoutTheCacheItSamplesTheSameTokens) {
  Model m;
  SamplingSpec s;
  s.temperature = 0.9;
  s.max_new_tokens = 15;
  s.seed = 5;
  Generator cached(*m.lay, 24, 2, kThreads), recompute(*m.lay, 24, 2, kThreads, nullptr, true);
  const std::vector<std::vector<std::int32_t>> prompts{{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}};
  const auto a = cached.generate(m.params.data(), prompts, s), b = recompute.generate(m.params.data(), prompts, s);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens) << "sequence " << i;
    EXPECT_EQ(a[i].stop, b[i].stop) << "sequence " << i;
  }
  EXPECT_EQ(a[1].stop, StopReason::context);
}

TEST(Generator, ASequencesSamplesDependOnItsSeedAndIndexNotTheBatch) {
  Model m;
  SamplingSpec s;
  s.temperature = 1.0;
  s.top_k = 0;
  s.top_p = 1.0;
  s.max_new_tokens = 25;
  s.seed = 77;
  Generator batch(*m.lay, 64, 3, kThreads), alone(*m.lay, 64, 1, kThreads);
  const auto all = batch.generate(m.params.data(), {{1, 2}, {3, 4, 5, 6}, {7}}, s);
  const auto second = alone.generate(m.params.data(), {{3, 4, 5, 6}}, s, 1);
  EXPECT_EQ(all[1].tokens, second[0].tokens) << "sequence 1 sampled differently in a batch";
  const auto again = batch.generate(m.params.data(), {{1, 2}, {3, 4, 5, 6}, {7}}, s);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(all[i].tokens, again[i].tokens) << "the same seed, other samples";
  s.seed = 78;
  const auto other = batch.generate(m.params.data(), {{1, 2}, {3, 4, 5, 6}, {7}}, s);
  EXPECT_NE(all[0].tokens, other[0].tokens) << "another seed, the same samples";
  // samples, not the argmax: temperature 1 over 40 tokens leaves the greedy path
  s.temperature = 0;
  const auto greedy = batch.generate(m.params.data(), {{1, 2}, {3, 4, 5, 6}, {7}}, s);
  EXPECT_NE(all[0].tokens, greedy[0].tokens);
}

TEST(Generator, StopsAtTheStopTokenTheLengthAndTheContextSayingWhich) {
  Model m;
  SamplingSpec s;
  s.temperature = 0;
  s.max_new_tokens = 100;
  Generator g(*m.lay, 12, 2, kThreads);
  // the context: 12 positions, a prompt of 5 → 8 new tokens (the last one read at no position)
  auto out = g.generate(m.params.data(), {{1, 2, 3, 4, 5}, {6}}, s);
  EXPECT_EQ(out[0].stop, StopReason::context);
  EXPECT_EQ(out[0].tokens.size(), 8u);
  EXPECT_EQ(out[1].tokens.size(), 12u);
  EXPECT_EQ(out[0].tokens, greedy_by_full_forward(m, {1, 2, 3, 4, 5}, 8));
  // the stop token: the greedy path's third token
  s.stop_token = out[1].tokens[2];
  out = g.generate(m.params.data(), {{6}}, s);
  EXPECT_EQ(out[0].stop, StopReason::stop_token);
  EXPECT_EQ(out[0].tokens.size(), 3u);
  s.stop_token = -1;
  s.max_new_tokens = 4;
  out = g.generate(m.params.data(), {{6}}, s);
  EXPECT_EQ(out[0].stop, StopReason::length);
  EXPECT_EQ(out[0].tokens.size(), 4u);
}

// sample_token draws from softmax(logits / T), restricted to the top k and the nucleus:
// 40,000 draws per case, each frequency within 4.5 standard deviations of its probability.
TEST(Sampling, FrequenciesFollowTheTemperedDistribution) {
  const std::vector<float> logits{1.0f, 2.5f, -0.5f, 2.0f, 0.0f};
  struct Case {
    double t;
    int k;
    double p;
  };
  for (const Case c : {Case{0.7, 0, 1.0}, Case{1.3, 0, 1.0}, Case{1.0, 3, 1.0}, Case{1.0, 0, 0.8}}) {
    // the reference: softmax at T, the top k kept, then the smallest prefix reaching top_p
    std::vector<std::pair<double, int>> q;
    for (int i = 0; i < 5; ++i) q.emplace_back(std::exp(logits[std::size_t(i)] / c.t), i);
    std::sort(q.begin(), q.end(), [](auto& a, auto& b) { return a.first > b.first; });
    if (c.k > 0) q.resize(std::size_t(c.k));
    double z = 0, cum = 0;
    for (auto& e : q) z += e.first;
    std::size_t keep = q.size();
    for (std::size_t i = 0; i < q.size(); ++i) {
      cum += q[i].first / z;
      if (cum >= c.p) {
        keep = i + 1;
        break;
      }
    }
    q.resize(keep);
    double zk = 0;
    for (auto& e : q) zk += e.first;
    std::vector<double> want(5, 0.0);
    for (auto& e : q) want[std::size_t(e.second)] = e.first / zk;
    SamplingSpec s;
    s.temperature = c.t;
    s.top_k = c.k;
    s.top_p = c.p;
    auto rng = sequence_stream(7, 0);
    std::vector<std::pair<float, int>> cand;
    std::vector<int> count(5, 0);
    const int n = 40000;
    for (int i = 0; i < n; ++i) ++count[std::size_t(sample_token(logits.data(), 5, s, rng, cand))];
    for (int i = 0; i < 5; ++i) {
      const double f = double(count[std::size_t(i)]) / n, sd = std::sqrt(want[std::size_t(i)] * (1 - want[std::size_t(i)]) / n);
      EXPECT_NEAR(f, want[std::size_t(i)], 4.5 * sd + 1e-12) << "T " << c.t << " k " << c.k << " p " << c.p << " token " << i;
    }
  }
}

TEST(Generator, BadPromptsAreInputErrors) {
  Model m;
  Generator g(*m.lay, 8, 2, kThreads);
  SamplingSpec s;
  auto msg = [&](const std::vector<std::vector<std::int32_t>>& p) {
    try {
      g.generate(m.params.data(), p, s);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg({{1, 2, 3, 4, 5, 6, 7, 8, 9}}).find("longer than the model's context of 8"), std::string::npos);
  EXPECT_NE(msg({{}}).find("prompt 0 is empty"), std::string::npos);
  EXPECT_NE(msg({{1, 40}}).find("outside the vocabulary of 40"), std::string::npos);
  EXPECT_NE(msg({{1}, {2}, {3}}).find("3 prompts for a generator of batch 2"), std::string::npos);
}

}  // namespace
