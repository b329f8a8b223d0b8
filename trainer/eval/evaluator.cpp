#include "trainer/eval/evaluator.h"

#include <algorithm>
#include <cmath>

#include "base/errors.h"

namespace kd {

namespace {
constexpr int kChunkRows = 256;

int argmax(const float* x, int n) {
  return int(std::max_element(x, x + n) - x);
}
}  // namespace

Evaluator::Evaluator(const LlamaLayout& model, const LlamaLayout* teacher, int batch, int seq,
                     int threads, LinearHook<float>* hook)
    : model_(model), teacher_(teacher), hook_(hook), batch_(batch), seq_(seq) {
  act_.build(model.spec(), batch, seq, threads, {});
  // A teacher's vocabulary may differ by padding rows only (checked by the caller).
  if (teacher_) tact_.build(teacher_->spec(), batch, seq, threads, {});
  const std::size_t rv = std::size_t(kChunkRows) * model.spec().vocab;
  zs_.resize(rv);
  scratch_.resize(rv);
  if (teacher_) zt_.resize(std::size_t(kChunkRows) * teacher_->spec().vocab);
  tokens_.resize(std::size_t(batch) * seq);
  labels_.resize(tokens_.size());
  rows_.resize(kChunkRows);
}

void Evaluator::set_tokenizer(const data::BpeTokenizer& tok) {
  token_bytes_.assign(std::size_t(tok.vocab_size()), 0);
  for (std::int32_t id = 0; id < std::int32_t(tok.vocab_size()); ++id) {
    if (!tok.is_special(id)) token_bytes_[std::size_t(id)] = std::uint32_t(tok.token_bytes(id).size());
  }
}

void Evaluator::reset() {
  nats_ = kl_ = 0;
  scored_ = agree_ = 0;
  bytes_ = 0;
}

void Evaluator::score_batch(const float* p, const float* tp) {
  const int m = batch_ * seq_, v = model_.spec().vocab, d = model_.spec().d_model;
  llama_forward_frozen<float>(model_, p, tokens_.data(), act_, hook_);
  if (teacher_) llama_forward_frozen<float>(*teacher_, tp, tokens_.data(), tact_, teacher_hook_);
  kern::DistillLossParams lp;  // T = 1 forward KL: kd = KL(teacher ‖ model)
  const int vt = teacher_ ? teacher_->spec().vocab : v, vk = std::min(v, vt);
  lp.kd_vocab = vk;
  lp.teacher_ld = vt;
  for (int r0 = 0; r0 < m; r0 += kChunkRows) {
    const int r = std::min(kChunkRows, m - r0);
    head_forward_frozen<float>(model_, p, zs_.data(), act_.final_norm + std::size_t(r0) * d, r, hook_);
    if (teacher_) {
      const int dt = teacher_->spec().d_model;
      head_forward_frozen<float>(*teacher_, tp, zt_.data(), tact_.final_norm + std::size_t(r0) * dt, r, teacher_hook_);
      for (int i = 0; i < r; ++i) {
        if (labels_[r0 + i] < 0) continue;
        agree_ += argmax(&zs_[std::size_t(i) * v], vk) == argmax(&zt_[std::size_t(i) * vt], vk);
      }
    }
    kern::distill_loss_rows<float>(scratch_.data(), rows_.data(), zs_.data(), teacher_ ? zt_.data() : nullptr,
                                   labels_.data() + r0, r, v, lp);
    for (int i = 0; i < r; ++i) {
      const std::int32_t label = labels_[r0 + i];
      if (label < 0) continue;
      nats_ += rows_[i].ce;
      kl_ += rows_[i].kd;
      ++scored_;
      // ids beyond the tokenizer (a padded vocabulary) stand for no text
      if (std::size_t(label) < token_bytes_.size()) bytes_ += token_bytes_[std::size_t(label)];
    }
  }
}

EvalResult Evaluator::run(const float* p, const float* tp, const data::TokenShard& shard,
                          std::int64_t max_tokens) {
  KD_CHECK_INPUT(shard.size() > std::size_t(seq_), "validation shard {}: {} tokens, fewer than seq_len + 1 = {}",
                 shard.path(), shard.size(), seq_ + 1);
  KD_CHECK_INPUT(shard.max_token() < std::uint32_t(model_.spec().vocab),
                 "validation shard {}: holds token id {}, outside the model's vocabulary of {}", shard.path(),
                 shard.max_token(), model_.spec().vocab);
  reset();
  std::int64_t windows = std::int64_t((shard.size() - 1) / std::size_t(seq_));
  if (max_tokens > 0) windows = std::min<std::int64_t>(windows, std::max<std::int64_t>(1, max_tokens / seq_));
  for (std::int64_t w0 = 0; w0 < windows; w0 += batch_) {
    const int rows = int(std::min<std::int64_t>(batch_, windows - w0));
    for (int b = 0; b < batch_; ++b) {
      std::int32_t* t = tokens_.data() + std::size_t(b) * seq_;
      std::int32_t* l = labels_.data() + std::size_t(b) * seq_;
      if (b >= rows) {  // padding rows of the last batch: computed, never scored
        std::fill_n(t, seq_, 0);
        std::fill_n(l, seq_, -1);
        continue;
      }
      const std::size_t start = std::size_t(w0 + b) * seq_;
      for (int i = 0; i < seq_; ++i) {
        t[i] = shard[start + i];
        l[i] = shard[start + i + 1];
      }
    }
    score_batch(p, tp);
  }
  return result(shard.text_bytes(), shard.size());
}

EvalResult Evaluator::run(const float* p, const float* tp, data::BatchSource& source, int batches) {
  reset();
  for (int b = 0; b < batches; ++b) {
    source.next(tokens_.data(), labels_.data(), batch_, seq_);
    score_batch(p, tp);
  }
  return result(0, 0);
}

EvalResult Evaluator::result(std::uint64_t text_bytes, std::size_t shard_tokens) const {
  EvalResult r;
  r.tokens = scored_;
  r.loss = nats_ / double(scored_);
  r.ppl = std::exp(r.loss);
  if (!token_bytes_.empty()) {  // the scored tokens' own bytes
    r.bytes = bytes_;
    r.bpb_exact = true;
    if (bytes_ > 0) r.bpb = nats_ / double(bytes_) / std::log(2.0);
  } else if (text_bytes > 0) {
    // an estimate: the bytes these scored tokens stand for, in proportion of the shard
    const double bytes = double(text_bytes) * double(scored_) / double(shard_tokens);
    r.bpb = nats_ / bytes / std::log(2.0);
  }
  if (teacher_) {
    r.agreement = double(agree_) / double(scored_);
    r.kl = kl_ / double(scored_);
  }
  return r;
}

}  // namespace kd
