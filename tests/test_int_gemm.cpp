// Integer GEMM kernels (kernels/int_gemm.h) against "dequantize the codes to fp32, then
// GEMM in double":
//  * linear_int8 sums (qx - zx)(qw - zw) exactly in int32 per group, so it differs from the
//    reference only by float rounding: each group's sum converted to float (u = 2^-24
//    relative), times the scale product (2 roundings), accumulated over G groups in y
//    (≤ G·u), plus the reference's own rounding of each dequantized x and w to float (2u).
//    Tolerance: (G + 6)·u · Σ|terms| (Σ|terms| = Σ_k |x_k w_k| + |y_init|).
//  * linear_w4a16 uses the same fp32 weights as the reference; only sgemm's summation order
//    differs: K·u · Σ|terms| (the worst-case bound of a K-term float sum).
//  * Saturation: all-extreme codes at K = 4096 must come out exactly (with scales 1 every
//    group sum and running total is an integer exact in float), which an int16-saturating
//    scheme (vpmaddubsw on int8 × int8) would miss.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/common/quant_math.h"
#include "kernels/cpu/int_gemm_tile.h"
#include "kernels/int_gemm.h"

namespace {

using kd::kern::QuantWeight;

constexpr double kU = 1.0 / (1 << 24);  // unit roundoff of float

// A quantized weight with its storage, built from plain int8 codes.
struct TestWeight {
  int n, k, bits, group;
  std::vector<std::int8_t> codes;   // (N,K), the reference's view
  std::vector<std::uint8_t> packed; // bits 4
  std::vector<float> scale;
  std::vector<std::int32_t> zero;   // empty = symmetric
  QuantWeight view() const {
    QuantWeight w;
    w.n = n;
    w.k = k;
    w.bits = bits;
    w.group = group;
    w.q8 = bits == 8 ? codes.data() : nullptr;
    w.q4 = bits == 4 ? packed.data() : nullptr;
    w.scale = scale.data();
    w.zero = zero.empty() ? nullptr : zero.data();
    return w;
  }
  int z(int row, int col) const { return zero.empty() ? 0 : zero[std::size_t(row) * (k / group) + col / group]; }
  float s(int row, int col) const { return scale[std::size_t(row) * (k / group) + col / group]; }
  void pack() {
    if (bits != 4) return;
    packed.resize(codes.size() / 2);
    kd::kern::pack_int4(packed.data(), codes.data(), codes.size());
  }
};

TestWeight random_weight(std::mt19937& rng, int n, int k, int bits, int group, bool asym) {
  TestWeight w{n, k, bits, group, {}, {}, {}, {}};
  const int qmin = bits == 8 ? -128 : -8, qmax = bits == 8 ? 127 : 7;
  std::uniform_int_distribution<int> code(qmin, qmax);
  std::uniform_real_distribution<float> sc(0.001f, 0.05f);
  w.codes.resize(std::size_t(n) * k);
  for (auto& c : w.codes) c = std::int8_t(code(rng));
  w.scale.resize(std::size_t(n) * (k / group));
  for (auto& s : w.scale) s = sc(rng);
  if (asym) {
    w.zero.resize(w.scale.size());
    for (auto& z : w.zero) z = code(rng);
  }
  w.pack();
  return w;
}

// Activations as codes plus how to dequantize them.
struct TestActs {
  int m, k;
  std::vector<std::int8_t> q;
  std::vector<float> scale;  // m (per row) or 1
  bool per_row;
  int zero;
  float value(int r, int c) const {
    return float(q[std::size_t(r) * k + c] - zero) * scale[per_row ? r : 0];
  }
};

std::vector<float> random_floats(std::mt19937& rng, int m, int k) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(std::size_t(m) * k);
  for (int r = 0; r < m; ++r)  // rows of very different magnitude, as tokens are
    for (int c = 0; c < k; ++c) x[std::size_t(r) * k + c] = nd(rng) * float(1 + r % 5) * (c % 17 == 0 ? 8.0f : 1.0f);
  return x;
}

TestActs quantize(const std::vector<float>& x, int m, int k, bool dynamic) {
  TestActs a{m, k, std::vector<std::int8_t>(std::size_t(m) * k), {}, dynamic, 0};
  if (dynamic) {
    a.scale.resize(m);
    kd::kern::quantize_rows_int8(a.q.data(), a.scale.data(), x.data(), m, k);
  } else {
    a.scale = {0.03f};
    a.zero = 11;  // asymmetric: a calibrated range that is not centred on 0
    kd::kern::quantize_rows_int8_static(a.q.data(), x.data(), m, k, a.scale[0], a.zero);
  }
  return a;
}

