#include "trainer/distill/distill_step.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/common/bf16.h"
#include "base/errors.h"

namespace kd {

std::vector<std::size_t> declare_feature_projections(ParamTable& table, const DistillSection& spec,
                                                     const ModelSpec& student,
                                                     const ModelSpec* teacher) {
  std::vector<std::size_t> offsets;
  if (spec.feature.beta <= 0.0 || spec.feature.layers.empty()) return offsets;
  KD_CHECK_INPUT(teacher != nullptr, "distill.feature: a feature loss needs a teacher");
  for (std::size_t k = 0; k < spec.feature.layers.size(); ++k) {
    const auto [student_hidden, teacher_hidden] = spec.feature.layers[k];
    KD_CHECK_INPUT(student_hidden >= 0 && student_hidden <= student.n_layers,
                   "distill.feature.layers[{}]: student hidden index {} is outside 0..{}", k,
                   student_hidden, student.n_layers);
    KD_CHECK_INPUT(teacher_hidden >= 0 && teacher_hidden <= teacher->n_layers,
                   "distill.feature.layers[{}]: teacher hidden index {} is outside 0..{}", k,
                   teacher_hidden, teacher->n_layers);
    const auto i = table.add("distill.feature_proj." + std::to_string(k) + ".weight",
                             {student.d_model, teacher->d_model}, kAuxiliary);
    offsets.push_back(table[i].offset);
  }
  return offsets;
}

template <class T>
DistillStep<T>::DistillStep(const LlamaLayout& student, const LlamaLayout* teacher,
                            DistillSection spec, std::vector<std::size_t> proj, int batch, int seq,
                            int threads, LinearHook<T>* hook, bool top_k_targets, bool measure_only)
    : student_(student), teacher_(teacher), spec_(std::move(spec)), proj_(std::move(proj)),
      hook_(hook), top_k_(top_k_targets), batch_(batch), seq_(seq) {
  KD_ASSERT(!(top_k_ && teacher_ != nullptr), "top-k targets replace the teacher");
  KD_ASSERT(!(top_k_ && !proj_.empty()), "a feature loss needs the teacher's hidden states");
  const ModelSpec& s = student.spec();
  // Vocabularies may differ only by padding rows; the caller checked that no token of the
  // tokenizer lives there (check_teacher_vocab). The divergence uses the shared prefix.
  const bool feature = !proj_.empty();
  KD_ASSERT(!feature || proj_.size() == spec_.feature.layers.size(), "one projection per feature pair");
  std::vector<int> capture;
  if (feature) {
    for (const auto& [student_hidden, teacher_hidden] : spec_.feature.layers) capture.push_back(teacher_hidden);
    std::sort(capture.begin(), capture.end());
    capture.erase(std::unique(capture.begin(), capture.end()), capture.end());
  }
  if (measure_only) {
    sact_.arena.measure_only();
    tact_.arena.measure_only();
    loss_arena_.measure_only();
  }
  sact_.build(s, batch, seq, threads, hook_ != nullptr);
  if (teacher_ != nullptr) tact_.build(teacher_->spec(), batch, seq, threads, capture);

  const std::size_t m = std::size_t(batch) * seq;
  spec_.logit_chunk_rows = std::max(1, std::min<int>(spec_.logit_chunk_rows, int(m)));
  const std::size_t rv = std::size_t(spec_.logit_chunk_rows) * s.vocab;
  std::vector<bool> used(s.n_layers + 1, false);
  for (const auto& [student_hidden, teacher_hidden] : spec_.feature.layers) {
    if (feature) used[student_hidden] = true;
  }
  loss_arena_.build([&](Arena<T>& ar) {
    zs_ = ar.take(rv);
    // teacher logits: of the teacher here, or received in full from a teacher rank
    zt_ = uses_teacher_logits() ? ar.take(std::size_t(spec_.logit_chunk_rows) * teacher_->spec().vocab)
          : top_k_            ? ar.take(std::size_t(spec_.logit_chunk_rows) * s.vocab)
                              : nullptr;
    dfinal_ = ar.take(m * s.d_model);
    target_ = feature ? ar.take(m * s.d_model) : nullptr;
    dtarget_ = feature ? ar.take(m * s.d_model) : nullptr;
    dhidden_.assign(s.n_layers + 1, nullptr);
    for (int k = 0; k <= s.n_layers; ++k) {
      if (used[k]) dhidden_[k] = ar.take(m * s.d_model);
    }
  });
  dhidden_view_.assign(dhidden_.begin(), dhidden_.end());
  rows_.resize(m);
}

template <class T>
std::size_t DistillStep<T>::arena_bytes() const {
  return sact_.arena.bytes() + tact_.arena.bytes() + loss_arena_.bytes();
}

template <class T>
void DistillStep<T>::logits_chunk(T* out, const T* hidden, const T* head, int rows, int vocab,
                                  int d) const {
  kern::linear_forward<T>(out, hidden, head, rows, vocab, d, false);
}

template <class T>
void DistillStep<T>::teacher_logits(const T* hidden, const T* tp, int rows) {
  const int dt = teacher_->spec().d_model, vt = teacher_->spec().vocab;
  if (teacher_hook_ && teacher_hook_->linear(-1, LinearInput::head, zt_, const_cast<T*>(hidden), tp + teacher_->head(),
                                             rows, vt, dt, false)) {
    return;
  }
  logits_chunk(zt_, hidden, tp + teacher_->head(), rows, vt, dt);
}

template <class T>
StepLoss DistillStep<T>::run(const T* sp, T* sg, const T* tp, const std::int32_t* tokens,
                             const std::int32_t* labels, double loss_scale, PhaseTimes* times,
                             const BatchTotals* totals, const TopKTargets* targets, const std::uint8_t* kd_only) {
  KD_ASSERT(top_k_ == (targets != nullptr) || spec_.alpha >= 1.0, "top-k targets {} but {} given",
            top_k_ ? "expected" : "not expected", targets ? "some" : "none");
  const ModelSpec& s = student_.spec();
  const int m = batch_ * seq_, d = s.d_model, v = s.vocab;
  double t0 = omp_get_wtime();
  StepLoss out;
  for (int i = 0; i < m; ++i) {
    out.tokens += labels[i] >= 0 ? 1 : 0;
    out.on_tokens += labels[i] >= 0 && kd_only != nullptr && kd_only[i] != 0 ? 1 : 0;
  }
  KD_ASSERT(out.on_tokens == 0 || (uses_teacher_logits() && !vocab_parallel()),
            "on-policy rows need the teacher's logits here (not top-k targets, not the vocabulary-parallel loss)");
  KD_CHECK_INPUT(out.tokens > 0, "a micro-batch has no labelled tokens");
  const double n = double(out.tokens);
  // the denominators of this micro-batch's terms: its own, or the global batch's
  const double n_loss = totals ? totals->tokens : n;
  const double feature_share = totals ? double(m) / totals->positions : 1.0;

  if (teacher_ != nullptr) {
    if constexpr (std::is_same_v<T, float>) {
      if (tp_ != nullptr) {
        tp_->forward(tp, tokens, tact_);
      } else {
        llama_forward_frozen<T>(*teacher_, tp, tokens, tact_, teacher_hook_);
      }
    } else {
      llama_forward_frozen<T>(*teacher_, tp, tokens, tact_, teacher_hook_);
    }
  }
  double t1 = omp_get_wtime();
  llama_forward_train<T>(student_, sp, tokens, sact_, hook_);
  // the head's input: the final normed states, or the hook's transform of them
  const T* head_in = hook_ ? hook_->forward(-1, LinearInput::head, sact_.final_norm, sact_.in_head, m, d)
                           : sact_.final_norm;
  double t2 = omp_get_wtime();

  // Feature loss first: it fills the extra hidden-state gradients the backward adds.
  const bool feature = !proj_.empty();
  if (feature) {
    for (T* dh : dhidden_) {
      if (dh) std::memset(dh, 0, sizeof(T) * std::size_t(m) * d);
    }
    const int dt = teacher_->spec().d_model;
    const double scale = spec_.feature.beta / double(spec_.feature.layers.size()) * feature_share * loss_scale;
    for (std::size_t k = 0; k < spec_.feature.layers.size(); ++k) {
      const auto [student_hidden, teacher_hidden] = spec_.feature.layers[k];
      const T* ht = tact_.hidden(teacher_hidden);
      kern::linear_forward<T>(target_, ht, sp + proj_[k], m, d, dt, false);
      out.feat += kern::feature_loss<T>(dhidden_[student_hidden], dtarget_,
                                        sact_.hidden[student_hidden], target_, m, d,
                                        spec_.feature.kind, scale);
      kern::linear_backward<T>(nullptr, sg + proj_[k], dtarget_, ht, sp + proj_[k], m, d, dt,
                               false);
    }
    out.feat /= double(spec_.feature.layers.size());
  }

  const bool from_targets = top_k_ && targets != nullptr && spec_.alpha < 1.0;
  const bool kd = uses_teacher_logits() || from_targets;
  const double alpha = has_teacher_term() ? spec_.alpha : 1.0;
  kern::DistillLossParams lp = distill_loss_params(spec_, alpha, kd, n_loss, loss_scale);
  lp.kd_only_scale = spec_.temperature * spec_.temperature / n_loss * loss_scale;  // on-policy rows: D alone
  if (uses_teacher_logits()) {
    lp.kd_vocab = std::min(v, teacher_->spec().vocab);
    lp.teacher_ld = teacher_->spec().vocab;
  } else if (from_targets) {
    lp.kd_vocab = std::min(v, targets->kd_vocab);
  }
  const T* shead = sp + student_.head();
  T* dshead = sg + student_.head();
  const int rows = spec_.logit_chunk_rows;
  bool head_done = false;
  if constexpr (std::is_same_v<T, float>) {
    if (vocab_parallel() && !from_targets) {
      vocab_parallel_head(head_in, sp, tp, labels, lp, kd);
      head_done = true;
    }
  }
  for (int r0 = 0; r0 < m && !head_done; r0 += rows) {
    const int r = std::min(rows, m - r0);
    const T* hs = head_in + std::size_t(r0) * d;
    logits_chunk(zs_, hs, shead, r, v, d);
    if (from_targets && !targets->full_bf16.empty()) {
      // full teacher logits (bfloat16) for the first kd_vocab entries: the usual loss
      const int vk = lp.kd_vocab;
      for (int i = 0; i < r; ++i) {
        const std::uint16_t* src = targets->full_bf16.data() + std::size_t(r0 + i) * std::size_t(vk);
        T* dst = zt_ + std::size_t(i) * v;
        for (int u = 0; u < vk; ++u) dst[u] = T(common::from_bf16(src[u]));
      }
      kern::DistillLossParams full = lp;
      full.teacher_ld = v;
      kern::distill_loss_rows<T>(zs_, rows_.data() + r0, zs_, zt_, labels + r0, r, v, full);
    } else if (from_targets) {
      const std::size_t k = std::size_t(targets->k);
      kern::topk_distill_loss_rows<T>(zs_, rows_.data() + r0, zs_, targets->values.data() + std::size_t(r0) * k,
                                      targets->indices.data() + std::size_t(r0) * k, targets->lse.data() + r0,
                                      labels + r0, r, v, targets->k, lp);
    } else {
      if (kd) {
        const int dtm = teacher_->spec().d_model;
        const T* hidden = tact_.final_norm + std::size_t(r0) * dtm;
        if constexpr (std::is_same_v<T, float>) {
          if (tp_ != nullptr) {
            tp_->logits(zt_, hidden, tp, r);
          } else {
            teacher_logits(hidden, tp, r);
          }
        } else {
          teacher_logits(hidden, tp, r);
        }
      }
      kern::DistillLossParams chunk = lp;
      chunk.kd_only = kd_only != nullptr ? kd_only + r0 : nullptr;
      kern::distill_loss_rows<T>(zs_, rows_.data() + r0, zs_, kd ? zt_ : nullptr, labels + r0, r, v, chunk);
    }
    kern::linear_backward<T>(dfinal_ + std::size_t(r0) * d, dshead, zs_, hs, shead, r, v, d, false);
  }
  for (int i = 0; i < m; ++i) {
    out.ce += rows_[i].ce;
    out.kd += rows_[i].kd;
    if (kd_only != nullptr && kd_only[i] != 0) out.kd_on_sum += rows_[i].kd;
  }
  out.ce_sum = out.ce;
  out.kd_sum = out.kd;
  out.ce /= std::max(1.0, n - double(out.on_tokens));  // CE: over the data's labelled tokens
  out.kd /= n;
  double t3 = omp_get_wtime();

  if (hook_) hook_->backward(-1, LinearInput::head, dfinal_, sact_.final_norm, m, d);
  llama_backward<T>(student_, sp, sg, tokens, sact_, dfinal_, dhidden_view_, hook_);
  double t4 = omp_get_wtime();

  out.loss = distill_total_loss(spec_, alpha, kd, feature, out.ce, out.kd, out.feat);
  if (out.on_tokens > 0) out.loss = on_policy_total_loss(spec_, alpha, feature, out.ce_sum, out.kd_sum, out.kd_on_sum, n,
                                                         out.feat);
  if (times != nullptr) times->add(t0, t1, t2, t3, t4);
  return out;
}

template <>
void DistillStep<double>::vocab_parallel_head(const double*, const double*, const double*, const std::int32_t*,
                                              const kern::DistillLossParams&, bool) {
  KD_ASSERT(false, "vocab-parallel loss in double");
}

template class DistillStep<float>;
template class DistillStep<double>;

}  // namespace kd
