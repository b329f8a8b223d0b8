// A teacher held in bfloat16 (trainer/distill/bf16_teacher.h, kern::linear_forward_bf16):
//  * the tiled bf16 GEMM equals a float GEMM on the bf16-rounded weights (the same
//    products; tiles only split the output columns: 1e-6 relative), with and without
//    accumulation, for widths that are not a multiple of the tile;
//  * the bf16 teacher's logits are the float teacher's within the rounding of its weights
//    to 8 significant bits (2e-2 of the logit scale for this 3-layer model);
//  * after release_float_linears the forward gives the same logits bit for bit: it no
//    longer reads the float32 copies of the linear weights, whose pages went back.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/common/bf16.h"
#include "kernels/kernels.h"
#include "trainer/distill/bf16_teacher.h"
#include "trainer/model/llama.h"
#include "trainer/util/aligned_buffer.h"

namespace {

TEST(Bf16Gemm, EqualsTheFloatGemmOnRoundedWeights) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const int n : {5, 256, 300, 700}) {
    const int m = 7, k = 33;
    std::vector<float> x(std::size_t(m) * k), wf(std::size_t(n) * k), y0(std::size_t(m) * n), y1(y0.size());
    std::vector<std::uint16_t> wb(wf.size());
    for (auto& v : x) v = nd(rng);
    for (std::size_t i = 0; i < wf.size(); ++i) {
      wb[i] = kd::common::to_bf16(nd(rng));
      wf[i] = kd::common::from_bf16(wb[i]);
    }
    for (const bool acc : {false, true}) {
      for (std::size_t i = 0; i < y0.size(); ++i) y0[i] = y1[i] = acc ? float(i % 5) : 0.0f;
      kd::kern::linear_forward<float>(y0.data(), x.data(), wf.data(), m, n, k, acc);
      kd::kern::linear_forward_bf16(y1.data(), x.data(), wb.data(), m, n, k, acc);
      // the same products summed in another order (the float GEMM's small-M path or sgemm):
      // the float32 bound of a k-term sum, 2·k·ε·Σ|x·w|, plus the accumulated start value's ulp
      for (int r = 0; r < m; ++r) {
        for (int j = 0; j < n; ++j) {
          double mag = 0;
          for (int c = 0; c < k; ++c) mag += std::abs(double(x[std::size_t(r) * k + c]) * wf[std::size_t(j) * k + c]);
          const std::size_t i = std::size_t(r) * n + j;
          EXPECT_NEAR(y1[i], y0[i], 2.0 * k * 1.1920929e-7 * mag + 1e-6f * std::abs(y0[i])) << n << " " << i;
        }
      }
    }
  }
}

struct Teacher {
  kd::ModelSpec spec;
  kd::ParamTable table;
  std::unique_ptr<kd::LlamaLayout> layout;
  kd::AlignedBuffer<float> w;
  Teacher() {
    spec.vocab = 61;
    spec.d_model = 64;
    spec.n_layers = 3;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.d_ff = 512;  // gate/up 256 KB, down 128 KB: whole pages to release
    spec.tie_embeddings = false;
    layout = std::make_unique<kd::LlamaLayout>(spec, table);
    w.resize(table.total());
    layout->init(w.data(), 9, 0.1);
  }
  std::vector<float> logits(const std::vector<std::int32_t>& tokens, kd::LinearHook<float>* hook) {
    kd::FrozenActivations<float> a;
    a.build(spec, 1, int(tokens.size()), 4, {});
    kd::llama_forward_frozen<float>(*layout, w.data(), tokens.data(), a, hook);
    std::vector<float> z(tokens.size() * std::size_t(spec.vocab));
    kd::head_forward_frozen<float>(*layout, w.data(), z.data(), a.final_norm, int(tokens.size()), hook);
    return z;
  }
};

TEST(Bf16Teacher, LogitsWithinBf16RoundingAndNoFloatLinearsRead) {
  Teacher t;
  std::vector<std::int32_t> tokens(13);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = std::int32_t((i * 7 + 3) % 61);
  const auto exact = t.logits(tokens, nullptr);
  kd::Bf16Teacher bf(*t.layout, t.w.data());
  const auto rounded = t.logits(tokens, &bf);
  float scale = 0, worst = 0;
  for (std::size_t i = 0; i < exact.size(); ++i) {
    scale = std::max(scale, std::abs(exact[i]));
    worst = std::max(worst, std::abs(rounded[i] - exact[i]));
  }
  EXPECT_GT(worst, 0.0f) << "bf16 rounding should show";
  EXPECT_LE(worst, 2e-2f * scale);
  std::printf("bf16 teacher: largest logit difference %.3g of %.3g; %zu bytes of bf16 weights\n", double(worst),
              double(scale), bf.bytes());
  const std::size_t released = bf.release_float_linears(t.w.data());
  EXPECT_GT(released, std::size_t(256 * 1024));
  EXPECT_EQ(t.logits(tokens, &bf), rounded);
}

}  // namespace
