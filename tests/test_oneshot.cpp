// One-shot compression against an independent float64 reference written from the papers
// (scripts/gen_oneshot_fixtures.py → tests/fixtures/oneshot.kdt; it does not call kdtrain):
// GPTQ's quantized weights, scales and zero points, SparseGPT's masks and updated weights,
// Wanda's masks, AWQ's searched α, scales and clipping ratios, SmoothQuant's scales, and
// every case's layer output error, on one layer of 24×256 weights with 192 calibration
// tokens (outlier channels and one dead input).
//
// Tolerances: masks, zero points, α and clipping ratios must be equal (the reference's
// decisions have relative margins ≥ 2.5e-4 on this data, far above float64 noise).
// Quantized weights and scales are float32 values of the same float32 computation: equal
// to 1e-6 relative (the reference found no value within 3 ulps of a rounding tie apart from
// group extremes, which round first). SparseGPT's float64 weights are stored as float32
// here: 1e-6 relative to the row's scale. Output errors: 1e-6 relative (kdtrain sums
// Σ x xᵀ with dsyrk in float64, the reference from x directly).
#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/kdt_reader.h"
#include "trainer/oneshot/activation_scales.h"
#include "trainer/oneshot/hessian_factor.h"
#include "trainer/oneshot/input_stats.h"
#include "trainer/oneshot/obs_compress.h"
#include "trainer/oneshot/rtn.h"
#include "trainer/oneshot/wanda.h"
#include "trainer/quant/quant_format.h"
#include "base/errors.h"

namespace {

using namespace kd::oneshot;

const kdtest::Fixture& fx() {
  static kdtest::Fixture f(std::string(KD_FIXTURES_DIR) + "/oneshot.kdt");
  return f;
}

std::vector<float> floats(const std::string& name) {
  const auto& v = fx().at(name).values;
  return {v.begin(), v.end()};
}

int dim(const std::string& name, int k) { return int(fx().at(name).shape.at(k)); }

const InputStats& stats() {
  static InputStats s = [] {
    const std::vector<float> x = floats("x");
    InputStats st(dim("x", 1));
    st.add(x.data(), dim("x", 0) / 2);  // in two parts: accumulation over batches
    st.add(x.data() + std::size_t(dim("x", 0) / 2) * dim("x", 1), dim("x", 0) - dim("x", 0) / 2);
    return st;
  }();
  return s;
}

// E(W') = (1/N) Σ ‖(W' − W) x‖² against the fixture's w
double error_of(const std::vector<float>& got, const std::string& w_name = "w") {
  const std::vector<float> w = floats(w_name);
  std::vector<double> d(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) d[i] = double(got[i]) - double(w[i]);
  return stats().output_error(d.data(), dim(w_name, 0));
}

void expect_rel(double got, double want, double rtol, const std::string& what) {
  EXPECT_LE(std::fabs(got - want), rtol * std::fabs(want)) << what << ": " << got << " vs " << want;
}

struct GptqCase {
  const char* name;
  const char* format;
  bool act_order;
};

class Gptq : public ::testing::TestWithParam<GptqCase> {};

TEST_P(Gptq, MatchesTheFloat64Reference) {
  const GptqCase c = GetParam();
  const std::string n = c.name;
  const std::vector<float> w = floats("w");
  const int rows = dim("w", 0), cols = dim("w", 1);
  ObsOptions o;
  o.act_order = c.act_order;
  o.static_groups = c.act_order;
  std::vector<std::string> notes;
  const CompressedWeight q =
      gptq(w.data(), rows, cols, stats().hessian(), kd::quant::parse_format(c.format, "test"), o, n, notes);
  const auto& ref = fx().at(n + ".q").values;
  const auto& scale = fx().at(n + ".scale").values;
  const auto& zero = fx().at(n + ".zero").values;
  ASSERT_EQ(q.scale.size(), scale.size());
  for (std::size_t k = 0; k < scale.size(); ++k) {
    EXPECT_NEAR(q.scale[k], scale[k], 1e-6 * scale[k]) << n << " scale " << k;
    EXPECT_EQ(q.zero[k], int(zero[k])) << n << " zero " << k;
  }
  std::size_t off = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) off += std::fabs(q.w[i] - ref[i]) > 1e-6 * std::fabs(ref[i]) + 1e-9;
  EXPECT_EQ(off, 0u) << n << ": quantized weights differing from the reference";
  const double err = error_of(q.w);
  expect_rel(err, fx().scalar(n + ".err"), 1e-6, n + " output error");
  EXPECT_LT(err, fx().scalar(n + ".rtn_err")) << n << ": GPTQ not below round-to-nearest";
  EXPECT_TRUE(notes.empty());
}

