#include "trainer/eval/generator.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "base/errors.h"

namespace kd {

Generator::Generator(const LlamaLayout& model, int context, int threads, LinearHook<float>* hook)
    : model_(model), hook_(hook), context_(context) {
  act_.build(model.spec(), 1, context, threads, {});
  window_.resize(context);
  logits_.resize(model.spec().vocab);
}

std::vector<std::int32_t> Generator::generate(const float* p, const std::vector<std::int32_t>& prompt,
                                              const SamplingSpec& s) {
  const int v = model_.spec().vocab, d = model_.spec().d_model;
  KD_CHECK_INPUT(!prompt.empty(), "generate: the prompt is empty");
  KD_CHECK_INPUT(int(prompt.size()) <= context_,
                 "generate: the prompt is {} tokens, longer than the model's context of {} tokens",
                 prompt.size(), context_);
  for (auto t : prompt) {
    KD_CHECK_INPUT(t >= 0 && t < v, "generate: prompt token {} is outside the vocabulary of {}", t, v);
  }
  std::vector<std::int32_t> seq = prompt, out;
  std::mt19937_64 rng(s.seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  for (int n = 0; n < s.max_new_tokens; ++n) {
    // Causal attention: positions after the last real token do not change its output, so
    // the window is padded to the fixed context the activations were built for.
    const int len = std::min<int>(int(seq.size()), context_);
    std::copy(seq.end() - len, seq.end(), window_.begin());
    std::fill(window_.begin() + len, window_.end(), 0);
    llama_forward_frozen<float>(model_, p, window_.data(), act_, hook_);
    head_forward_frozen<float>(model_, p, logits_.data(), act_.final_norm + std::size_t(len - 1) * d, 1, hook_);
    int next = 0;
    if (s.temperature <= 0) {
      next = int(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
    } else {
      cand_.clear();
      for (int i = 0; i < v; ++i) cand_.emplace_back(float(logits_[i] / s.temperature), i);
      std::sort(cand_.begin(), cand_.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      if (s.top_k > 0 && s.top_k < v) cand_.resize(s.top_k);
      const double mx = cand_.front().first;
      double z = 0;
      for (auto& c : cand_) z += std::exp(double(c.first) - mx);
      // nucleus: the smallest prefix whose probability reaches top_p
      double cum = 0;
      std::size_t keep = cand_.size();
      for (std::size_t i = 0; i < cand_.size(); ++i) {
        cum += std::exp(double(cand_[i].first) - mx) / z;
        if (cum >= s.top_p) {
          keep = i + 1;
          break;
        }
      }
      cand_.resize(keep);
      double zk = 0;
      for (auto& c : cand_) zk += std::exp(double(c.first) - mx);
      double u = uni(rng) * zk;
      next = cand_.back().second;
      for (auto& c : cand_) {
        u -= std::exp(double(c.first) - mx);
        if (u <= 0) {
          next = c.second;
          break;
        }
      }
    }
    out.push_back(next);
    seq.push_back(next);
    if (next == s.stop_token) break;
  }
  return out;
}

}  // namespace kd
