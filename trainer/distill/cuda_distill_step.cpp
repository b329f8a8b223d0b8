#include "trainer/distill/cuda_distill_step.h"

#include <omp.h>

#include <algorithm>

#include "base/errors.h"

namespace kd {

namespace cu = kern::cuda;

CudaDistillStep::CudaDistillStep(const LlamaLayout& student, const LlamaLayout* teacher, DistillSection spec,
                                 std::vector<std::size_t> proj, int batch, int seq, std::size_t n_params,
                                 quant::QatState* qat, cu::MathMode student_math, cu::MathMode teacher_math)
    : student_(student), teacher_(teacher), spec_(std::move(spec)), proj_(std::move(proj)), batch_(batch),
      seq_(seq), n_params_(n_params), sops_{student_math}, tops_{teacher_math} {
  const ModelSpec& s = student.spec();
  const bool feature = !proj_.empty();
  KD_ASSERT(!feature || (teacher_ != nullptr && proj_.size() == spec_.feature.layers.size()), "one projection per feature pair");
  std::vector<int> capture;
  if (feature) {
    for (const auto& [student_hidden, teacher_hidden] : spec_.feature.layers) capture.push_back(teacher_hidden);
    std::sort(capture.begin(), capture.end());
    capture.erase(std::unique(capture.begin(), capture.end()), capture.end());
  }
  if (qat != nullptr) hook_ = std::make_unique<quant::CudaQatHook>(*qat);
  params_ = cu::DeviceBuffer<float>(n_params);
  grads_ = cu::DeviceBuffer<float>(n_params);
  const std::size_t m = std::size_t(batch) * std::size_t(seq);
  tokens_ = cu::DeviceBuffer<std::int32_t>(m);
  labels_ = cu::DeviceBuffer<std::int32_t>(m);
  sact_.build(sops_, s, batch, seq, 0, hook_ != nullptr);
  if (teacher_ != nullptr) tact_.build(tops_, teacher_->spec(), batch, seq, 0, capture);

  spec_.logit_chunk_rows = std::max(1, std::min<int>(spec_.logit_chunk_rows, int(m)));
  const std::size_t rows = std::size_t(spec_.logit_chunk_rows);
  const bool teacher_logits = teacher_ != nullptr && spec_.alpha < 1.0;
  std::vector<bool> used(std::size_t(s.n_layers) + 1, false);
  for (const auto& [student_hidden, teacher_hidden] : spec_.feature.layers) {
    if (feature) used[std::size_t(student_hidden)] = true;
  }
  // one device allocation, carved like the host step's loss arena
  Arena<float, cu::DeviceBuffer<float>> ar;
  ar.build([&](Arena<float, cu::DeviceBuffer<float>>& a) {
    zs_ = a.take(rows * std::size_t(s.vocab));
    zt_ = teacher_logits ? a.take(rows * std::size_t(teacher_->spec().vocab)) : nullptr;
    dfinal_ = a.take(m * std::size_t(s.d_model));
    target_ = feature ? a.take(m * std::size_t(s.d_model)) : nullptr;
    dtarget_ = feature ? a.take(m * std::size_t(s.d_model)) : nullptr;
    dhidden_.assign(std::size_t(s.n_layers) + 1, nullptr);
    for (std::size_t k = 0; k < dhidden_.size(); ++k) {
      if (used[k]) dhidden_[k] = a.take(m * std::size_t(s.d_model));
    }
  });
  loss_buf_ = std::move(ar.storage());
  dhidden_view_.assign(dhidden_.begin(), dhidden_.end());
  rows_.resize(m);
}

CudaDistillStep::~CudaDistillStep() = default;

void CudaDistillStep::set_teacher(const float* params, std::size_t n) {
  KD_ASSERT(teacher_ != nullptr, "teacher weights for a step without a teacher");
  tparams_ = cu::DeviceBuffer<float>(n);
  tparams_.upload(params);
}

void CudaDistillStep::begin_step(const float* params, std::size_t n) {
  KD_ASSERT(n <= n_params_, "{} parameters for a buffer of {}", n, n_params_);
  params_.upload_range(params, 0, n);
  cu::fill_zero(grads_.data(), n_params_ * sizeof(float));
  if (hook_) hook_->bind(params_.data(), grads_.data());
}

void CudaDistillStep::end_step(float* grads) { grads_.download(grads); }

bool CudaDistillStep::pin_host(float* params, float* grads, std::size_t n) {
  pinned_params_ = std::make_unique<cu::PinnedHost>(params, n * sizeof(float));
  pinned_grads_ = std::make_unique<cu::PinnedHost>(grads, n * sizeof(float));
  return pinned_params_->pinned() && pinned_grads_->pinned();
}

std::size_t CudaDistillStep::device_bytes() const {
  return (params_.size() + grads_.size() + tparams_.size() + loss_buf_.size()) * sizeof(float) +
         (tokens_.size() + labels_.size()) * sizeof(std::int32_t) + sact_.arena.bytes() + tact_.arena.bytes();
}

StepLoss CudaDistillStep::run(const std::int32_t* tokens, const std::int32_t* labels, double loss_scale,
                              PhaseTimes* times, const BatchTotals* totals) {
  const ModelSpec& s = student_.spec();
  const int m = batch_ * seq_, d = s.d_model, v = s.vocab;
  // phase times need the device to be done with the phase
  auto now = [] {
    cu::synchronize();
    return omp_get_wtime();
  };
  const double t0 = now();
  StepLoss out;
  for (int i = 0; i < m; ++i) out.tokens += labels[i] >= 0 ? 1 : 0;
  KD_CHECK_INPUT(out.tokens > 0, "a micro-batch has no labelled tokens");
  const double n = double(out.tokens);
  const double n_loss = totals ? totals->tokens : n;
  const double feature_share = totals ? double(m) / totals->positions : 1.0;
  tokens_.upload(tokens);
  labels_.upload(labels);
  const float* sp = params_.data();
  float* sg = grads_.data();
  const float* tp = tparams_.data();

  if (teacher_ != nullptr) {
    KD_ASSERT(tparams_.size() > 0, "the CUDA step has no teacher weights (set_teacher)");
    llama_forward_frozen_cuda(tops_, *teacher_, tp, tokens_.data(), tact_);
  }
  const double t1 = now();
  llama_forward_train_cuda(sops_, student_, sp, tokens_.data(), sact_, hook_.get());
  const float* head_in = hook_ ? hook_->forward(-1, LinearInput::head, sact_.final_norm, sact_.in_head, m, d)
                               : sact_.final_norm;
  const double t2 = now();

  const bool feature = !proj_.empty();
  if (feature) {
    for (float* dh : dhidden_) {
      if (dh) cu::fill_zero(dh, sizeof(float) * std::size_t(m) * std::size_t(d));
    }
    const int dt = teacher_->spec().d_model;
    const double scale = spec_.feature.beta / double(spec_.feature.layers.size()) * feature_share * loss_scale;
    for (std::size_t k = 0; k < spec_.feature.layers.size(); ++k) {
      const auto [student_hidden, teacher_hidden] = spec_.feature.layers[k];
      const float* ht = tact_.hidden(teacher_hidden);
      sops_.linear_forward(target_, ht, sp + proj_[k], m, d, dt, false);
      out.feat += cu::feature_loss(dhidden_[std::size_t(student_hidden)], dtarget_,
                                   sact_.hidden[std::size_t(student_hidden)], target_, m, d, spec_.feature.kind,
                                   scale);
      sops_.linear_backward(nullptr, sg + proj_[k], dtarget_, ht, sp + proj_[k], m, d, dt, false);
    }
    out.feat /= double(spec_.feature.layers.size());
  }

  const bool kd = teacher_ != nullptr && spec_.alpha < 1.0;
  const double alpha = teacher_ != nullptr ? spec_.alpha : 1.0;
  kern::DistillLossParams lp = distill_loss_params(spec_, alpha, kd, n_loss, loss_scale);
  if (kd) {
    lp.kd_vocab = std::min(v, teacher_->spec().vocab);
    lp.teacher_ld = teacher_->spec().vocab;
  }
  const float* shead = sp + student_.head();
  float* dshead = sg + student_.head();
  const int rows = spec_.logit_chunk_rows;
  for (int r0 = 0; r0 < m; r0 += rows) {
    const int r = std::min(rows, m - r0);
    const float* hs = head_in + std::size_t(r0) * std::size_t(d);
    sops_.linear_forward(zs_, hs, shead, r, v, d, false);
    if (kd) {
      const int dtm = teacher_->spec().d_model;
      tops_.linear_forward(zt_, tact_.final_norm + std::size_t(r0) * std::size_t(dtm), tp + teacher_->head(), r,
                           teacher_->spec().vocab, dtm, false);
    }
    cu::distill_loss_rows(zs_, rows_.data() + r0, zs_, kd ? zt_ : nullptr, labels_.data() + r0, r, v, lp);
    sops_.linear_backward(dfinal_ + std::size_t(r0) * std::size_t(d), dshead, zs_, hs, shead, r, v, d, false);
  }
  for (int i = 0; i < m; ++i) {
    out.ce += rows_[std::size_t(i)].ce;
    out.kd += rows_[std::size_t(i)].kd;
  }
  out.ce_sum = out.ce;
  out.kd_sum = out.kd;
  out.ce /= n;
  out.kd /= n;
  const double t3 = now();

  if (hook_) hook_->backward(-1, LinearInput::head, dfinal_, sact_.final_norm, m, d);
  llama_backward_cuda(sops_, student_, sp, sg, tokens_.data(), sact_, dfinal_, dhidden_view_, hook_.get());
  const double t4 = now();

  out.loss = distill_total_loss(spec_, alpha, kd, feature, out.ce, out.kd, out.feat);
  if (times != nullptr) times->add(t0, t1, t2, t3, t4);
  return out;
}

}  // namespace kd
