#include "trainer/eval/generator.h"

#include <omp.h>

#include <algorithm>

#include "base/errors.h"

namespace kd {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::length: return "max_new_tokens";
    case StopReason::stop_token: return "end of text";
    case StopReason::context: return "the context's end";
  }
  return "?";
}

// Prefill goes in chunks of at most this many rows (one GEMM's M): large enough for the
// GEMMs to run at full speed, small enough that the activations stay a few MiB.
int Generator::prefill_rows(int context, int batch) { return std::max(batch, std::min(512, context * batch)); }

std::size_t Generator::bytes(const ModelSpec& s, int context, int batch, int threads) {
  const int rows = prefill_rows(context, batch);
  return KvDecoder::bytes(s, batch, context, rows, threads) + sizeof(float) * std::size_t(rows) * s.vocab;
}

Generator::Generator(const LlamaLayout& model, int context, int batch, int threads, LinearHook<float>* hook,
                     bool recompute)
    : model_(model),
      hook_(hook),
      context_(context),
      batch_(batch),
      recompute_(recompute),
      dec_(model, batch, recompute ? 1 : context, recompute ? 1 : prefill_rows(context, batch), threads) {
  if (recompute_) {
    full_.build(model.spec(), 1, context, threads, {});
    window_.resize(std::size_t(context));
  }
}

void Generator::recompute_logits(const float* p, const std::vector<std::int32_t>& seq, float* logits) {
  // causal attention: positions after the last real token do not change its output, so the
  // sequence is padded to the context the activations were built for
  const int len = int(seq.size()), d = model_.spec().d_model;
  std::copy(seq.begin(), seq.end(), window_.begin());
  std::fill(window_.begin() + len, window_.end(), 0);
  llama_forward_frozen<float>(model_, p, window_.data(), full_, hook_);
  head_forward_frozen<float>(model_, p, logits, full_.final_norm + std::size_t(len - 1) * d, 1, hook_);
}

