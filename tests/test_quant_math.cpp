// Quantization element math (kernels/common/quant_math.h) against references:
//  * FakeQuant forward and straight-through gradient against PyTorch 1.13's own
//    fake_quantize_per_tensor_affine / _per_channel_affine (tests/fixtures/quant.kdt,
//    scripts/gen_quant_fixtures.py) — bit for bit, ties and out-of-range values included.
//  * FP8 E4M3 / E5M2 against the 256-code tables computed from the OCP bit formula.
#include <gtest/gtest.h>

#include <algorithm>

#include <random>

#include <cmath>
#include <cstring>

#include "kernels/common/quant_math.h"
#include "kernels/kernels.h"
#include "tests/support/kdt_reader.h"

namespace {

using kd::common::Fp8Format;
using kdtest::Fixture;

const Fixture& fixture() {
  static Fixture fx(std::string(KD_FIXTURES_DIR) + "/quant.kdt");
  return fx;
}

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

class FakeQuantPerTensor : public ::testing::TestWithParam<std::string> {};

TEST_P(FakeQuantPerTensor, ForwardAndSteMatchTorchBitForBit) {
  const std::string pre = "pt." + GetParam() + ".";
  const auto& cfg = fixture().at(pre + "config").values;
  const float scale = float(fixture().at(pre + "scale").values[0]);
  const auto zp = std::int64_t(cfg[1]);
  const kd::common::IntGrid g{int(cfg[2]), int(cfg[3])};
  const auto& x = fixture().at(pre + "x").values;
  const auto& y = fixture().at(pre + "y").values;
  const auto& w = fixture().at(pre + "w").values;
  const auto& grad = fixture().at(pre + "grad").values;
  const float inv = 1.0f / scale;
  for (std::size_t i = 0; i < x.size(); ++i) {
    bool in = false;
    const float got = kd::common::fake_quant(float(x[i]), scale, inv, zp, g, &in);
    EXPECT_EQ(bits(got), bits(float(y[i]))) << "x=" << x[i] << " got " << got << " torch " << y[i];
    EXPECT_EQ(bits(kd::common::ste_grad(float(w[i]), in)), bits(float(grad[i]))) << "x=" << x[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Grids, FakeQuantPerTensor,
                         ::testing::Values("int8_sym", "uint8_asym", "int4_sym", "uint4_asym", "int2"));

TEST(FakeQuantPerChannel, ForwardAndSteMatchTorchBitForBit) {
  const auto& scales = fixture().at("pc.scales").values;
  const auto& zps = fixture().at("pc.zero_points").values;
  const Fixture& fx = fixture();
  const auto& xr = fx.at("pc.x");
  const auto& y = fx.at("pc.y").values;
  const auto& w = fx.at("pc.w").values;
  const auto& grad = fx.at("pc.grad").values;
  const int C = int(xr.shape[0]), K = int(xr.shape[1]);
  const kd::common::IntGrid g = kd::common::int_grid(8, true);
  for (int c = 0; c < C; ++c) {
    const float s = float(scales[c]);
    for (int k = 0; k < K; ++k) {
      const std::size_t i = std::size_t(c) * K + k;
      bool in = false;
      const float got = kd::common::fake_quant(float(xr.values[i]), s, 1.0f / s, std::int64_t(zps[c]), g, &in);
      EXPECT_EQ(bits(got), bits(float(y[i]))) << "channel " << c << " x=" << xr.values[i];
      EXPECT_EQ(bits(kd::common::ste_grad(float(w[i]), in)), bits(float(grad[i]))) << "channel " << c;
    }
  }
}

TEST(FakeQuant, DivisionWouldDifferOnNearTies) {
  // Why the formula multiplies by 1/scale: some fixture inputs round differently with x/scale.
  const auto& x = fixture().at("pt.int8_sym.x").values;
  const float scale = float(fixture().at("pt.int8_sym.scale").values[0]);
  int differ = 0;
  for (double v : x) differ += std::nearbyint(float(v) * (1.0f / scale)) != std::nearbyint(float(v) / scale);
  EXPECT_GT(differ, 0);
}

class Fp8 : public ::testing::TestWithParam<Fp8Format> {};

TEST_P(Fp8, EveryCodeDecodesToTheSpecValue) {
  const auto& table = fixture().at(GetParam() == Fp8Format::e4m3 ? "fp8.e4m3" : "fp8.e5m2").values;
  for (int c = 0; c < 256; ++c) {
    const float got = kd::common::fp8_decode(std::uint8_t(c), GetParam());
    if (std::isnan(table[c])) {
      EXPECT_TRUE(std::isnan(got)) << c;
    } else {
      EXPECT_EQ(double(got), table[c]) << "code " << c;
      EXPECT_EQ(std::signbit(got), std::signbit(table[c])) << "code " << c;
    }
  }
}

TEST_P(Fp8, EncodeDecodeRoundTripsEveryFiniteCode) {
  for (int c = 0; c < 256; ++c) {
    const float v = kd::common::fp8_decode(std::uint8_t(c), GetParam());
    if (!std::isfinite(v)) continue;
    EXPECT_EQ(int(kd::common::fp8_encode(v, GetParam())), c) << "value " << v;
  }
}

TEST_P(Fp8, NaNInfAndOverflow) {
  const Fp8Format f = GetParam();
  const auto spec = kd::common::fp8_spec(f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(kd::common::fp8_encode(nan, f), spec.nan_code);
  EXPECT_EQ(kd::common::fp8_encode(-nan, f), 0x80 | spec.nan_code);  // NaN keeps its sign
  EXPECT_EQ(kd::common::fp8_encode(inf, f), spec.max_code);          // saturating
  EXPECT_EQ(kd::common::fp8_encode(-inf, f), 0x80 | spec.max_code);
  const float max = kd::common::fp8_decode(spec.max_code, f);
  EXPECT_EQ(max, f == Fp8Format::e4m3 ? 448.0f : 57344.0f);
  EXPECT_EQ(kd::common::fp8_encode(max * 1.01f, f), spec.max_code);
  EXPECT_EQ(kd::common::fp8_encode(1e30f, f), spec.max_code);
  EXPECT_EQ(kd::common::fp8_encode(0.0f, f), 0x00);
  EXPECT_EQ(kd::common::fp8_encode(-0.0f, f), 0x80);
}

// The STE's bound sits half a step above the largest value (e4m3: 448 + 16; e5m2: 57344 +
// 4096), so the element that sets a max-calibrated scale is inside whatever its last bit;
// through the whole CPU kernel: a per-token scale from each row's max passes every gradient.
TEST_P(Fp8, SteBoundIsHalfAStepAboveTheLargestValue) {
  const Fp8Format f = GetParam();
  EXPECT_EQ(kd::common::fp8_clip_bound(f), f == Fp8Format::e4m3 ? 464.0f : 61440.0f);
  const kd::kern::QuantFormat q{f == Fp8Format::e4m3 ? kd::kern::QuantKind::fp8_e4m3 : kd::kern::QuantKind::fp8_e5m2, 8,
                                true, kd::kern::QuantGranularity::token, 0};
  const int rows = 64, cols = 37;
  std::vector<float> x(std::size_t(rows) * cols), dy(x.size(), 1.0f), dx(x.size());
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (float& v : x) v = nd(rng);
  std::vector<float> scale(static_cast<std::size_t>(rows));
  std::vector<std::int32_t> zero(static_cast<std::size_t>(rows));
  kd::kern::quant_dynamic_scales(scale.data(), zero.data(), x.data(), q, rows, cols);
  kd::kern::fake_quant_backward_ste(dx.data(), dy.data(), x.data(), scale.data(), zero.data(), q, rows, cols);
  for (std::size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dx[i], 1.0f) << "element " << i << " of a max-scaled row";
  for (float& s : scale) s *= 0.5f;  // now the largest elements saturate
  kd::kern::fake_quant_backward_ste(dx.data(), dy.data(), x.data(), scale.data(), zero.data(), q, rows, cols);
  EXPECT_LT(std::count(dx.begin(), dx.end(), 1.0f), std::ptrdiff_t(dx.size()));
}

TEST_P(Fp8, MidpointsRoundToEvenAndNeighboursToNearest) {
  const Fp8Format f = GetParam();
  const auto spec = kd::common::fp8_spec(f);
  for (int c = 0; c < spec.max_code; ++c) {  // consecutive positive finite codes c, c+1
    const float lo = kd::common::fp8_decode(std::uint8_t(c), f), hi = kd::common::fp8_decode(std::uint8_t(c + 1), f);
    const float mid = 0.5f * (lo + hi);  // exact in float: the codes have <= 4 significant bits
    const int even = (c % 2 == 0) ? c : c + 1;
    EXPECT_EQ(int(kd::common::fp8_encode(mid, f)), even) << "midpoint of codes " << c << " and " << c + 1;
    EXPECT_EQ(int(kd::common::fp8_encode(std::nextafter(mid, 0.0f), f)), c);
    EXPECT_EQ(int(kd::common::fp8_encode(std::nextafter(mid, 1e9f), f)), c + 1);
    EXPECT_EQ(int(kd::common::fp8_encode(-mid, f)), 0x80 | even);
  }
  // below half the smallest subnormal: zero; a tie there goes to zero (even)
  const float tiny = kd::common::fp8_decode(1, f);
  EXPECT_EQ(kd::common::fp8_encode(0.5f * tiny, f), 0x00);
  EXPECT_EQ(kd::common::fp8_encode(0.51f * tiny, f), 0x01);
}

INSTANTIATE_TEST_SUITE_P(Formats, Fp8, ::testing::Values(Fp8Format::e4m3, Fp8Format::e5m2),
                         [](const auto& p) { return p.param == Fp8Format::e4m3 ? "E4M3" : "E5M2"; });

}  // namespace

namespace {

// LSQ against torch._fake_quantize_learnable_per_{tensor,channel}_affine: the forward and
// dx bit for bit; dscale and dzero are sums of signed per-element terms that torch adds in
// float in its own order, so they agree to 1e-5 of the sum of the terms' magnitudes (float
// rounding, ~6e-8 per addition, over tens to hundreds of terms), not of the cancelled sum.
TEST(Lsq, PerTensorMatchesTorch) {
  const Fixture& fx = fixture();
  const auto& c = fx.at("lsq_pt.config").values;
  const float s = float(c[0]);
  const auto zp = std::int64_t(c[1]);
  const kd::common::IntGrid g{int(c[2]), int(c[3])};
  const float gf = float(c[4]);
  const auto& x = fx.at("lsq_pt.x").values;
  double ds = 0, dz = 0, ads = 0, adz = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(bits(kd::common::fake_quant(float(x[i]), s, 1.0f / s, zp, g)), bits(float(fx.at("lsq_pt.y").values[i])));
    const auto lg = kd::common::lsq_grad(float(x[i]), float(fx.at("lsq_pt.w").values[i]), s, 1.0f / s, zp, g, gf);
    EXPECT_EQ(bits(lg.dx), bits(float(fx.at("lsq_pt.dx").values[i]))) << i;
    ds += lg.dscale;
    dz += lg.dzero;
    ads += std::abs(lg.dscale);
    adz += std::abs(lg.dzero);
  }
  EXPECT_NEAR(ds, fx.scalar("lsq_pt.dscale"), 1e-5 * ads);
  EXPECT_NEAR(dz, fx.scalar("lsq_pt.dzero"), 1e-5 * adz);
}

TEST(Lsq, PerChannelMatchesTorch) {
  const Fixture& fx = fixture();
  const auto& scales = fx.at("pc.scales").values;
  const auto& zps = fx.at("pc.zero_points").values;
  const auto& xr = fx.at("lsq_pc.x");
  const int C = int(xr.shape[0]), K = int(xr.shape[1]);
  const kd::common::IntGrid g = kd::common::int_grid(8, true);
  for (int ch = 0; ch < C; ++ch) {
    const float s = float(scales[ch]);
    double ds = 0, dz = 0, ads = 0, adz = 0;
    for (int k = 0; k < K; ++k) {
      const std::size_t i = std::size_t(ch) * K + k;
      EXPECT_EQ(bits(kd::common::fake_quant(float(xr.values[i]), s, 1.0f / s, std::int64_t(zps[ch]), g)),
                bits(float(fx.at("lsq_pc.y").values[i])));
      const auto lg = kd::common::lsq_grad(float(xr.values[i]), float(fx.at("lsq_pc.w").values[i]), s, 1.0f / s,
                                           std::int64_t(zps[ch]), g, 0.7f);
      EXPECT_EQ(bits(lg.dx), bits(float(fx.at("lsq_pc.dx").values[i])));
      ds += lg.dscale;
      dz += lg.dzero;
      ads += std::abs(lg.dscale);
      adz += std::abs(lg.dzero);
    }
    const double rs = fx.at("lsq_pc.dscale").values[ch], rz = fx.at("lsq_pc.dzero").values[ch];
    EXPECT_NEAR(ds, rs, 1e-5 * ads) << "channel " << ch;
    EXPECT_NEAR(dz, rz, 1e-5 * adz + 1e-12) << "channel " << ch;
  }
}

}  // namespace