// Reference: dequantize both operands to fp32, multiply in double. Also Σ|terms|.
void reference(std::vector<double>& y, std::vector<double>& sum_abs, const TestActs& a, const TestWeight& w,
               const std::vector<float>& y_init) {
  y.assign(std::size_t(a.m) * w.n, 0.0);
  sum_abs.assign(y.size(), 0.0);
  for (int r = 0; r < a.m; ++r)
    for (int n = 0; n < w.n; ++n) {
      double acc = y_init.empty() ? 0.0 : y_init[std::size_t(r) * w.n + n], sa = std::fabs(acc);
      for (int c = 0; c < w.k; ++c) {
        const float wd = float(w.codes[std::size_t(n) * w.k + c] - w.z(n, c)) * w.s(n, c);
        const double t = double(a.value(r, c)) * double(wd);
        acc += t;
        sa += std::fabs(t);
      }
      y[std::size_t(r) * w.n + n] = acc;
      sum_abs[std::size_t(r) * w.n + n] = sa;
    }
}

struct Case {
  int m, n, k, bits, group;
  bool asym_w, dynamic_act, accumulate;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << "m" << c.m << " n" << c.n << " k" << c.k << " w" << c.bits << " g" << c.group
            << (c.asym_w ? " asym" : " sym") << (c.dynamic_act ? " dyn" : " static") << (c.accumulate ? " acc" : "");
}

class IntLinear : public ::testing::TestWithParam<Case> {};

TEST_P(IntLinear, MatchesDequantizedDoubleGemm) {
  const Case c = GetParam();
  std::mt19937 rng(1234 + c.m * 7 + c.n * 13 + c.k);
  const TestWeight w = random_weight(rng, c.n, c.k, c.bits, c.group, c.asym_w);
  const std::vector<float> x = random_floats(rng, c.m, c.k);
  const TestActs a = quantize(x, c.m, c.k, c.dynamic_act);
  std::vector<float> y_init;
  if (c.accumulate) y_init = random_floats(rng, c.m, c.n);
  std::vector<double> ref, sum_abs;
  reference(ref, sum_abs, a, w, y_init);

  std::vector<float> y = c.accumulate ? y_init : std::vector<float>(std::size_t(c.m) * c.n, 1e30f);
  const kd::kern::PreparedWeight pw = kd::kern::prepare_weight(w.view());
  kd::kern::linear_int8(y.data(), a.q.data(), a.scale.data(), a.per_row, a.zero, pw, c.m, c.accumulate);
  const double groups = c.k / c.group;
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double tol = (groups + 6) * kU * sum_abs[i] + 1e-30;
    ASSERT_NEAR(y[i], ref[i], tol) << c << " at row " << i / c.n << " col " << i % c.n;
    worst = std::max(worst, std::fabs(y[i] - ref[i]) / (kU * sum_abs[i] + 1e-30));
  }
  RecordProperty("worst_error_in_u_sum_abs", std::to_string(worst));

  // The one-call overload prepares the same way: bit-identical.
  std::vector<float> y2 = c.accumulate ? y_init : std::vector<float>(y.size(), -7.0f);
  kd::kern::linear_int8(y2.data(), a.q.data(), a.scale.data(), a.per_row, a.zero, w.view(), c.m, c.accumulate);
  ASSERT_EQ(0, std::memcmp(y.data(), y2.data(), y.size() * sizeof(float))) << c;

  // 4-bit weights run on int8_quads where they fit; the int16_pairs layout computes the
  // same exact integers, so the same bits.
  if (c.bits == 4) {
    EXPECT_EQ(pw.layout, c.group % 8 == 0 || c.group == c.k ? kd::kern::IntLayout::int8_quads
                                                             : kd::kern::IntLayout::int16_pairs);
    const auto pairs = kd::kern::prepare_weight(w.view(), kd::kern::IntLayout::int16_pairs);
    std::vector<float> y3 = c.accumulate ? y_init : std::vector<float>(y.size(), -7.0f);
    kd::kern::linear_int8(y3.data(), a.q.data(), a.scale.data(), a.per_row, a.zero, pairs, c.m, c.accumulate);
    ASSERT_EQ(0, std::memcmp(y.data(), y3.data(), y.size() * sizeof(float))) << c << " int16_pairs";
  }
}