INSTANTIATE_TEST_SUITE_P(Cases, Gptq,
                         ::testing::Values(GptqCase{"gptq_int4_g64_sym", "int4:g64", false},
                                           GptqCase{"gptq_int4_g64_asym", "int4:g64:asym", false},
                                           GptqCase{"gptq_int3_g64_sym", "int3:g64", false},
                                           GptqCase{"gptq_int4_channel_sym", "int4:channel", false},
                                           GptqCase{"gptq_int4_tensor_sym", "int4:tensor", false},
                                           GptqCase{"gptq_int4_g64_sym_actorder", "int4:g64", true},
                                           GptqCase{"gptq_int4_channel_sym_actorder", "int4:channel", true}),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(Gptq, RoundToNearestErrorMatchesTheReference) {
  const std::vector<float> w = floats("w");
  std::vector<double> v(w.begin(), w.end());
  round_to_nearest(v.data(), dim("w", 0), dim("w", 1), kd::quant::parse_format("int4:g64", "test"));
  expect_rel(error_of({v.begin(), v.end()}), fx().scalar("gptq_int4_g64_sym.rtn_err"), 1e-6, "RTN int4 g64");
}

struct SparseCase {
  const char* name;
  double fraction;
  int n, m;
  const char* format;
};

class SparseGpt : public ::testing::TestWithParam<SparseCase> {};

TEST_P(SparseGpt, MatchesTheFloat64Reference) {
  const SparseCase c = GetParam();
  const std::string n = c.name;
  const std::vector<float> w = floats("w");
  const int rows = dim("w", 0), cols = dim("w", 1);
  Sparsity s;
  s.fraction = c.fraction;
  s.n = c.n;
  s.m = c.m;
  std::vector<std::string> notes;
  const kd::kern::QuantFormat f = *c.format ? kd::quant::parse_format(c.format, "test") : kd::kern::QuantFormat{};
  const CompressedWeight p = sparsegpt(w.data(), rows, cols, stats().hessian(), s, f, ObsOptions{}, n, notes);
  const auto& mask = fx().at(n + ".mask").values;
  const auto& ref = fx().at(n + ".w").values;
  std::size_t mask_off = 0, w_off = 0;
  for (std::size_t i = 0; i < mask.size(); ++i) {
    mask_off += p.mask[i] != int(mask[i]);
    w_off += std::fabs(p.w[i] - ref[i]) > 1e-6 * std::fabs(ref[i]) + 1e-7;
  }
  EXPECT_EQ(mask_off, 0u) << n << ": mask entries differing";
  EXPECT_EQ(w_off, 0u) << n << ": weights differing";
  const double err = error_of(p.w);
  expect_rel(err, fx().scalar(n + ".err"), 1e-6, n + " output error");
  if (!f.enabled()) {
    EXPECT_LT(err, fx().scalar(n + ".magnitude_err")) << n << ": not below magnitude pruning";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, SparseGpt,
                         ::testing::Values(SparseCase{"sparsegpt_50", 0.5, 0, 0, ""},
                                           SparseCase{"sparsegpt_2_4", 0, 2, 4, ""},
                                           SparseCase{"sparsegpt_50_int4_g64", 0.5, 0, 0, "int4:g64"}),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(Wanda, MasksAndErrorsMatchTheReference) {
  const std::vector<float> w = floats("w");
  const int rows = dim("w", 0), cols = dim("w", 1);
  for (const auto& [name, s] : {std::pair{std::string("wanda_50"), Sparsity{0.5, 0, 0}},
                                std::pair{std::string("wanda_2_4"), Sparsity{0, 2, 4}}}) {
    const auto mask = wanda_mask(w.data(), rows, cols, stats().squared_norms(), s);
    const auto& ref = fx().at(name + ".mask").values;
    std::size_t off = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) off += mask[i] != int(ref[i]);
    EXPECT_EQ(off, 0u) << name;
    std::vector<float> pruned(w);
    for (std::size_t i = 0; i < pruned.size(); ++i) pruned[i] *= float(mask[i]);
    expect_rel(error_of(pruned), fx().scalar(name + ".err"), 1e-6, name + " output error");
    // magnitude pruning, the baseline, at the same pattern
    const auto mag = magnitude_mask(w.data(), rows, cols, s);
    std::vector<float> mpruned(w);
    for (std::size_t i = 0; i < mpruned.size(); ++i) mpruned[i] *= float(mag[i]);
    expect_rel(error_of(mpruned), fx().scalar(name + ".magnitude_err"), 1e-6, name + " magnitude error");
    EXPECT_LT(error_of(pruned), error_of(mpruned)) << name;
  }
}

TEST(Awq, SearchAndClippingMatchTheReference) {
  const std::vector<float> a = floats("w_a"), b = floats("w_b"), c = floats("w_c");
  const int cols = dim("w_a", 1);
  const kd::kern::QuantFormat f = kd::quant::parse_format("int4:g64", "test");
  const std::vector<GroupWeight> group{
      {a.data(), dim("w_a", 0), f}, {b.data(), dim("w_b", 0), f}, {c.data(), dim("w_c", 0), f}};
  const AwqScales s = awq_search(group, cols, stats());
  EXPECT_EQ(s.alpha, fx().scalar("awq.alpha"));
  const auto& losses = fx().at("awq.losses").values;
  ASSERT_EQ(s.losses.size(), losses.size());
  for (std::size_t i = 0; i < losses.size(); ++i) expect_rel(s.losses[i], losses[i], 1e-6, "AWQ loss " + std::to_string(i));
  const auto& scales = fx().at("awq.scales").values;
  for (int j = 0; j < cols; ++j) expect_rel(s.scales[j], scales[j], 1e-9, "AWQ scale " + std::to_string(j));
  expect_rel(s.losses[std::size_t(s.alpha * 20 + 0.5)], fx().scalar("awq.err"), 1e-6, "AWQ chosen loss");
  EXPECT_LT(fx().scalar("awq.err"), fx().scalar("awq.rtn_err"));
  double total = 0;
  for (const auto& [name, w, rows] : {std::tuple{"a", &a, dim("w_a", 0)}, std::tuple{"b", &b, dim("w_b", 0)},
                                      std::tuple{"c", &c, dim("w_c", 0)}}) {
    std::vector<double> ws(w->size());
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < cols; ++j) ws[std::size_t(r) * cols + j] = double((*w)[std::size_t(r) * cols + j]) * s.scales[j];
    }
    const std::vector<double> ratio = awq_clip(ws.data(), rows, cols, s.scales, stats(), f);
    const auto& want = fx().at(std::string("awq.clip_ratio_") + name).values;
    ASSERT_EQ(ratio.size(), want.size());
    for (std::size_t k = 0; k < want.size(); ++k) EXPECT_EQ(ratio[k], want[k]) << name << " clip " << k;
    round_to_nearest(ws.data(), rows, cols, f);
    std::vector<double> d(ws.size());
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < cols; ++j) {
        const std::size_t i = std::size_t(r) * cols + j;
        d[i] = ws[i] / s.scales[j] - double((*w)[i]);
      }
    }
    total += stats().output_error(d.data(), rows);
  }
  expect_rel(total, fx().scalar("awq_clip.err"), 1e-6, "AWQ with clipping");
}

