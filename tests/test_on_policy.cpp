// On-policy rows (trainer/distill/on_policy.h): which sequences are sampled, what a sampled
// row becomes (prompt kept, the student's sample after it, labels and kd_only on the
// sampled positions only), and that everything is keyed by the global sequence index: a
// micro-batch split over two data-parallel slices gives the same rows as one rank. Then a
// distillation step with on-policy rows: the loss is the divergence alone on the sampled
// positions (no CE there), against the step run on the same rows by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/support/tiny_config.h"
#include "trainer/distill/on_policy.h"
#include "trainer/distill/distill_step.h"
#include "trainer/eval/generator.h"
#include "tests/support/random_model.h"
#include "trainer/model/llama.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"

namespace {

using namespace kd;

constexpr int kThreads = 2;

struct Student : kdtest::RandomModel {
  Student() : RandomModel(30, 3, 0.3) {}
};

TEST(OnPolicy, ASharePerSequenceIndexEvenlySpread) {
  for (double f : {0.25, 0.5, 0.3, 1.0}) {
    int n = 0, run = 0, longest = 0;
    for (int g = 0; g < 1000; ++g) {
      const bool s = OnPolicyRollouts::sampled(g, f);
      n += s;
      run = s ? 0 : run + 1;
      longest = std::max(longest, run);
    }
    EXPECT_NEAR(n, 1000 * f, 1.0) << "fraction " << f;
    EXPECT_LE(longest, int(std::ceil(1 / f))) << "fraction " << f << ": unsampled stretch";
  }
}

TEST(OnPolicy, SampledRowsHoldThePromptTheSampleAndOnlyItsLabels) {
  Student m;
  OnPolicySection op;
  op.fraction = 0.5;
  op.prompt_tokens = 4;
  op.max_new_tokens = 6;
  const int rows = 4, seq = 12, eot = 29;
  std::vector<std::int32_t> tokens(rows * seq), labels(rows * seq);
  for (int i = 0; i < rows * seq; ++i) {
    tokens[std::size_t(i)] = i % 23;
    labels[std::size_t(i)] = (i + 1) % 23;
  }
  const auto data_tokens = tokens, data_labels = labels;
  std::vector<std::uint8_t> only(tokens.size(), 7);
  OnPolicyRollouts r(*m.lay, op, rows, seq, kThreads, 11, eot);
  const std::int64_t first = 10, step = 3;
  const RolloutStats st = r.apply(m.params.data(), nullptr, step, first, tokens.data(), labels.data(), only.data());
  EXPECT_EQ(st.sequences, 2);
  for (int row = 0; row < rows; ++row) {
    const std::size_t o = std::size_t(row) * seq;
    const bool sampled = OnPolicyRollouts::sampled(first + row, op.fraction);
    if (!sampled) {  // untouched data
      EXPECT_TRUE(std::equal(tokens.begin() + o, tokens.begin() + o + seq, data_tokens.begin() + o)) << row;
      EXPECT_TRUE(std::equal(labels.begin() + o, labels.begin() + o + seq, data_labels.begin() + o)) << row;
      EXPECT_EQ(std::count(only.begin() + o, only.begin() + o + seq, 1), 0) << row;
      continue;
    }
    EXPECT_TRUE(std::equal(tokens.begin() + o, tokens.begin() + o + op.prompt_tokens, data_tokens.begin() + o)) << row;
    int n = 0;
    for (int t = 0; t < seq; ++t) {
      if (only[o + t]) {
        ++n;
        EXPECT_EQ(labels[o + t], tokens[o + t + 1]) << "row " << row << " position " << t;
        EXPECT_GE(t, op.prompt_tokens - 1);
      } else {
        EXPECT_EQ(labels[o + t], -1) << "row " << row << " position " << t;
      }
    }
    EXPECT_GE(n, 1);
    EXPECT_LE(n, op.max_new_tokens);
  }
  // the same rows split over two slices (two data-parallel ranks): the same result
  auto t2 = data_tokens, l2 = data_labels;
  std::vector<std::uint8_t> o2(only.size());
  OnPolicyRollouts half(*m.lay, op, 2, seq, kThreads, 11, eot);
  half.apply(m.params.data(), nullptr, step, first, t2.data(), l2.data(), o2.data());
  half.apply(m.params.data(), nullptr, step, first + 2, t2.data() + 2 * seq, l2.data() + 2 * seq, o2.data() + 2 * seq);
  EXPECT_EQ(t2, tokens);
  EXPECT_EQ(l2, labels);
  EXPECT_EQ(o2, only);
  // another step samples otherwise (temperature 1 over 30 tokens)
  auto t3 = data_tokens, l3 = data_labels;
  std::vector<std::uint8_t> o3(only.size());
  r.apply(m.params.data(), nullptr, step + 1, first, t3.data(), l3.data(), o3.data());
  EXPECT_NE(t3, tokens);
}

// A distillation step with on-policy positions (kd_only) against two plain steps on the same
// rows and the same global token count: one with the data positions alone (alpha·CE +
// (1−alpha)·T²·D), one with the sampled positions alone at alpha 0 (T²·D). Their gradients
// must add up to the on-policy step's (float32, 1e-5 of the norm: one summation order
// against another), and the on-policy step's CE must come from the data positions only.
TEST(OnPolicy, AStepsGradientIsTheDataTermsPlusTheDivergenceOnSampledPositions) {
  Student s;
  ModelSpec ts = s.spec;
  ts.d_model = 48;
  ts.d_ff = 96;
  ParamTable ttable;
  LlamaLayout teacher(ts, ttable);
  std::vector<float> tp(ttable.total());
  teacher.init(tp.data(), 4, 0.3);
  const int batch = 4, seq = 12, m = batch * seq;
  std::vector<std::int32_t> tokens(m), labels(m), data_labels(m, -1), sampled_labels(m, -1);
  std::vector<std::uint8_t> only(m, 0);
  for (int i = 0; i < m; ++i) {
    tokens[std::size_t(i)] = (i * 7) % 30;
    labels[std::size_t(i)] = (i * 7 + 3) % 30;
    // rows 1 and 3: sampled from position 3 on (positions 0-2 unscored, the prompt)
    const int row = i / seq, pos = i % seq;
    if (row % 2 == 1 && pos < 3) labels[std::size_t(i)] = -1;
    if (row % 2 == 1 && pos >= 3) {
      only[std::size_t(i)] = 1;
      sampled_labels[std::size_t(i)] = labels[std::size_t(i)];
    } else {
      data_labels[std::size_t(i)] = labels[std::size_t(i)];
    }
  }
  DistillSection spec;
  spec.alpha = 0.3;
  spec.temperature = 1.5;
  spec.divergence = kern::Divergence::reverse_kl;
  DistillSection spec0 = spec;
  spec0.alpha = 0.0;
  const double n = double(std::count_if(labels.begin(), labels.end(), [](int l) { return l >= 0; }));
  const BatchTotals totals{n, double(m)};
  auto run = [&](const DistillSection& sp, const std::vector<std::int32_t>& lab, const std::uint8_t* kd_only) {
    DistillStep<float> step(*s.lay, &teacher, sp, {}, batch, seq, kThreads);
    std::vector<float> g(s.table.total(), 0.f);
    const StepLoss l = step.run(s.params.data(), g.data(), tp.data(), tokens.data(), lab.data(), 1.0, nullptr, &totals,
                                nullptr, kd_only);
    return std::pair{l, g};
  };
  const auto [on, g_on] = run(spec, labels, only.data());
  const auto [data, g_data] = run(spec, data_labels, nullptr);
  const auto [sampled, g_sampled] = run(spec0, sampled_labels, nullptr);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < g_on.size(); ++i) {
    const double want = double(g_data[i]) + double(g_sampled[i]);
    num += (g_on[i] - want) * (g_on[i] - want);
    den += want * want;
  }
  ASSERT_GT(den, 0.0);
  EXPECT_LE(std::sqrt(num / den), 1e-5);
  EXPECT_EQ(on.on_tokens, std::int64_t(std::count(only.begin(), only.end(), 1)));
  EXPECT_NEAR(on.ce_sum, data.ce_sum, 1e-9 * data.ce_sum) << "CE from the data positions only";
  EXPECT_NEAR(on.kd_on_sum, sampled.kd_sum, 1e-9 * sampled.kd_sum);
  const double t2 = spec.temperature * spec.temperature;
  const double want = (0.3 * data.ce_sum + 0.7 * t2 * data.kd_sum + t2 * sampled.kd_sum) / n;
  EXPECT_NEAR(on.loss, want, 1e-9 * want);
}

