#include "trainer/prune/block_importance.h"

#include <cmath>
#include <numeric>

#include "base/errors.h"

namespace kd::prune {

namespace {

// Summed next-token cross-entropy of the logits (rows, V) over the rows with a label.
double sum_ce(const std::vector<float>& z, const std::vector<std::int32_t>& labels, int vocab) {
  double sum = 0;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    if (labels[r] < 0) continue;
    const float* row = z.data() + r * std::size_t(vocab);
    double mx = row[0];
    for (int j = 1; j < vocab; ++j) mx = std::max(mx, double(row[j]));
    double se = 0;
    for (int j = 0; j < vocab; ++j) se += std::exp(double(row[j]) - mx);
    sum += mx + std::log(se) - double(row[labels[r]]);
  }
  return sum;
}

}  // namespace

std::vector<double> block_importance(DepthScore score, const LlamaLayout& lay, const float* params,
                                     std::size_t n_params, const ScoringData& data) {
  KD_ASSERT(data.source, "block importance without a data source");
  const ModelSpec& s = lay.spec();
  const int n_layers = s.n_layers, M = data.batch * data.seq;
  const std::size_t d = std::size_t(s.d_model);
  std::vector<int> capture;
  if (score == DepthScore::cosine) {
    capture.resize(std::size_t(n_layers) + 1);
    std::iota(capture.begin(), capture.end(), 0);
  }
  FrozenActivations<float> a;
  a.build(s, data.batch, data.seq, data.threads, capture);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(M)), labels(static_cast<std::size_t>(M));
  std::vector<float> logits, skipped;
  std::vector<double> sum(static_cast<std::size_t>(n_layers), 0.0);
  double base = 0, count = 0;
  data.source->seek(0, data.seq);
  for (int b = 0; b < data.batches; ++b) {
    data.source->next(tokens.data(), labels.data(), data.batch, data.seq);
    if (score == DepthScore::cosine) {
      llama_forward_frozen<float>(lay, params, tokens.data(), a);
      for (int l = 0; l < n_layers; ++l) {
        const float *x = a.hidden(l), *y = a.hidden(l + 1);
        double acc = 0;
#pragma omp parallel for reduction(+ : acc) num_threads(data.threads)
        for (int r = 0; r < M; ++r) {
          double xy = 0, xx = 0, yy = 0;
          for (std::size_t c = 0; c < d; ++c) {
            const double u = x[std::size_t(r) * d + c], v = y[std::size_t(r) * d + c];
            xy += u * v;
            xx += u * u;
            yy += v * v;
          }
          acc += 1.0 - xy / std::sqrt(std::max(xx * yy, 1e-300));
        }
        sum[std::size_t(l)] += acc;
      }
      count += M;
    } else {
      logits.resize(std::size_t(M) * std::size_t(s.vocab));
      auto loss_of = [&](const float* p) {
        llama_forward_frozen<float>(lay, p, tokens.data(), a);
        head_forward_frozen<float>(lay, p, logits.data(), a.final_norm, M);
        return sum_ce(logits, labels, s.vocab);
      };
      base += loss_of(params);
      // one copy, each block zeroed and then restored in turn
      if (skipped.empty()) skipped.assign(params, params + n_params);
      for (int l = 0; l < n_layers; ++l) {
        for_block_linears(lay, std::size_t(l), [&](std::size_t i) { skipped[i] = 0.0f; });
        sum[std::size_t(l)] += loss_of(skipped.data());
        for_block_linears(lay, std::size_t(l), [&](std::size_t i) { skipped[i] = params[i]; });
      }
      for (int r = 0; r < M; ++r) count += labels[std::size_t(r)] >= 0 ? 1 : 0;
    }
  }
  std::vector<double> out(static_cast<std::size_t>(n_layers));
  for (int l = 0; l < n_layers; ++l) {
    out[std::size_t(l)] = score == DepthScore::cosine ? sum[std::size_t(l)] / count : (sum[std::size_t(l)] - base) / count;
  }
  return out;
}

}  // namespace kd::prune
