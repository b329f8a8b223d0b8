#include "trainer/eval/sampling.h"

#include <algorithm>
#include <cmath>

namespace kd {

namespace {
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

std::mt19937_64 sequence_stream(std::uint64_t seed, std::uint64_t index) {
  return std::mt19937_64(splitmix64(splitmix64(seed) ^ index));
}

int sample_token(const float* logits, int v, const SamplingSpec& s, std::mt19937_64& rng,
                 std::vector<std::pair<float, int>>& cand) {
  if (s.temperature <= 0) return int(std::max_element(logits, logits + v) - logits);
  if ((s.top_k <= 0 || s.top_k >= v) && s.top_p >= 1.0) {
    // the whole distribution: no order needed, one pass in vocabulary order (a full sort of
    // the vocabulary per token cost more than the decoding step of a small model)
    const double it = 1.0 / s.temperature;
    double mx = -INFINITY;
    for (int i = 0; i < v; ++i) mx = std::max(mx, double(logits[i]) * it);
    double z = 0;
    for (int i = 0; i < v; ++i) z += std::exp(double(logits[i]) * it - mx);
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng) * z;
    for (int i = 0; i < v; ++i) {
      u -= std::exp(double(logits[i]) * it - mx);
      if (u <= 0) return i;
    }
    return int(std::max_element(logits, logits + v) - logits);  // rounding left u > 0: the mode
  }
  cand.clear();
  for (int i = 0; i < v; ++i) cand.emplace_back(float(logits[i] / s.temperature), i);
  // the top k first (a partial sort: the vocabulary is large, k small), then in order
  const std::size_t k = s.top_k > 0 && s.top_k < v ? std::size_t(s.top_k) : cand.size();
  auto before = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::partial_sort(cand.begin(), cand.begin() + std::ptrdiff_t(k), cand.end(), before);
  cand.resize(k);
  const double mx = cand.front().first;
  double z = 0;
  for (const auto& c : cand) z += std::exp(double(c.first) - mx);
  // nucleus: the smallest prefix whose probability reaches top_p
  double cum = 0;
  std::size_t keep = cand.size();
  for (std::size_t i = 0; i < cand.size(); ++i) {
    cum += std::exp(double(cand[i].first) - mx) / z;
    if (cum >= s.top_p) {
      keep = i + 1;
      break;
    }
  }
  cand.resize(keep);
  double zk = 0;
  for (const auto& c : cand) zk += std::exp(double(c.first) - mx);
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng) * zk;
  for (const auto& c : cand) {
    u -= std::exp(double(c.first) - mx);
    if (u <= 0) return c.second;
  }
  return cand.back().second;
}

}  // namespace kd
