// The distillation step's micro-batches on the CUDA backend (runtime.backend: cuda):
// teacher trunk (frozen) → student trunk → [row chunks: both heads → CE + divergence → head
// backward] → feature loss → student backward, as DistillStep on the CPU, every op on the
// device (llama_trunk.h with CudaOps, kernels/cuda's loss), activations and logit chunks in
// device buffers sized once at construction (nothing is allocated in the step loop).
//
// The step's state stays where the CPU step keeps it: the trainer's host flat buffer holds
// the fp32 master weights, the optimizer, the QAT weight quantizers and the pruning masks.
// begin_step uploads the parameters the forward reads (QAT: the fake-quantized copy) once
// per optimizer step, the micro-batches accumulate gradients on the device, and end_step
// downloads them once, so the rest of the step (NaN policy, clipping, AdamW, masks,
// data-parallel reduction) is the CPU's code, unchanged.
//
// Not on this backend (the config is refused, trainer/setup/backend.h): a tensor-parallel
// teacher, top-k targets (teacher cache, teacher ranks).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "trainer/distill/distill_step.h"
#include "trainer/model/llama_cuda.h"
#include "trainer/quant/qat_cuda.h"

namespace kd {

class CudaDistillStep {
 public:
  // qat (nullable): the student's quantizers; student_math / teacher_math: GEMM modes.
  // n_params: the student's flat buffer (with its ZeRO padding).
  CudaDistillStep(const LlamaLayout& student, const LlamaLayout* teacher, DistillSection spec,
                  std::vector<std::size_t> projection_offsets, int batch, int seq, std::size_t n_params,
                  quant::QatState* qat, kern::cuda::MathMode student_math, kern::cuda::MathMode teacher_math);
  ~CudaDistillStep();

  // The teacher's weights (host, its table's layout): uploaded, kept for the run.
  void set_teacher(const float* params, std::size_t n);
  // Before a step's micro-batches: the first n of params (host: the table, without the
  // ZeRO padding) uploaded, device gradients zeroed.
  void begin_step(const float* params, std::size_t n);
  // As DistillStep::run, tokens and labels on the host.
  StepLoss run(const std::int32_t* tokens, const std::int32_t* labels, double loss_scale, PhaseTimes* times,
               const BatchTotals* totals);
  // After the micro-batches: the step's gradients into grads (host, n_params).
  void end_step(float* grads);
  // The host buffers begin_step reads and end_step writes every step: page-locked for the
  // step's life (faster copies). Returns whether they could be.
  bool pin_host(float* params, float* grads, std::size_t n);
  // Device memory held: parameters, gradients, activations, loss buffers.
  std::size_t device_bytes() const;

 private:
  const LlamaLayout& student_;
  const LlamaLayout* teacher_;
  DistillSection spec_;
  std::vector<std::size_t> proj_;
  int batch_, seq_;
  std::size_t n_params_;
  CudaOps sops_, tops_;
  std::unique_ptr<quant::CudaQatHook> hook_;
  kern::cuda::DeviceBuffer<float> params_, grads_, tparams_;
  kern::cuda::DeviceBuffer<std::int32_t> tokens_, labels_;
  CudaTrainActivations sact_;
  CudaFrozenActivations tact_;
  kern::cuda::DeviceBuffer<float> loss_buf_;  // logit chunks, dfinal, feature buffers
  float *zs_ = nullptr, *zt_ = nullptr, *dfinal_ = nullptr, *target_ = nullptr, *dtarget_ = nullptr;
  std::vector<float*> dhidden_;
  std::vector<const float*> dhidden_view_;
  std::vector<kern::LossRow> rows_;
  std::unique_ptr<kern::cuda::PinnedHost> pinned_params_, pinned_grads_;
};

}  // namespace kd
