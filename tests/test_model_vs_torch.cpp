// The whole model (teacher forward, student forward + loss + backward) against the
// PyTorch reference in tests/fixtures/kd_tiny.kdt (scripts/gen_fixtures.py, float64 math
// on float32-rounded weights).
//
// Tolerances, per tensor, as ‖g − g_ref‖ / ‖g_ref‖:
//  * float path: loss ≤ 1e-4 and each gradient ≤ 1e-3, and max|g − g_ref| ≤ 1e-3·max|g_ref|.
//    Float32 carries ~6e-8 relative per operation; the deepest chain here is ~10^2
//    dependent roundings (GEMM sums over d_ff, softmax over the vocabulary, two-layer
//    backward), which stays near 1e-5 — the bounds leave 10–100× headroom for the
//    2-ulp fast exp and summation order, not for a wrong formula (a wrong sign or
//    missing term shows up at 1e-1).
//  * double path (the same code instantiated in double): loss ≤ 1e-12, gradients
//    ≤ 1e-9 — only summation order differs from PyTorch.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/tiny_pair.h"

namespace {

using kdtest::Fixture;

const Fixture& fixture() {
  static Fixture fx(std::string(KD_FIXTURES_DIR) + "/kd_tiny.kdt");
  return fx;
}

struct Tol {
  double loss, grad_rel, grad_maxabs;
};

template <class T>
void check_case(const std::string& name, Tol tol) {
  const Fixture& fx = fixture();
  const kd::DistillSection spec = kdtest::case_spec(fx, name);
  kdtest::TinyPair<T> tp(fx, spec);
  kd::DistillStep<T> step(*tp.student, tp.teacher.get(), spec, tp.proj, tp.batch, tp.seq, 2);
  std::vector<T> grads(tp.stable.total(), T(0));
  const kd::StepLoss got = step.run(tp.sparams.data(), grads.data(), tp.tparams.data(),
                                    tp.tokens.data(), tp.labels.data(), 1.0);
  const std::string pre = "case." + name + ".";
  auto rel = [](double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); };
  EXPECT_LE(rel(got.loss, fx.scalar(pre + "loss")), tol.loss) << name << " loss " << got.loss;
  EXPECT_LE(rel(got.ce, fx.scalar(pre + "ce")), tol.loss) << name << " ce";
  if (spec.alpha < 1.0) {
    EXPECT_LE(rel(got.kd, fx.scalar(pre + "kd")), tol.loss * 10) << name << " kd " << got.kd;
  }
  if (spec.feature.beta > 0) {
    EXPECT_LE(rel(got.feat, fx.scalar(pre + "feat")), tol.loss * 10) << name << " feat";
  }
  for (const auto& t : tp.stable.tensors()) {
    const auto& ref = fx.at(pre + "grad." + t.name).values;
    double num = 0, den = 0, maxerr = 0, maxref = 0;
    for (std::size_t i = 0; i < t.numel; ++i) {
      const double g = double(grads[t.offset + i]), r = ref[i];
      num += (g - r) * (g - r);
      den += r * r;
      maxerr = std::max(maxerr, std::abs(g - r));
      maxref = std::max(maxref, std::abs(r));
    }
    ASSERT_GT(den, 0.0) << name << ": reference gradient of " << t.name << " is zero";
    if (getenv("KD_PRINT")) printf("%s %s rel=%.3g\n", name.c_str(), t.name.c_str(), std::sqrt(num / den));
    EXPECT_LE(std::sqrt(num / den), tol.grad_rel) << name << " " << t.name;
    EXPECT_LE(maxerr, tol.grad_maxabs * maxref) << name << " " << t.name;
  }
}

const Tol kFloat{1e-4, 1e-3, 1e-3};
const Tol kDouble{1e-12, 1e-9, 1e-9};

class ModelVsTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelVsTorch, FloatMatchesFixture) { check_case<float>(GetParam(), kFloat); }
TEST_P(ModelVsTorch, DoubleMatchesFixture) { check_case<double>(GetParam(), kDouble); }

INSTANTIATE_TEST_SUITE_P(Cases, ModelVsTorch,
                         ::testing::Values("fkl", "rkl", "jsd", "mse", "cosine", "ce"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