TEST(SmoothQuant, ScalesMatchTheReference) {
  const std::vector<float> a = floats("w_a"), b = floats("w_b"), c = floats("w_c");
  const int cols = dim("w_a", 1);
  const std::vector<GroupWeight> group{{a.data(), dim("w_a", 0)}, {b.data(), dim("w_b", 0)}, {c.data(), dim("w_c", 0)}};
  const std::vector<double> s = smoothquant_scales(group, cols, stats(), 0.5);
  const auto& want = fx().at("smoothquant.scales").values;
  for (int j = 0; j < cols; ++j) expect_rel(s[j], want[j], 1e-9, "SmoothQuant scale " + std::to_string(j));
}

TEST(Hessian, SingularAfterRetriesNamesTheLayerAndUndampenedFailsAtOnce) {
  const int n = 4;
  std::vector<double> h(n * n, 0.0);
  h[0] = 1;  // rank 1 with a negative direction: not positive definite even dampened
  h[5] = -1e6;
  std::vector<std::string> notes;
  try {
    inverse_factor(h, n, 0.01, "model.layers.3.mlp.down_proj", "--damp", notes);
    FAIL() << "no error";
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.3.mlp.down_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("stays singular"), std::string::npos) << e.what();
  }
  EXPECT_EQ(notes.size(), 3u);
  std::vector<double> zero(n * n, 0.0);
  notes.clear();
  EXPECT_THROW(inverse_factor(zero, n, 0.0, "q", "--damp", notes), kd::InputError);
  EXPECT_TRUE(notes.empty());
  // a singular H that a retry fixes: said, and used
  std::vector<double> low(n * n, 0.0);
  for (int i = 0; i < n; ++i) low[i * n + i] = i == 0 ? -1e-3 : 1.0;  // lifted by the second retry (λ = 7.5e-3)
  notes.clear();
  const HessianFactor f = inverse_factor(low, n, 1e-4, "x", "--damp", notes);
  EXPECT_GT(f.damp, 1e-4);
  EXPECT_FALSE(notes.empty());
}

TEST(Gptq, RefusesFormatsAndCombinationsItCannotStore) {
  const std::vector<float> w(8 * 16, 0.5f);
  std::vector<double> h(16 * 16, 0.0);
  for (int i = 0; i < 16; ++i) h[i * 16 + i] = 1.0;
  std::vector<std::string> notes;
  ObsOptions o;
  EXPECT_THROW(gptq(w.data(), 8, 16, h, kd::quant::parse_format("fp8_e4m3:channel", "t"), o, "l", notes),
               kd::InputError);
  o.act_order = true;
  try {
    gptq(w.data(), 8, 16, h, kd::quant::parse_format("int4:g8", "t"), o, "model.layers.0.self_attn.q_proj", notes);
    FAIL() << "act-order with dynamic groups accepted";
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--static-groups"), std::string::npos) << e.what();
  }
  Sparsity s = parse_nm("2:4", "--nm");
  EXPECT_THROW(check_sparsity_for(s, 18, "l", "--nm"), kd::InputError);
  EXPECT_THROW(parse_nm("4:2", "--nm"), kd::InputError);
  EXPECT_THROW(parse_nm("2-4", "--nm"), kd::InputError);
}

}  // namespace