TEST_P(IntLinear, WeightOnlyMatchesDequantizedDoubleGemm) {
  const Case c = GetParam();
  std::mt19937 rng(99 + c.m * 7 + c.n * 13 + c.k);
  const TestWeight w = random_weight(rng, c.n, c.k, c.bits, c.group, c.asym_w);
  const std::vector<float> x = random_floats(rng, c.m, c.k);
  std::vector<float> y_init;
  if (c.accumulate) y_init = random_floats(rng, c.m, c.n);
  std::vector<float> y = c.accumulate ? y_init : std::vector<float>(std::size_t(c.m) * c.n, 1e30f);
  kd::kern::linear_w4a16(y.data(), x.data(), w.view(), c.m, c.accumulate);
  for (int r = 0; r < c.m; ++r)
    for (int n = 0; n < c.n; ++n) {
      const std::size_t i = std::size_t(r) * c.n + n;
      double acc = y_init.empty() ? 0.0 : y_init[i], sa = std::fabs(acc);
      for (int k = 0; k < c.k; ++k) {
        const float wd = float(w.codes[std::size_t(n) * c.k + k] - w.z(n, k)) * w.s(n, k);
        const double t = double(x[std::size_t(r) * c.k + k]) * wd;
        acc += t;
        sa += std::fabs(t);
      }
      ASSERT_NEAR(y[i], acc, (c.k + 2) * kU * sa + 1e-30) << c << " at row " << r << " col " << n;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, IntLinear,
    ::testing::Values(
        // int8 per output channel; odd K (padded pair), m = 1 and 3, n off the 16-panel
        Case{64, 48, 256, 8, 256, false, true, false}, Case{3, 37, 129, 8, 129, false, true, false},
        Case{1, 20, 768, 8, 768, false, true, true},
        // int8 groups 32 / 64 / 128, symmetric and asymmetric weights, static asym acts;
        // m = 97 and 200 cross the 96-row block, n = 130 the 64-channel task
        Case{5, 33, 128, 8, 32, false, true, false}, Case{97, 70, 256, 8, 64, true, false, false},
        Case{13, 33, 384, 8, 128, false, false, true}, Case{200, 130, 256, 8, 128, true, true, false},
        // int4 (W4A8), group 128 symmetric and asymmetric, and group 32
        Case{7, 100, 256, 4, 128, false, true, false}, Case{200, 130, 512, 4, 128, true, true, false},
        Case{3, 17, 256, 4, 128, true, false, true}, Case{1, 16, 64, 4, 32, true, false, false},
        Case{6, 5, 2, 4, 2, true, true, false}));

// K = 4096 of extreme codes: 127·127, -128·-128 and, with zero points, (-255)·255 and
// (±255)·(±15) products (4 bits: on both layouts; the int8_quads one sees unsigned
// activations 0 and 255). Scales 1, so every group sum and their total are integers exact
// in float: the result must be exact.
struct Extreme {
  int bits, group, xcode, xzero, wcode, wzero;
};

TEST(IntLinearExtreme, NoSaturationAtK4096) {
  const int m = 7, n = 19, k = 4096;
  for (const Extreme e : {Extreme{8, k, 127, 0, 127, 0}, Extreme{8, k, -128, 0, -128, 0}, Extreme{8, k, -127, 0, -128, 0},
                          Extreme{8, 128, -128, 127, 127, -128}, Extreme{8, k, 127, -128, -128, 127},
                          Extreme{4, 128, -128, 127, 7, -8}, Extreme{4, k, -128, 127, -8, 7}, Extreme{4, 128, 127, 0, -8, 0},
                          Extreme{4, 128, 127, -128, 7, -8}, Extreme{4, k, 127, -128, -8, 7}, Extreme{4, 64, -128, 0, -8, 0}}) {
    TestWeight w{n, k, e.bits, e.group, std::vector<std::int8_t>(std::size_t(n) * k, std::int8_t(e.wcode)), {},
                 std::vector<float>(std::size_t(n) * (k / e.group), 1.0f),
                 std::vector<std::int32_t>(std::size_t(n) * (k / e.group), e.wzero)};
    w.pack();
    const std::vector<std::int8_t> xq(std::size_t(m) * k, std::int8_t(e.xcode));
    const float one = 1.0f;
    const double expect = double(e.xcode - e.xzero) * (e.wcode - e.wzero) * k;
    for (const auto layout : {kd::kern::IntLayout::int16_pairs, kd::kern::IntLayout::int8_quads}) {
      if (e.bits == 8 && layout == kd::kern::IntLayout::int8_quads) continue;
      std::vector<float> y(std::size_t(m) * n, 0.0f);
      kd::kern::linear_int8(y.data(), xq.data(), &one, false, e.xzero, kd::kern::prepare_weight(w.view(), layout), m, false);
      for (float v : y)
        ASSERT_EQ(double(v), expect) << "bits " << e.bits << " x " << e.xcode << " w " << e.wcode << " layout " << int(layout);
    }
  }
}

TEST(IntLinear, SameBitsForOneAndTwoThreads) {
  std::mt19937 rng(5);
  const int m = 150, n = 200, k = 256;
  const TestWeight w = random_weight(rng, n, k, 4, 64, true);
  const TestActs a = quantize(random_floats(rng, m, k), m, k, true);
  const kd::kern::PreparedWeight pw = kd::kern::prepare_weight(w.view());
  std::vector<float> y1(std::size_t(m) * n), y2(y1.size());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  kd::kern::linear_int8(y1.data(), a.q.data(), a.scale.data(), true, 0, pw, m, false);
  omp_set_num_threads(2);
  kd::kern::linear_int8(y2.data(), a.q.data(), a.scale.data(), true, 0, pw, m, false);
  omp_set_num_threads(threads);
  EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
}

TEST(IntLinear, RejectsMalformedWeights) {
  std::mt19937 rng(6);
  const TestWeight good = random_weight(rng, 4, 96, 8, 32, true);
  QuantWeight w = good.view();
  EXPECT_NO_THROW(kd::kern::prepare_weight(w));
  w.group = 3;  // divides 96 but odd: K pairs would straddle groups
  EXPECT_THROW(kd::kern::prepare_weight(w), std::invalid_argument);
  EXPECT_THROW(kd::kern::prepare_weight(good.view(), kd::kern::IntLayout::int8_quads), std::invalid_argument);  // 8 bits
  w = good.view();
  w.bits = 5;
  EXPECT_THROW(kd::kern::prepare_weight(w), std::invalid_argument);
  std::vector<std::int32_t> zero = good.zero;
  zero[5] = 128;  // off the int8 grid: qw - zw would leave -255..255
  w = good.view();
  w.zero = zero.data();
  EXPECT_THROW(kd::kern::prepare_weight(w), std::invalid_argument);
  EXPECT_THROW(kd::kern::linear_w4a16(nullptr, nullptr, w, 1, false), std::invalid_argument);
}

// The micro-tiles the build runs (AVX2) against the plain C++ reference, the CPU spec: the
// same exact integers and the same float steps, so the same bits. One 16-channel panel,
// every row count, a partial panel, 1 and several groups, both layouts, (+)=.
TEST(IntTile, BuildKernelMatchesReferenceBitForBit) {
  using kd::kern::IntLayout;
  std::mt19937 rng(11);
  for (const IntLayout layout : {IntLayout::int16_pairs, IntLayout::int8_quads})
    for (const int group : {32, 128})
      for (const int cols : {16, 13})
        for (int rows = 1; rows <= (layout == IntLayout::int8_quads ? kd::kern::detail::kQuadsTileRows
                                                                      : kd::kern::detail::kPairsTileRows);
             ++rows)
          for (const bool acc : {false, true}) {
            const int k = 128, bits = layout == IntLayout::int8_quads ? 4 : 8;
            const TestWeight w = random_weight(rng, cols, k, bits, group, true);
            const kd::kern::PreparedWeight p = kd::kern::prepare_weight(w.view(), layout);
            const TestActs x = quantize(random_floats(rng, rows, k), rows, k, true);
            std::vector<std::int16_t> a16(std::size_t(rows) * p.k_pad, 0);
            std::vector<std::uint8_t> a8(std::size_t(rows) * p.k_pad, 0);
            for (int i = 0; i < rows * k; ++i) {
              a16[std::size_t(i / k) * p.k_pad + i % k] = x.q[i];
              a8[std::size_t(i / k) * p.k_pad + i % k] = std::uint8_t(x.q[i] + 128);
            }
            kd::kern::detail::IntTile t;
            t.a16 = a16.data();
            t.b16 = p.pairs.data();
            t.a8 = a8.data();
            t.b8 = p.quads.data();
            t.bsum = p.sums.data();
            t.act_offset = 128;
            t.lda = p.k_pad;
            t.group_k = group;
            t.groups = k / group;
            t.bscale = p.scales.data();
            t.xscale = x.scale.data();
            t.xscale_stride = 1;
            t.ldy = 16;
            t.rows = rows;
            t.cols = cols;
            t.accumulate = acc;
            std::vector<float> y_init = random_floats(rng, rows, 16), y_fast = y_init, y_ref = y_init;
            t.y = y_fast.data();
            layout == IntLayout::int8_quads ? kd::kern::detail::int_tile_quads(t) : kd::kern::detail::int_tile_pairs(t);
            t.y = y_ref.data();
            layout == IntLayout::int8_quads ? kd::kern::detail::int_tile_quads_reference(t)
                                            : kd::kern::detail::int_tile_pairs_reference(t);
            ASSERT_EQ(0, std::memcmp(y_fast.data(), y_ref.data(), y_ref.size() * sizeof(float)))
                << "layout " << int(layout) << " group " << group << " cols " << cols << " rows " << rows;
          }
}

// ---------------------------------------------------------------- int4 packing
TEST(Int4Pack, RoundTripsEveryPairOfCodes) {
  std::vector<std::int8_t> codes;
  for (int lo = -8; lo <= 7; ++lo)
    for (int hi = -8; hi <= 7; ++hi) {
      codes.push_back(std::int8_t(lo));
      codes.push_back(std::int8_t(hi));
    }
  std::vector<std::uint8_t> packed(codes.size() / 2);
  kd::kern::pack_int4(packed.data(), codes.data(), codes.size());
  std::vector<std::int8_t> back(codes.size(), 99);
  kd::kern::unpack_int4(back.data(), packed.data(), codes.size());
  EXPECT_EQ(codes, back);
  // the convention itself: element 2j low nibble, two's complement
  const std::int8_t two[2] = {-1, 2};
  std::uint8_t byte = 0;
  kd::kern::pack_int4(&byte, two, 2);
  EXPECT_EQ(byte, 0x2F);
  // weight_code reads the packed form the same way
  TestWeight w{16, 32, 4, 32, std::vector<std::int8_t>(codes.begin(), codes.begin() + 512), {},
               std::vector<float>(16, 1.0f), {}};
  w.pack();
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 32; ++c) ASSERT_EQ(kd::kern::weight_code(w.view(), r, c), w.codes[r * 32 + c]);
}

