// The top-k distillation loss (kernels.h, topk_distill_loss_rows):
//  * with k = the whole vocabulary it equals the full forward KL of distill_loss_rows
//    (value and gradient): the top-k form takes the teacher's log-sum-exp as stored, in
//    float (as in a cache); its rounding (half an ulp of a value near 10: ~5e-7) shifts
//    every teacher log-probability, hence 1e-6 · (1 + KL) on the value and 1e-6 on the
//    gradient, in double and in float;
//  * for k < V its gradient matches central finite differences of its value in double
//    (step 1e-6: truncation ~1e-12, rounding ~1e-10; tolerance 1e-7);
//  * the value equals the bucketed KL written out by hand, and the gradient may overwrite
//    the student's logits in place.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace {

using kd::kern::DistillLossParams;
using kd::kern::LossRow;

struct TopK {
  std::vector<float> vals, lse;
  std::vector<std::int32_t> idx;
};

// The k largest of each row (ties to the lower index) and the log-sum-exp at temperature tau.
TopK top_k(const std::vector<double>& t, int r, int v, int k, double tau) {
  TopK out;
  for (int i = 0; i < r; ++i) {
    const double* row = t.data() + std::size_t(i) * v;
    std::vector<int> order(static_cast<std::size_t>(v));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    for (int j = 0; j < k; ++j) {
      out.idx.push_back(order[std::size_t(j)]);
      out.vals.push_back(float(row[order[std::size_t(j)]]));
    }
    double m = *std::max_element(row, row + v), z = 0;
    for (int u = 0; u < v; ++u) z += std::exp((row[u] - m) / tau);
    out.lse.push_back(float(m / tau + std::log(z)));
  }
  return out;
}

std::vector<double> randn(std::size_t n, double scale, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> x(n);
  for (auto& e : x) e = d(g);
  return x;
}

DistillLossParams params(double tau) {
  DistillLossParams p;
  p.temperature = tau;
  p.ce_scale = 0.3;
  p.kd_scale = 0.7 * tau * tau;
  return p;
}