// alpha = 1: CE alone on the data rows, the divergence alone on the sampled ones (GKD mixed
// with supervised training): the teacher's logits are still computed for the sampled rows.
TEST(OnPolicy, WithAlphaOneTheSampledRowsStillGetTheDivergence) {
  kd::Config c = kdtest::tiny_config({"distill.on_policy.fraction=0.5", "distill.on_policy.prompt_tokens=4",
                                      "distill.on_policy.max_new_tokens=8", "distill.alpha=1"});
  kd::set_threads(kThreads);
  kd::Trainer t(c);
  auto src = kd::make_synthetic(c, kd::Stream::train);
  const StepReport r = t.step(*src);
  ASSERT_GT(r.loss.on_tokens, 0);
  EXPECT_GT(r.loss.kd_on_sum, 0.0);
  const double t2 = c.distill.temperature * c.distill.temperature, n = double(r.loss.tokens);
  const double want = (r.loss.ce * (n - double(r.loss.on_tokens)) + t2 * r.loss.kd_on_sum) / n;
  EXPECT_NEAR(r.loss.loss, want, 1e-9 * want);
}

// The trainer with distill.on_policy: a step samples half the batch and reports it.
TEST(OnPolicy, ATrainerStepSamplesItsShare) {
  kd::Config c = kdtest::tiny_config({"distill.on_policy.fraction=0.5", "distill.on_policy.prompt_tokens=4",
                                      "distill.on_policy.max_new_tokens=8"});
  kd::set_threads(kThreads);
  kd::Trainer t(c);
  auto src = kd::make_synthetic(c, kd::Stream::train);
  const StepReport r = t.step(*src);
  EXPECT_EQ(r.rollouts.sequences, c.train.batch_size / 2);
  EXPECT_EQ(r.rollouts.tokens, r.loss.on_tokens);  // no end of text set: every sample runs to its length
  EXPECT_EQ(r.loss.on_tokens, r.rollouts.sequences * 8);
  EXPECT_TRUE(std::isfinite(r.loss.loss));
}

}  // namespace
