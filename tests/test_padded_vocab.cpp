// Padded vocabularies: with kd_vocab = K the divergence runs over the first K logits of
// both models (rows past K are padding that no token uses) while CE sees every student
// logit. Checked against the same kernel run on separately truncated inputs, in double
// (identical arithmetic up to summation order: 1e-12).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace {

using kd::kern::Divergence;
using kd::kern::DistillLossParams;
using kd::kern::LossRow;

class PaddedVocab : public ::testing::TestWithParam<Divergence> {};

TEST_P(PaddedVocab, DivergenceIgnoresPaddingRowsCeDoesNot) {
  constexpr int R = 3, V = 11, VT = 9, K = 8;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> n(0.0, 2.0);
  std::vector<double> s(R * V), t(R * VT);
  for (auto& x : s) x = n(rng);
  for (auto& x : t) x = n(rng);
  const std::vector<std::int32_t> labels{3, 10, 7};  // 10: a token beyond K seen only by CE

  DistillLossParams p;
  p.temperature = 1.5;
  p.divergence = GetParam();
  p.jsd_beta = 0.3;
  p.ce_scale = 0.4;
  p.kd_scale = 0.9;
  p.kd_vocab = K;
  p.teacher_ld = VT;
  std::vector<double> g(R * V);
  std::vector<LossRow> rows(R);
  kd::kern::distill_loss_rows<double>(g.data(), rows.data(), s.data(), t.data(), labels.data(), R, V, p);

  // reference: CE on the full rows, divergence on rows truncated to K
  DistillLossParams ce = p;
  ce.kd_scale = 0;
  ce.kd_vocab = 0;
  ce.teacher_ld = 0;
  std::vector<double> g_ce(R * V);
  std::vector<LossRow> rows_ce(R);
  kd::kern::distill_loss_rows<double>(g_ce.data(), rows_ce.data(), s.data(), nullptr, labels.data(), R, V, ce);
  std::vector<double> sk(R * K), tk(R * K), g_kd(R * K);
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < K; ++i) {
      sk[r * K + i] = s[r * V + i];
      tk[r * K + i] = t[r * VT + i];
    }
  }
  DistillLossParams kdp = p;
  kdp.ce_scale = 0;
  kdp.kd_vocab = 0;
  kdp.teacher_ld = 0;
  const std::vector<std::int32_t> any_label(R, 0);  // CE is off; the label only marks the row as used
  std::vector<LossRow> rows_kd(R);
  kd::kern::distill_loss_rows<double>(g_kd.data(), rows_kd.data(), sk.data(), tk.data(), any_label.data(), R, K, kdp);

  for (int r = 0; r < R; ++r) {
    EXPECT_NEAR(rows[r].ce, rows_ce[r].ce, 1e-12) << r;
    EXPECT_NEAR(rows[r].kd, rows_kd[r].kd, 1e-12) << r;
    for (int i = 0; i < V; ++i) {
      const double want = g_ce[r * V + i] + (i < K ? g_kd[r * K + i] : 0.0);
      EXPECT_NEAR(g[r * V + i], want, 1e-12) << "row " << r << " logit " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Divergences, PaddedVocab,
                         ::testing::Values(Divergence::forward_kl, Divergence::reverse_kl, Divergence::jensen_shannon));

}  // namespace
