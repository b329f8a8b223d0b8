#include "trainer/eval/sample_metrics.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "base/errors.h"

namespace kd {

SampleMetricsSpec fit_sample_spec(int prompts, int prompt_tokens, int new_tokens, int seq) {
  SampleMetricsSpec s;
  s.prompts = prompts;
  s.prompt_tokens = std::min(prompt_tokens, std::max(1, seq / 2));
  s.new_tokens = std::max(1, std::min(new_tokens, seq - s.prompt_tokens));
  return s;
}

std::vector<std::int32_t> document_prompt(const std::int32_t* window, int n, int eot) {
  int from = 0;
  for (int i = 0; i < n; ++i) {
    if (window[i] == eot) from = i + 1;
  }
  std::vector<std::int32_t> p(window + from, window + n);
  if (p.empty()) p.push_back(eot);
  return p;
}

SampleMetrics::SampleMetrics(const LlamaLayout& student, const LlamaLayout& teacher, const data::TokenShard& shard,
                             const SampleMetricsSpec& spec, int eot, int threads)
    : student_(student),
      teacher_(teacher),
      spec_(spec),
      eot_(eot),
      gen_(student, spec.prompt_tokens + spec.new_tokens, spec.prompts, threads) {
  const int p = spec.prompt_tokens;
  KD_CHECK_INPUT(shard.size() >= std::size_t(p) * spec.prompts,
                 "{}: {} tokens, fewer than {} evaluation prompts of {} tokens", shard.path(), shard.size(),
                 spec.prompts, p);
  // fixed prompts: evenly spaced windows over the shard
  const std::size_t stride = shard.size() / std::size_t(spec.prompts);
  std::vector<std::int32_t> w(static_cast<std::size_t>(p));
  for (int i = 0; i < spec.prompts; ++i) {
    shard.copy_range(std::size_t(i) * stride, w);
    prompts_.push_back(document_prompt(w.data(), p, eot));
  }
  const int len = spec.prompt_tokens + spec.new_tokens;
  sact_.build(student.spec(), spec.prompts, len, threads, {});
  tact_.build(teacher.spec(), spec.prompts, len, threads, {});
}

SampleQuality SampleMetrics::run(const float* sp, LinearHook<float>* shook, const float* tp, LinearHook<float>* thook) {
  SamplingSpec s;
  s.max_new_tokens = spec_.new_tokens;
  s.temperature = 1.0;
  s.top_k = 0;
  s.top_p = 1.0;
  s.seed = 0x5A3D1E;
  s.stop_token = eot_;
  const std::vector<Generation> gen = gen_.generate(sp, prompts_, s);
  const int n = spec_.prompts, len = spec_.prompt_tokens + spec_.new_tokens;
  std::vector<std::int32_t> tokens(std::size_t(n) * len, eot_ >= 0 ? eot_ : 0);
  std::set<std::pair<int, int>> bigrams;
  std::int64_t all_bigrams = 0;
  for (int i = 0; i < n; ++i) {
    const auto& pr = prompts_[std::size_t(i)];
    const auto& g = gen[std::size_t(i)].tokens;
    std::copy(pr.begin(), pr.end(), tokens.begin() + std::ptrdiff_t(i) * len);
    std::copy(g.begin(), g.end(), tokens.begin() + std::ptrdiff_t(i) * len + std::ptrdiff_t(pr.size()));
    for (std::size_t j = 1; j < g.size(); ++j) {
      bigrams.insert({g[j - 1], g[j]});
      ++all_bigrams;
    }
  }
  llama_forward_frozen<float>(student_, sp, tokens.data(), sact_, shook);
  llama_forward_frozen<float>(teacher_, tp, tokens.data(), tact_, thook);
  const int vs = student_.spec().vocab, vt = teacher_.spec().vocab, ds = student_.spec().d_model,
            dt = teacher_.spec().d_model;
  logits_.resize(std::size_t(spec_.new_tokens) * std::size_t(std::max(vs, vt)));
  SampleQuality q;
  double nll = 0, ent = 0;
  for (int i = 0; i < n; ++i) {
    const auto& g = gen[std::size_t(i)].tokens;
    const int m = int(g.size());
    if (m == 0) continue;
    // the m positions that predicted the samples, contiguous: one head GEMM per model
    const std::size_t row0 = std::size_t(i) * len + prompts_[std::size_t(i)].size() - 1;
    head_forward_frozen<float>(student_, sp, logits_.data(), sact_.final_norm + row0 * ds, m, shook);
    for (int j = 0; j < m; ++j) {
      if (g[std::size_t(j)] >= vt) continue;  // not scored (below)
      const float* z = logits_.data() + std::size_t(j) * vs;
      double mx = -INFINITY, sum = 0, e = 0;
      for (int k = 0; k < vs; ++k) mx = std::max(mx, double(z[k]));
      for (int k = 0; k < vs; ++k) sum += std::exp(double(z[k]) - mx);
      for (int k = 0; k < vs; ++k) {
        const double lp = double(z[k]) - mx - std::log(sum);
        e -= std::exp(lp) * lp;
      }
      ent += e;
    }
    head_forward_frozen<float>(teacher_, tp, logits_.data(), tact_.final_norm + row0 * dt, m, thook);
    for (int j = 0; j < m; ++j) {
      if (g[std::size_t(j)] >= vt) continue;  // a padding row of the student's vocabulary: the teacher has no such token
      const float* z = logits_.data() + std::size_t(j) * vt;
      double mx = -INFINITY, sum = 0;
      for (int k = 0; k < vt; ++k) mx = std::max(mx, double(z[k]));
      for (int k = 0; k < vt; ++k) sum += std::exp(double(z[k]) - mx);
      nll += mx + std::log(sum) - double(z[g[std::size_t(j)]]);
      ++q.tokens;
    }
  }
  if (q.tokens > 0) {
    q.teacher_nll = nll / double(q.tokens);
    q.entropy = ent / double(q.tokens);
  }
  if (all_bigrams > 0) q.distinct2 = double(bigrams.size()) / double(all_bigrams);
  return q;
}

}  // namespace kd
