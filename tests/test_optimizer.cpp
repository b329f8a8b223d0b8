// AdamW, clipping and the LR schedule.
//  * A 4-step trajectory (distillation loss with a feature term, global-norm clipping at
//    0.5, decay on 2-D weights only) against torch.optim.AdamW in the fixture. The double
//    path must match to 1e-10 (only summation order differs); the float path's losses to
//    1e-4 (float rounding of the loss, ~1e-6, grows through 4 Adam steps whose update
//    lr·m/√v is insensitive to gradient scale but not to the sign of tiny gradients).
//  * One step in closed form: from m = v = 0 the bias-corrected moments are g and g²,
//    so the first update is exactly p(1 − lr·wd) − lr·g/(|g| + eps).
//  * The update that takes a checkpoint's CRC-32s gives the plain update's bits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "tests/support/tiny_pair.h"
#include "trainer/optim/adamw.h"
#include "trainer/optim/lr_schedule.h"

namespace {

using kdtest::Fixture;

const Fixture& fixture() {
  static Fixture fx(std::string(KD_FIXTURES_DIR) + "/kd_tiny.kdt");
  return fx;
}

template <class T>
void run_trajectory(double loss_tol, double norm_tol, double param_tol) {
  const Fixture& fx = fixture();
  const kd::DistillSection spec = kdtest::case_spec(fx, "mse");
  kdtest::TinyPair<T> tp(fx, spec);
  const auto& c = fx.at("adamw.config").values;  // lr, beta1, beta2, eps, wd, max_norm
  kd::OptimSection o;
  o.lr = c[0];
  o.beta1 = c[1];
  o.beta2 = c[2];
  o.eps = c[3];
  o.weight_decay = c[4];
  kd::AdamW<T> opt(tp.stable, o);
  kd::DistillStep<T> step(*tp.student, tp.teacher.get(), spec, tp.proj, tp.batch, tp.seq, 2);
  std::vector<T> grads(tp.stable.total());
  const auto& losses = fx.at("adamw.losses").values;
  const auto& norms = fx.at("adamw.grad_norms").values;
  for (int s = 0; s < 4; ++s) {
    std::fill(grads.begin(), grads.end(), T(0));
    const auto l = step.run(tp.sparams.data(), grads.data(), tp.tparams.data(), tp.tokens.data(),
                            tp.labels.data(), 1.0);
    EXPECT_NEAR(l.loss, losses[s], loss_tol * std::abs(losses[s])) << "step " << s;
    const double norm = kd::global_norm<T>(grads.data(), grads.size());
    EXPECT_NEAR(norm, norms[s], norm_tol * norms[s]) << "step " << s;
    opt.step(tp.sparams.data(), grads.data(), o.lr, kd::clip_factor(norm, c[5]));
  }
  for (const auto& t : tp.stable.tensors()) {
    const auto& ref = fx.at("adamw.final." + t.name).values;
    double num = 0, den = 0;
    for (std::size_t i = 0; i < t.numel; ++i) {
      const double d = double(tp.sparams[t.offset + i]) - ref[i];
      num += d * d;
      den += ref[i] * ref[i];
    }
    EXPECT_LE(std::sqrt(num / den), param_tol) << t.name;
  }
}

TEST(AdamWTrajectory, DoubleMatchesTorch) { run_trajectory<double>(1e-12, 1e-10, 1e-10); }
// Params in float: elements whose gradient is ~0 can take a ±lr step of either sign, so
// the per-tensor bound is loose (5e-3) while the losses stay tight.
TEST(AdamWTrajectory, FloatMatchesTorch) { run_trajectory<float>(1e-4, 1e-3, 5e-3); }

TEST(AdamW, FirstStepClosedForm) {
  kd::ParamTable t;
  t.add("w", {4}, kd::kDecayed);
  t.add("n", {3}, 0);
  kd::OptimSection o;
  o.lr = 0.01;
  o.beta1 = 0.9;
  o.beta2 = 0.99;
  o.eps = 1e-3;  // large, so eps visibly enters the result
  o.weight_decay = 0.5;
  kd::AdamW<double> opt(t, o);
  std::vector<double> p{1.0, -2.0, 0.5, 3.0, 1.0, 2.0, -1.0};
  const std::vector<double> g{0.1, -0.2, 0.0, 4.0, 0.3, -0.001, 2.0};
  const double scale = 0.5;
  std::vector<double> expect(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double gs = g[i] * scale;
    const double wd = i < 4 ? o.weight_decay : 0.0;
    // m̂ = gs, v̂ = gs², denominator |gs| + eps, all after bias correction.
    expect[i] = p[i] * (1 - o.lr * wd) - o.lr * gs / (std::abs(gs) + o.eps);
  }
  opt.step(p.data(), g.data(), o.lr, scale);
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], expect[i], 1e-15) << i;
  EXPECT_DOUBLE_EQ(opt.m()[3], (1 - o.beta1) * 2.0);
  EXPECT_DOUBLE_EQ(opt.v()[3], (1 - o.beta2) * 4.0);
}

