// The Llama teacher forward and head on the CUDA backend (trainer/model/llama_cuda.h)
// against the CPU backend's frozen forward, on a small GQA model with untied and tied heads,
// in each GEMM math mode. Skipped, with the reason, where no GPU is usable.
// Tolerances, relative to the largest logit: fp32 1e-4 (every op's float rounding through
// two blocks), tf32 1e-2 (10-bit mantissas into every GEMM), bf16 4e-2 (8-bit mantissas).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "trainer/model/llama_cuda.h"

namespace {

namespace cu = kd::kern::cuda;

TEST(CudaModel, TeacherForwardAndHeadMatchTheCpu) {
  if (const std::string why = cu::unavailable_reason(); !why.empty()) GTEST_SKIP() << "no GPU: " << why;
  for (const bool tied : {false, true}) {
    kd::ModelSpec s;
    s.vocab = 300;
    s.d_model = 128;
    s.n_layers = 2;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.d_ff = 352;
    s.tie_embeddings = tied;
    kd::ParamTable table;
    const kd::LlamaLayout lay(s, table);
    std::vector<float> params(table.total());
    lay.init(params.data(), 7, 0.05);
    const int batch = 2, seq = 45, m = batch * seq;
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(m));
    std::mt19937 rng(3);
    for (auto& t : tokens) t = std::int32_t(rng() % std::uint32_t(s.vocab));

    kd::FrozenActivations<float> a;
    a.build(s, batch, seq, 64, {});
    kd::llama_forward_frozen(lay, params.data(), tokens.data(), a);
    std::vector<float> logits(std::size_t(m) * s.vocab);
    kd::head_forward_frozen(lay, params.data(), logits.data(), a.final_norm, m);
    double scale = 0;
    for (const float v : logits) scale = std::max(scale, double(std::fabs(v)));

    cu::DeviceBuffer<float> d_params(params.size()), d_logits(logits.size());
    cu::DeviceBuffer<std::int32_t> d_tokens(tokens.size());
    d_params.upload(params.data());
    d_tokens.upload(tokens.data());
    kd::CudaFrozenActivations ca;
    ca.build(kd::CudaOps{}, s, batch, seq, 0, {});
    for (const cu::MathMode mode : {cu::MathMode::fp32, cu::MathMode::tf32, cu::MathMode::bf16}) {
      kd::llama_forward_frozen_cuda(kd::CudaOps{mode}, lay, d_params.data(), d_tokens.data(), ca);
      kd::head_forward_cuda(kd::CudaOps{mode}, lay, d_params.data(), d_logits.data(), ca.final_norm, m);
      std::vector<float> got(logits.size());
      d_logits.download(got.data());
      double worst = 0;
      for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - logits[i]));
      const double tol = mode == cu::MathMode::fp32 ? 1e-4 : mode == cu::MathMode::tf32 ? 1e-2 : 4e-2;
      EXPECT_LE(worst, tol * scale) << (tied ? "tied" : "untied") << " head, math " << cu::math_mode_name(mode)
                                    << ": worst logit difference " << worst << " of " << scale;
      std::cout << "[ cuda ] " << (tied ? "tied" : "untied") << " " << cu::math_mode_name(mode)
                << ": worst logit difference " << worst << " of " << scale << "\n";
    }
  }
}

}  // namespace
