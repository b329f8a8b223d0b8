#include "trainer/distill/on_policy.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/errors.h"

namespace kd {

namespace {
std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

bool OnPolicyRollouts::sampled(std::int64_t g, double fraction) {
  if (fraction >= 1.0) return true;
  return std::floor(double(g + 1) * fraction) > std::floor(double(g) * fraction);
}

std::size_t OnPolicyRollouts::bytes(const ModelSpec& s, const OnPolicySection& spec, int rows, int seq, int threads) {
  if (!spec.enabled()) return 0;
  const int slots = std::max(1, int(std::ceil(rows * spec.fraction)) + 1);
  return Generator::bytes(s, seq, std::min(rows, slots), threads);
}

OnPolicyRollouts::OnPolicyRollouts(const LlamaLayout& student, const OnPolicySection& spec, int rows, int seq,
                                   int threads, std::uint64_t seed, int eot)
    : spec_(spec), rows_(rows), seq_(seq), eot_(eot), seed_(seed), student_(student), threads_(threads) {
  KD_ASSERT(spec.prompt_tokens + spec.max_new_tokens <= seq, "on-policy prompt + sample longer than the context");
}

RolloutStats OnPolicyRollouts::apply(const float* params, LinearHook<float>* hook, std::int64_t step,
                                     std::int64_t first, std::int32_t* tokens, std::int32_t* labels,
                                     std::uint8_t* kd_only) {
  const double t0 = omp_get_wtime();
  RolloutStats st;
  std::memset(kd_only, 0, std::size_t(rows_) * seq_);
  std::vector<int> which;
  for (int r = 0; r < rows_; ++r) {
    if (sampled(first + r, spec_.fraction)) which.push_back(r);
  }
  if (which.empty()) return st;
  // the generator is built for the most rows a micro-batch samples (its KV cache slots)
  if (!gen_ || gen_->batch() < int(which.size()) || bound_hook_ != hook) {
    const int slots = std::max<int>(int(which.size()), gen_ ? gen_->batch() : 0);
    gen_ = std::make_unique<Generator>(student_, seq_, slots, threads_, hook);
    bound_hook_ = hook;
  }
  const int p = spec_.prompt_tokens;
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<std::uint64_t> ids;
  for (int r : which) {
    const std::int32_t* row = tokens + std::size_t(r) * seq_;
    prompts.emplace_back(row, row + p);
    ids.push_back(std::uint64_t(first + r));
  }
  SamplingSpec s;
  s.max_new_tokens = spec_.max_new_tokens;
  s.temperature = spec_.temperature;
  s.top_k = 0;
  s.top_p = 1.0;
  s.seed = mix(seed_, std::uint64_t(step));
  s.stop_token = eot_;
  const std::vector<Generation> out = gen_->generate(params, prompts, s, ids);
  for (std::size_t k = 0; k < which.size(); ++k) {
    std::int32_t* tok = tokens + std::size_t(which[k]) * seq_;
    std::int32_t* lab = labels + std::size_t(which[k]) * seq_;
    std::uint8_t* only = kd_only + std::size_t(which[k]) * seq_;
    const auto& g = out[k].tokens;
    const int n = int(g.size());
    std::copy(g.begin(), g.end(), tok + p);
    std::fill(tok + p + n, tok + seq_, eot_ >= 0 ? eot_ : 0);
    std::fill(lab, lab + seq_, -1);
    for (int j = 0; j < n; ++j) {  // position p - 1 + j predicts sampled token j
      lab[p - 1 + j] = g[std::size_t(j)];
      only[p - 1 + j] = 1;
    }
    st.tokens += n;
  }
  st.sequences = std::int64_t(which.size());
  st.seconds = omp_get_wtime() - t0;
  return st;
}

}  // namespace kd