std::vector<Generation> Generator::generate(const float* p, const std::vector<std::vector<std::int32_t>>& prompts,
                                            const SamplingSpec& s, std::uint64_t first_index) {
  std::vector<std::uint64_t> ids(prompts.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = first_index + i;
  return generate(p, prompts, s, ids);
}

std::vector<Generation> Generator::generate(const float* p, const std::vector<std::vector<std::int32_t>>& prompts,
                                            const SamplingSpec& s, const std::vector<std::uint64_t>& stream_ids) {
  const int v = model_.spec().vocab, n = int(prompts.size());
  KD_ASSERT(stream_ids.size() == prompts.size(), "one stream id per prompt");
  KD_CHECK_INPUT(n >= 1 && n <= batch_, "generate: {} prompts for a generator of batch {}", n, batch_);
  for (int i = 0; i < n; ++i) {
    const auto& pr = prompts[std::size_t(i)];
    KD_CHECK_INPUT(!pr.empty(), "generate: prompt {} is empty", i);
    KD_CHECK_INPUT(int(pr.size()) <= context_,
                   "generate: the prompt is {} tokens, longer than the model's context of {} tokens", pr.size(),
                   context_);
    for (auto t : pr) KD_CHECK_INPUT(t >= 0 && t < v, "generate: prompt token {} is outside the vocabulary of {}", t, v);
    dec_.clear(i);
  }
  std::vector<Generation> out(static_cast<std::size_t>(n));
  std::vector<std::mt19937_64> rng;
  for (int i = 0; i < n; ++i) rng.push_back(sequence_stream(s.seed, stream_ids[std::size_t(i)]));
  if (recompute_) {  // one sequence at a time, the whole context per token
    logits_.resize(std::size_t(v));
    for (int i = 0; i < n; ++i) {
      std::vector<std::int32_t> seq = prompts[std::size_t(i)];
      Generation& g = out[std::size_t(i)];
      for (;;) {
        const double t0 = omp_get_wtime();
        recompute_logits(p, seq, logits_.data());
        (g.tokens.empty() ? stats_.prefill_s : stats_.decode_s) += omp_get_wtime() - t0;
        (g.tokens.empty() ? stats_.prefill_tokens : stats_.decode_tokens) += g.tokens.empty() ? std::int64_t(seq.size()) : 1;
        const int t = sample_token(logits_.data(), v, s, rng[std::size_t(i)], cand_);
        g.tokens.push_back(t);
        seq.push_back(t);
        if (t == s.stop_token) {
          g.stop = StopReason::stop_token;
        } else if (int(g.tokens.size()) >= s.max_new_tokens) {
          g.stop = StopReason::length;
        } else if (int(seq.size()) > context_) {
          g.stop = StopReason::context;
        } else {
          continue;
        }
        break;
      }
    }
    return out;
  }
  std::vector<int> next(std::size_t(n), -1);
  std::vector<bool> done(std::size_t(n), s.max_new_tokens <= 0);
  logits_.resize(std::size_t(dec_.max_rows()) * v);

  // prefill: the prompts' rows in chunks; a sequence's first token from its last row
  double t0 = omp_get_wtime();
  {
    std::vector<std::int32_t> tok;
    std::vector<int> slot, last_of;  // last_of: the sequence whose prompt ends at that row (-1)
    for (int i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < prompts[std::size_t(i)].size(); ++j) {
        tok.push_back(prompts[std::size_t(i)][j]);
        slot.push_back(i);
        last_of.push_back(j + 1 == prompts[std::size_t(i)].size() ? i : -1);
      }
    }
    const int rows = int(tok.size());
    std::vector<int> out_rows;
    for (int r0 = 0; r0 < rows; r0 += dec_.max_rows()) {
      const int m = std::min(dec_.max_rows(), rows - r0);
      out_rows.clear();
      for (int r = 0; r < m; ++r) {
        if (last_of[std::size_t(r0 + r)] >= 0) out_rows.push_back(r);
      }
      dec_.forward(p, tok.data() + r0, slot.data() + r0, m, out_rows.data(), int(out_rows.size()), logits_.data(),
                   hook_);
      for (std::size_t k = 0; k < out_rows.size(); ++k) {
        const int i = last_of[std::size_t(r0 + out_rows[k])];
        if (!done[std::size_t(i)]) next[std::size_t(i)] = sample_token(logits_.data() + k * v, v, s, rng[std::size_t(i)], cand_);
      }
    }
    stats_.prefill_tokens += rows;
  }
  const double t1 = omp_get_wtime();
  stats_.prefill_s += t1 - t0;

  // decoding: each unfinished sequence's last sampled token goes in, one row each
  std::vector<std::int32_t> tok;
  std::vector<int> slot, seq_of, out_rows;
  for (;;) {
    tok.clear();
    slot.clear();
    seq_of.clear();
    for (int i = 0; i < n; ++i) {
      if (done[std::size_t(i)]) continue;
      Generation& g = out[std::size_t(i)];
      g.tokens.push_back(next[std::size_t(i)]);
      if (next[std::size_t(i)] == s.stop_token) {
        g.stop = StopReason::stop_token;
        done[std::size_t(i)] = true;
      } else if (int(g.tokens.size()) >= s.max_new_tokens) {
        g.stop = StopReason::length;
        done[std::size_t(i)] = true;
      } else if (dec_.length(i) >= context_) {  // the sampled token has no position left to be read at
        g.stop = StopReason::context;
        done[std::size_t(i)] = true;
      } else {
        tok.push_back(next[std::size_t(i)]);
        slot.push_back(i);
        seq_of.push_back(i);
      }
    }
    if (tok.empty()) break;
    const int m = int(tok.size());
    out_rows.resize(std::size_t(m));
    for (int r = 0; r < m; ++r) out_rows[std::size_t(r)] = r;
    dec_.forward(p, tok.data(), slot.data(), m, out_rows.data(), m, logits_.data(), hook_);
    for (int r = 0; r < m; ++r) {
      const int i = seq_of[std::size_t(r)];
      next[std::size_t(i)] = sample_token(logits_.data() + std::size_t(r) * v, v, s, rng[std::size_t(i)], cand_);
    }
    stats_.decode_tokens += m;
  }
  stats_.decode_s += omp_get_wtime() - t1;
  return out;
}

}  // namespace kd