TEST(TopKDistill, WholeVocabularyEqualsTheFullForwardKl) {
  const int r = 5, v = 37;
  for (double tau : {1.0, 2.0}) {
    const auto s = randn(std::size_t(r) * v, 2.0, 1), t = randn(std::size_t(r) * v, 3.0, 2);
    // the teacher's values as float, so both losses see the same teacher
    std::vector<double> tf(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) tf[i] = double(float(t[i]));
    const TopK tk = top_k(tf, r, v, v, tau);
    std::vector<std::int32_t> y{3, 0, -1, 36, 7};
    std::vector<double> g_full(s.size()), g_topk(s.size());
    std::vector<LossRow> rows_full(r), rows_topk(r);
    const auto p = params(tau);
    kd::kern::distill_loss_rows<double>(g_full.data(), rows_full.data(), s.data(), tf.data(), y.data(), r, v, p);
    kd::kern::topk_distill_loss_rows<double>(g_topk.data(), rows_topk.data(), s.data(), tk.vals.data(), tk.idx.data(),
                                             tk.lse.data(), y.data(), r, v, v, p);
    for (int i = 0; i < r; ++i) {
      EXPECT_NEAR(rows_topk[i].kd, rows_full[i].kd, 1e-6 * (1 + rows_full[i].kd)) << "row " << i;
      EXPECT_EQ(rows_topk[i].ce, rows_full[i].ce);
    }
    for (std::size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(g_topk[i], g_full[i], 1e-6) << i;

    // float: the same within float rounding
    std::vector<float> sf(s.begin(), s.end()), tff(tf.begin(), tf.end()), gf_full(s.size()), gf_topk(s.size());
    kd::kern::distill_loss_rows<float>(gf_full.data(), rows_full.data(), sf.data(), tff.data(), y.data(), r, v, p);
    kd::kern::topk_distill_loss_rows<float>(gf_topk.data(), rows_topk.data(), sf.data(), tk.vals.data(),
                                            tk.idx.data(), tk.lse.data(), y.data(), r, v, v, p);
    for (int i = 0; i < r; ++i) EXPECT_NEAR(rows_topk[i].kd, rows_full[i].kd, 1e-5 * (1 + rows_full[i].kd));
    for (std::size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(gf_topk[i], gf_full[i], 1e-6) << i;
  }
}

// value = ce_scale · CE + kd_scale · KL over the rows
double total(const std::vector<double>& s, const TopK& tk, const std::vector<std::int32_t>& y, int r, int v, int k,
             const DistillLossParams& p, std::vector<double>* grad) {
  std::vector<double> g(s.size());
  std::vector<LossRow> rows(static_cast<std::size_t>(r));
  kd::kern::topk_distill_loss_rows<double>(g.data(), rows.data(), s.data(), tk.vals.data(), tk.idx.data(),
                                           tk.lse.data(), y.data(), r, v, k, p);
  if (grad) *grad = g;
  double sum = 0;
  for (const auto& row : rows) sum += p.ce_scale * row.ce + p.kd_scale * row.kd;
  return sum;
}

TEST(TopKDistill, GradientMatchesFiniteDifferencesForSmallK) {
  const int r = 3, v = 29;
  for (int k : {1, 4, 28}) {
    for (double tau : {1.0, 3.0}) {
      const auto s0 = randn(std::size_t(r) * v, 1.5, 3), t = randn(std::size_t(r) * v, 2.0, 4);
      const TopK tk = top_k(t, r, v, k, tau);
      const std::vector<std::int32_t> y{5, 28, 0};
      const auto p = params(tau);
      std::vector<double> g;
      total(s0, tk, y, r, v, k, p, &g);
      auto s = s0;
      const double h = 1e-6;
      for (std::size_t i = 0; i < s.size(); ++i) {
        s[i] = s0[i] + h;
        const double up = total(s, tk, y, r, v, k, p, nullptr);
        s[i] = s0[i] - h;
        const double down = total(s, tk, y, r, v, k, p, nullptr);
        s[i] = s0[i];
        EXPECT_NEAR(g[i], (up - down) / (2 * h), 1e-7) << "k " << k << " tau " << tau << " element " << i;
      }
    }
  }
}

TEST(TopKDistill, ValueIsTheBucketedKlAndTheGradientMayOverwriteTheLogits) {
  const int v = 6, k = 2;
  const std::vector<double> s{0.5, -1.0, 2.0, 0.0, 1.0, -0.5}, t{3.0, 0.0, 1.0, -2.0, 2.5, 0.5};
  const double tau = 2.0;
  const TopK tk = top_k(t, 1, v, k, tau);  // indices 0 and 4
  ASSERT_EQ(tk.idx, (std::vector<std::int32_t>{0, 4}));
  // by hand, in double
  double zt = 0, zs = 0;
  for (int i = 0; i < v; ++i) {
    zt += std::exp(t[std::size_t(i)] / tau);
    zs += std::exp(s[std::size_t(i)] / tau);
  }
  double kl = 0, pk = 0, qk = 0;
  for (int i : {0, 4}) {
    const double p = std::exp(t[std::size_t(i)] / tau) / zt, q = std::exp(s[std::size_t(i)] / tau) / zs;
    kl += p * std::log(p / q);
    pk += p;
    qk += q;
  }
  kl += (1 - pk) * std::log((1 - pk) / (1 - qk));
  const std::vector<std::int32_t> y{2};
  auto p = params(tau);
  std::vector<double> g;
  std::vector<LossRow> row(1);
  std::vector<double> g_sep(v);
  kd::kern::topk_distill_loss_rows<double>(g_sep.data(), row.data(), s.data(), tk.vals.data(), tk.idx.data(),
                                           tk.lse.data(), y.data(), 1, v, k, p);
  EXPECT_NEAR(row[0].kd, kl, 1e-7);  // the lse is stored in float
  std::vector<double> in_place = s;
  kd::kern::topk_distill_loss_rows<double>(in_place.data(), row.data(), in_place.data(), tk.vals.data(),
                                           tk.idx.data(), tk.lse.data(), y.data(), 1, v, k, p);
  EXPECT_EQ(in_place, g_sep);
}

}  // namespace
