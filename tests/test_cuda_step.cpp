// The whole training step on the CUDA backend (runtime.backend: cuda) against the CPU step:
// the same Trainer, config and data, only the backend differs. Each case runs a few
// optimizer steps and compares every step's losses and gradient norm, then the parameters
// (AdamW moments and masks follow from them on the host).
//  - kd+qat+prune: a teacher with a feature loss (MSE), QAT (int4 group weights with LSQ,
//    int8 static inputs observed on the host, fake quantization from step 1), gradual
//    magnitude pruning, two micro-batches per step, clipping.
//  - each divergence (forward KL, reverse KL, JSD) with FP8 per-token inputs.
// fp32 GEMMs (CUBLAS_COMPUTE_32F_PEDANTIC): the difference is float rounding in other orders
// (cuBLAS's GEMM blocking, block-tree sums), about 1e-6 relative per op, grown by a few steps
// of AdamW: losses within 1e-4 relative; parameters within 2e-3 absolute (lr 1e-2: Adam's
// first updates move each weight by ±lr, and an element whose gradient is near 0 may take
// a different sign; FakeQuant rounding boundaries can flip the same way). Skipped, with the
// reason, where no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "data/synthetic.h"
#include "kernels/cuda/cuda_ops.h"
#include "trainer/config/config.h"
#include "trainer/run/backend.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"

namespace {

namespace cu = kd::kern::cuda;

const char* kBase = R"(
model: {vocab: 384, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 160, tie_embeddings: false}
teacher: {vocab: 384, d_model: 64, n_layers: 2, n_heads: 2, n_kv_heads: 2, d_ff: 192, tie_embeddings: true}
distill: {alpha: 0.4, temperature: 2.0, divergence: forward_kl, logit_chunk_rows: 40}
optim: {lr: 1.0e-2, weight_decay: 0.1, grad_clip: 0.5, schedule: constant}
train: {steps: 4, batch_size: 3, seq_len: 33, grad_accum: 2, seed: 5, threads: 1}
data: {kind: markov}
)";

struct Run {
  std::vector<kd::StepReport> steps;
  std::vector<float> params;
};

// The student alone, trained on labels (the `train` command's step).
const char* kStudentOnly = R"(
model: {vocab: 384, d_model: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, d_ff: 160, tie_embeddings: true}
optim: {lr: 1.0e-2, weight_decay: 0.1, grad_clip: 0, schedule: constant}
train: {steps: 2, batch_size: 2, seq_len: 40, seed: 9, threads: 1}
data: {kind: markov}
)";

Run run(const std::vector<std::string>& overrides, bool cuda, int steps, const char* base = kBase) {
  std::vector<std::string> o = overrides;
  o.push_back(cuda ? "runtime.backend=cuda" : "runtime.backend=cpu");
  const kd::Config cfg = kd::load_config_text(base, "test_cuda_step", o);
  if (cuda) kd::start_backend(cfg, 0);
  kd::set_threads(1);
  kd::Trainer t(cfg);
  auto source = kd::make_synthetic(cfg, kd::Stream::train);
  Run r;
  for (int i = 0; i < steps; ++i) r.steps.push_back(t.step(*source));
  r.params.assign(t.student_params(), t.student_params() + t.student_table().total());
  return r;
}

void expect_close(const Run& cpu, const Run& gpu, double param_tol) {
  ASSERT_EQ(cpu.steps.size(), gpu.steps.size());
  for (std::size_t i = 0; i < cpu.steps.size(); ++i) {
    const auto &a = cpu.steps[i], &b = gpu.steps[i];
    auto rel = [](double x, double y) { return std::fabs(x - y) / std::max(1e-3, std::fabs(x)); };
    EXPECT_LT(rel(a.loss.loss, b.loss.loss), 1e-4) << "step " << i << ": loss " << a.loss.loss << " vs " << b.loss.loss;
    EXPECT_LT(rel(a.loss.ce, b.loss.ce), 1e-4) << "step " << i << ": ce";
    EXPECT_LT(rel(a.loss.kd, b.loss.kd), 1e-4) << "step " << i << ": kd";
    EXPECT_LT(rel(a.loss.feat, b.loss.feat), 1e-4) << "step " << i << ": feat";
    EXPECT_LT(rel(a.grad_norm, b.grad_norm), 1e-3) << "step " << i << ": grad norm";
    EXPECT_EQ(a.prune_event, b.prune_event) << "step " << i;
    EXPECT_EQ(a.skipped, b.skipped) << "step " << i;
  }
  ASSERT_EQ(cpu.params.size(), gpu.params.size());
  double worst = 0;
  std::size_t at = 0, zeros_cpu = 0, zeros_gpu = 0;
  for (std::size_t i = 0; i < cpu.params.size(); ++i) {
    const double d = std::fabs(double(cpu.params[i]) - double(gpu.params[i]));
    if (d > worst) worst = d, at = i;
    zeros_cpu += cpu.params[i] == 0.0f;
    zeros_gpu += gpu.params[i] == 0.0f;
  }
  EXPECT_LT(worst, param_tol) << "largest parameter difference at element " << at;
  EXPECT_EQ(zeros_cpu, zeros_gpu) << "pruned (zero) weights";
  std::printf("  steps %zu, final loss cpu %.6f gpu %.6f, largest parameter difference %.3g\n", cpu.steps.size(),
              cpu.steps.back().loss.loss, gpu.steps.back().loss.loss, worst);
}

TEST(CudaStep, KdQatPruneStepMatchesTheCpuStep) {
  if (const std::string why = cu::unavailable_reason(); !why.empty()) GTEST_SKIP() << "no GPU: " << why;
  const std::vector<std::string> o{
      "distill.feature.beta=0.5", "distill.feature.layers=[[1, 1], [2, 2]]",
      "quant.weight=int4:g32", "quant.activation=int8:tensor", "quant.fake_quant_start=1", "quant.learn_scales=true",
      "prune.criterion=magnitude_global", "prune.schedule=gradual", "prune.sparsity=0.5", "prune.start=0",
      "prune.end=3", "prune.every=1"};
  expect_close(run(o, false, 4), run(o, true, 4), 2e-3);
}

TEST(CudaStep, EveryDivergenceWithTokenFp8Inputs) {
  if (const std::string why = cu::unavailable_reason(); !why.empty()) GTEST_SKIP() << "no GPU: " << why;
  for (const char* div : {"forward_kl", "reverse_kl", "jsd"}) {
    SCOPED_TRACE(div);
    const std::vector<std::string> o{std::string("distill.divergence=") + div, "quant.weight=int8:channel",
                                     "quant.activation=fp8_e4m3:token", "quant.fake_quant_start=0"};
    expect_close(run(o, false, 3), run(o, true, 3), 2e-3);
  }
}

TEST(CudaStep, StudentAloneOnLabels) {
  if (const std::string why = cu::unavailable_reason(); !why.empty()) GTEST_SKIP() << "no GPU: " << why;
  expect_close(run({}, false, 2, kStudentOnly), run({}, true, 2, kStudentOnly), 2e-3);
}

}  // namespace