// ---------------------------------------------------------------- activation quantization
TEST(QuantizeRows, DynamicMatchesQuantCodeElementForElement) {
  std::mt19937 rng(7);
  for (int k : {1, 31, 32, 33, 100, 256}) {
    const int m = 9;
    std::vector<float> x = random_floats(rng, m, k);
    for (int c = 0; c < k; ++c) x[std::size_t(4) * k + c] = 0.0f;                   // an all-zero row
    // exact ties: absmax 254 gives scale 2, and odd integers x·0.5 are j + 1/2 (half to even)
    for (int c = 0; c < k; ++c) x[std::size_t(5) * k + c] = float(2 * (c % 127) - 125);
    x[std::size_t(5) * k] = 254.0f;
    for (int c = 0; c < k; ++c) x[std::size_t(7) * k + c] = 1e-40f * float(c % 3 - 1);  // subnormal row
    std::vector<std::int8_t> q(std::size_t(m) * k);
    std::vector<float> scale(m);
    kd::kern::quantize_rows_int8(q.data(), scale.data(), x.data(), m, k);
    for (int r = 0; r < m; ++r) {
      float amax = 0;
      for (int c = 0; c < k; ++c) amax = std::max(amax, std::fabs(x[std::size_t(r) * k + c]));
      const float expect_scale = amax == 0 ? 1.0f : std::max(amax / 127.0f, 1.17549435e-38f);
      ASSERT_EQ(scale[r], expect_scale) << "row " << r << " k " << k;
      const float inv = 1.0f / scale[r];
      for (int c = 0; c < k; ++c) {
        const std::int64_t code = kd::common::quant_code(x[std::size_t(r) * k + c], inv, 0);
        ASSERT_EQ(int(q[std::size_t(r) * k + c]), std::clamp<std::int64_t>(code, -127, 127)) << "row " << r << " col " << c;
      }
    }
  }
}

TEST(QuantizeRows, StaticMatchesQuantCodeElementForElement) {
  std::mt19937 rng(8);
  for (int k : {5, 64, 77}) {
    const int m = 4;
    const std::vector<float> x = random_floats(rng, m, k);  // values past the grid clamp
    const float scale = 0.02f;
    for (int zero : {0, -20, 127}) {
      std::vector<std::int8_t> q(std::size_t(m) * k);
      kd::kern::quantize_rows_int8_static(q.data(), x.data(), m, k, scale, zero);
      for (std::size_t i = 0; i < q.size(); ++i) {
        const std::int64_t code = kd::common::quant_code(x[i], 1.0f / scale, zero);
        ASSERT_EQ(int(q[i]), std::clamp<std::int64_t>(code, -128, 127)) << "element " << i << " zero " << zero;
      }
    }
  }
}

}  // namespace