// LSQ scales (kQuantScale) take lr · ratio, undecayed; their neighbours the full lr.
TEST(AdamW, QuantScalesTakeTheirLearningRateRatio) {
  kd::ParamTable t;
  t.add("w", {2}, kd::kDecayed);
  t.add("s", {2}, kd::kAuxiliary | kd::kQuantScale);
  t.add("p", {1}, kd::kAuxiliary);
  kd::OptimSection o;
  o.lr = 0.01;
  o.eps = 1e-12;
  o.weight_decay = 0.0;
  kd::AdamW<double> opt(t, o, 0.05);
  std::vector<double> p{1.0, 1.0, 0.002, 0.002, 1.0};
  const std::vector<double> g{1.0, -1.0, 1.0, -1.0, 1.0};
  opt.step(p.data(), g.data(), o.lr, 1.0);
  // the first Adam step moves each element by lr · sign(g)
  EXPECT_NEAR(p[0], 1.0 - 0.01, 1e-12);
  EXPECT_NEAR(p[2], 0.002 - 0.01 * 0.05, 1e-12);
  EXPECT_NEAR(p[3], 0.002 + 0.01 * 0.05, 1e-12);
  EXPECT_NEAR(p[4], 1.0 - 0.01, 1e-12);
}

// The update that takes the CRC-32s a checkpoint needs (AdamW::StateSums) changes nothing of
// the update: three steps give the same bits of p, m and v as plain steps, on a ZeRO shard
// that starts and ends inside tensors, with ranges of different decay crossing grain bounds
// (and padding past the table's end). Every grain's sum is the CRC-32 of the grain as the
// update left it, and a range's CRC-32 from the sums is the range's.
TEST(AdamW, SummedUpdateIsTheSameBitsAndSumsWhatItLeaves) {
  kd::ParamTable t;
  t.add("a", {70001}, kd::kDecayed);
  t.add("norm", {37}, 0);
  t.add("b", {300, 131}, kd::kDecayed);
  t.add("scale", {5}, kd::kAuxiliary | kd::kQuantScale);
  t.add("c", {20000}, kd::kDecayed);
  kd::OptimSection o;
  o.lr = 0.01;
  o.weight_decay = 0.1;
  const std::size_t begin = 1000, end = t.total() + 77;  // a shard with padding past the end
  kd::AdamW<float> plain(t, o, 0.1, begin, end), summed(t, o, 0.1, begin, end);
  const std::size_t n = end - begin;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> p0(n), p1, g(n);
  for (float& x : p0) x = normal(rng);
  p1 = p0;
  kd::AdamW<float>::StateSums sums;
  for (int step = 0; step < 3; ++step) {
    for (float& x : g) x = normal(rng);
    plain.step(p0.data(), g.data(), 0.01, 0.7);
    summed.step(p1.data(), g.data(), 0.01, 0.7, &sums);
    ASSERT_EQ(std::memcmp(p0.data(), p1.data(), n * 4), 0) << "step " << step;
    ASSERT_EQ(std::memcmp(plain.m(), summed.m(), n * 4), 0) << "step " << step;
    ASSERT_EQ(std::memcmp(plain.v(), summed.v(), n * 4), 0) << "step " << step;
  }
  const std::uint64_t grain = kd::crc32::GrainSums::kGrain;
  const std::pair<const kd::crc32::GrainSums*, const float*> regions[] = {
      {&sums.params, p1.data()}, {&sums.m, summed.m()}, {&sums.v, summed.v()}};
  for (const auto& [s, base] : regions) {
    const auto* bytes = reinterpret_cast<const char*>(base);
    ASSERT_EQ(s->grains(), (n * 4 + grain - 1) / grain);
    for (std::uint64_t k = 0; k < s->grains(); ++k) {
      const std::uint32_t want = kd::crc32::of(bytes + k * grain, std::min(grain, n * 4 - k * grain));
      ASSERT_EQ(s->grain(k), want) << "grain " << k;
    }
    EXPECT_EQ(s->of(bytes + 12, n * 4 - 20), kd::crc32::of(bytes + 12, n * 4 - 20));
  }
}

TEST(Clip, TorchRule) {
  EXPECT_DOUBLE_EQ(kd::clip_factor(2.0, 1.0), 1.0 / (2.0 + 1e-6));
  EXPECT_DOUBLE_EQ(kd::clip_factor(0.5, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(kd::clip_factor(100.0, 0.0), 1.0);  // 0 = off
}

TEST(LrSchedule, WarmupThenDecay) {
  kd::OptimSection o;
  o.lr = 1.0;
  o.warmup_steps = 4;
  o.min_lr_ratio = 0.1;
  const std::int64_t total = 14;  // warmup 0..3, decay over steps 4..13
  o.schedule = kd::Schedule::cosine;
  EXPECT_DOUBLE_EQ(kd::lr_at(o, total, 0), 0.25);
  EXPECT_DOUBLE_EQ(kd::lr_at(o, total, 3), 1.0);
  EXPECT_DOUBLE_EQ(kd::lr_at(o, total, 4), 1.0);
  EXPECT_NEAR(kd::lr_at(o, total, 13), 0.1, 1e-15);
  EXPECT_NEAR(kd::lr_at(o, 24, 14), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 10.0 / 19.0)), 1e-15);
  o.schedule = kd::Schedule::linear;
  EXPECT_NEAR(kd::lr_at(o, total, 13), 0.1, 1e-15);
  EXPECT_NEAR(kd::lr_at(o, 24, 14), 1.0 - 0.9 * 10.0 / 19.0, 1e-15);
  o.schedule = kd::Schedule::constant;
  EXPECT_DOUBLE_EQ(kd::lr_at(o, total, 13), 1.0);
}

}  // namespace
