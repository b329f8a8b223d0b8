#include "trainer/distill/teacher_topk.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/common/bf16.h"
#include "kernels/kernels.h"
#include "base/errors.h"

namespace kd {

TeacherTopK::TeacherTopK(const LlamaLayout& teacher, int batch, int seq, int threads, int k, int kd_vocab,
                         std::vector<double> temperatures, int chunk_rows)
    : teacher_(teacher),
      batch_(batch),
      seq_(seq),
      k_(k),
      kd_vocab_(kd_vocab),
      chunk_(std::max(1, std::min(chunk_rows, batch * seq))),
      temps_(std::move(temperatures)) {
  KD_ASSERT(k_ >= 1 && k_ <= kd_vocab_ && kd_vocab_ <= teacher.spec().vocab, "top-{} of {} logits", k_, kd_vocab_);
  act_.build(teacher.spec(), batch, seq, threads, {});
  logits_.resize(std::size_t(chunk_) * std::size_t(teacher.spec().vocab));
}

void TeacherTopK::run_logits(const float* params, const std::int32_t* tokens, std::uint16_t* out) {
  llama_forward_frozen<float>(teacher_, params, tokens, act_, hook_);
  const int m = batch_ * seq_, v = teacher_.spec().vocab, d = teacher_.spec().d_model, vk = kd_vocab_;
  for (int r0 = 0; r0 < m; r0 += chunk_) {
    const int rows = std::min(chunk_, m - r0);
    head_forward_frozen<float>(teacher_, params, logits_.data(), act_.final_norm + std::size_t(r0) * d, rows, hook_);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; ++i) {
      for (int u = 0; u < vk; ++u) {
        out[std::size_t(r0 + i) * vk + std::size_t(u)] = common::to_bf16(logits_[std::size_t(i) * v + std::size_t(u)]);
      }
    }
  }
}

void TeacherTopK::run(const float* params, const std::int32_t* tokens, float* values, std::int32_t* indices,
                      float* lse) {
  llama_forward_frozen<float>(teacher_, params, tokens, act_, hook_);
  const int m = batch_ * seq_, v = teacher_.spec().vocab, d = teacher_.spec().d_model, vk = kd_vocab_;
  const std::size_t nt = temps_.size();
  for (int r0 = 0; r0 < m; r0 += chunk_) {
    const int rows = std::min(chunk_, m - r0);
    head_forward_frozen<float>(teacher_, params, logits_.data(), act_.final_norm + std::size_t(r0) * d, rows, hook_);
#pragma omp parallel
    {
      std::vector<std::int32_t> order(static_cast<std::size_t>(vk));
#pragma omp for schedule(static)
      for (int i = 0; i < rows; ++i) {
        const float* z = logits_.data() + std::size_t(i) * v;
        const std::size_t row = std::size_t(r0 + i);
        // the k largest, ties to the lower index (a total order: deterministic)
        std::iota(order.begin(), order.end(), 0);
        auto before = [z](std::int32_t a, std::int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); };
        std::partial_sort(order.begin(), order.begin() + k_, order.end(), before);
        for (int j = 0; j < k_; ++j) {
          indices[row * std::size_t(k_) + std::size_t(j)] = order[std::size_t(j)];
          values[row * std::size_t(k_) + std::size_t(j)] = z[order[std::size_t(j)]];
        }
        // log Σ exp(z / T) over the compared logits, in double (the max is the first of K)
        const double zmax = z[order[0]];
        for (std::size_t t = 0; t < nt; ++t) {
          const double it = 1.0 / temps_[t];
          double s = 0;
          for (int u = 0; u < vk; ++u) s += std::exp((double(z[u]) - zmax) * it);
          lse[row * nt + t] = float(zmax * it + std::log(s));
        }
      }
    }
  }
}

}  // namespace kd
