// Training behaviour on synthetic tasks with known answers.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "data/synthetic.h"
#include "tests/support/tiny_config.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/teacher_pretrain.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

namespace {

kd::data::SyntheticTokens stream(const kd::Config& c, std::uint64_t stream_seed) {
  return kd::data::SyntheticTokens(kd::synthetic_kind(c.data.kind), c.model.vocab, c.data.markov_support,
                                   std::uint64_t(c.train.seed), stream_seed);
}

// A student trained on labels alone learns the chain: its held-out CE falls from
// ln(24) = 3.18 nats to within 0.15 nats of the entropy rate (the lowest possible CE)
// in 300 steps of 128 tokens.
TEST(Training, StudentLearnsMarkovChain) {
  kd::Config c = kdtest::tiny_config({"train.steps=300"});
  c.has_teacher = false;
  kd::set_threads(c.train.threads);
  kd::Trainer t(c);
  auto train = stream(c, 1), held = stream(c, 2);
  const double before = t.evaluate(held, 4);
  for (int s = 0; s < 300; ++s) t.step(train);
  auto held2 = stream(c, 2);
  const double after = t.evaluate(held2, 4);
  const double floor = train.entropy_rate();
  std::printf("held-out CE %.4f -> %.4f (entropy rate %.4f)\n", before, after, floor);
  EXPECT_GT(before, 3.0);
  EXPECT_LT(after, floor + 0.15) << "entropy rate " << floor;
}

// The teacher has learned the chain's full next-token distribution; one sampled label
// shows a single draw of it. At equal steps, the distilled student reaches a lower
// held-out CE than the same student trained on labels only (two seeds).
TEST(Training, DistillationBeatsLabelsOnly) {
  for (int seed : {11, 12}) {
    const std::vector<std::string> ov{"train.seed=" + std::to_string(seed), "train.steps=60"};
    kd::Config kd_cfg = kdtest::tiny_config(ov);
    kd::set_threads(kd_cfg.train.threads);
    kd::Trainer distilled(kd_cfg);
    auto teacher_data = stream(kd_cfg, 100);
    const double tce = kd::pretrain_teacher(kd_cfg, 400, teacher_data, distilled.teacher_params());
    EXPECT_LT(tce, teacher_data.entropy_rate() + 0.2) << "teacher did not learn the chain";

    kd::Config ce_cfg = kd_cfg;
    ce_cfg.has_teacher = false;
    kd::Trainer labels_only(ce_cfg);
    auto d1 = stream(kd_cfg, 1), d2 = stream(kd_cfg, 1);
    for (int s = 0; s < 60; ++s) {
      distilled.step(d1);
      labels_only.step(d2);
    }
    auto h1 = stream(kd_cfg, 2), h2 = stream(kd_cfg, 2);
    const double kd_ce = distilled.evaluate(h1, 8), ce_ce = labels_only.evaluate(h2, 8);
    std::printf("seed %d: teacher CE %.4f; held-out CE distilled %.4f vs labels only %.4f\n", seed,
                tce, kd_ce, ce_ce);
    EXPECT_LT(kd_ce, ce_ce - 0.02) << "seed " << seed << ": distilled " << kd_ce
                                   << " vs labels only " << ce_ce;
  }
}

// N micro-batches of accumulation equal one batch of N: the synthetic stream draws
// sequences one by one, so two batches of 4 are the same 8 sequences as one batch of 8.
TEST(Training, GradientAccumulationEqualsOneBigBatch) {
  kd::Config big = kdtest::tiny_config({"train.batch_size=8", "train.grad_accum=1"});
  kd::Config acc = kdtest::tiny_config({"train.batch_size=4", "train.grad_accum=2"});
  kd::set_threads(2);
  kd::Trainer a(big), b(acc);
  std::memcpy(b.teacher_params(), a.teacher_params(), sizeof(float) * a.teacher_table().total());
  auto sa = stream(big, 1), sb = stream(acc, 1);
  const auto ra = a.step(sa);
  const auto rb = b.step(sb);
  EXPECT_NEAR(ra.loss.loss, rb.loss.loss, 1e-6 * std::abs(ra.loss.loss));
  const std::size_t n = a.student_table().total();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = double(a.grads()[i]) - double(b.grads()[i]);
    num += d * d;
    den += double(a.grads()[i]) * double(a.grads()[i]);
  }
  // float sums in a different order: ~1e-7 relative per element
  EXPECT_LT(std::sqrt(num / den), 1e-5);
  EXPECT_NEAR(ra.grad_norm, rb.grad_norm, 1e-5 * ra.grad_norm);
}

// A non-finite teacher weight poisons the logits, hence the loss and every gradient.
TEST(NanPolicy, SkipLeavesParametersAndCountsTheStep) {
  kd::Config c = kdtest::tiny_config({"train.nan_policy=skip"});
  kd::set_threads(2);
  kd::Trainer t(c);
  auto s = stream(c, 1);
  t.step(s);
  std::vector<float> before(t.student_params(), t.student_params() + t.student_table().total());
  const float saved = t.teacher_params()[5];
  t.teacher_params()[5] = std::numeric_limits<float>::quiet_NaN();
  const auto r = t.step(s);
  EXPECT_TRUE(r.skipped);
  EXPECT_NE(r.nonfinite.find("loss"), std::string::npos) << r.nonfinite;
  EXPECT_NE(r.nonfinite.find("model.embed_tokens.weight"), std::string::npos) << r.nonfinite;
  EXPECT_EQ(t.skipped_steps(), 1);
  EXPECT_EQ(0, std::memcmp(before.data(), t.student_params(), before.size() * sizeof(float)));
  t.teacher_params()[5] = saved;
  const auto r2 = t.step(s);
  EXPECT_FALSE(r2.skipped);
  EXPECT_TRUE(std::isfinite(r2.loss.loss));
  EXPECT_EQ(t.steps_done(), 3);
}

TEST(NanPolicy, StopThrowsNamingStepAndTensor) {
  kd::Config c = kdtest::tiny_config({"train.nan_policy=stop"});
  kd::set_threads(2);
  kd::Trainer t(c);
  auto s = stream(c, 1);
  t.step(s);
  t.teacher_params()[0] = std::numeric_limits<float>::infinity();
  try {
    t.step(s);
    FAIL() << "expected RuntimeFailure";
  } catch (const kd::RuntimeFailure& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("step 1"), std::string::npos) << m;
    EXPECT_NE(m.find("non-finite"), std::string::npos) << m;
    EXPECT_NE(m.find("model."), std::string::npos) << m;
  }
}

// Same seed, same thread count: identical loss sequences, bit for bit.
TEST(Determinism, SameSeedSameLossesBitForBit) {
  kd::Config c = kdtest::tiny_config({"distill.feature.beta=0.5", "distill.feature.layers=[[1, 2], [2, 3]]",
                                      "train.grad_accum=2"});
  kd::set_threads(2);
  auto run = [&]() {
    kd::Trainer t(c);
    auto s = stream(c, 1);
    std::vector<double> losses;
    for (int i = 0; i < 8; ++i) {
      const auto r = t.step(s);
      losses.push_back(r.loss.loss);
      losses.push_back(r.grad_norm);
    }
    return losses;
  };
  const auto a = run(), b = run();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(&a[i], &b[i], sizeof(double))) << "entry " << i << ": " << a[i] << " vs " << b[i];
  }
}

}  // namespace
