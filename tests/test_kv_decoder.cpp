// Incremental decoding with a KV cache (trainer/model/kv_decoder.h) against the full
// forward (llama_forward_frozen), which the PyTorch fixtures check:
//  * fp32: the logits at every position of three sequences of different prompt lengths,
//    prefilled together and then decoded together one token per step, equal the full
//    forward's of each whole sequence within 1e-5 of the logit scale (max |logit|). Both
//    are float32 with the same weights; only the summation order differs (GEMMs over other
//    row counts, one attention kernel against another), ~1e-7 relative per operation
//    over a few dozen dependent roundings;
//  * a quantized model (integer GEMMs with per-token and static inputs, weight-only int4)
//    run through the same hook: the same greedy tokens, step by step. Its logits are only
//    close: an input code whose value sits on a rounding tie can round either way under
//    the fp32 noise above (seen here: -2.41636372 against -2.41636324 at a per-token int8
//    midpoint, which moved the logits by 2% of their scale), so they are held to 5%;
//    a cache read at the wrong positions moves them by their whole scale;
//  * a slot cleared and reused, and GQA (4 query heads on 2 KV heads).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "data/synthetic.h"
#include "tests/support/tiny_config.h"
#include "trainer/model/kv_decoder.h"
#include "tests/support/random_model.h"
#include "trainer/model/llama.h"
#include "trainer/quant/integer_inference.h"
#include "trainer/quant/ptq.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"

namespace {

using namespace kd;

constexpr int kThreads = 2;

// Logits (len, V) of the whole sequence by the full forward.
std::vector<float> full_logits(const LlamaLayout& lay, const float* p, const std::vector<std::int32_t>& seq,
                               LinearHook<float>* hook = nullptr) {
  const int len = int(seq.size()), v = lay.spec().vocab;
  FrozenActivations<float> a;
  a.build(lay.spec(), 1, len, kThreads, {});
  llama_forward_frozen<float>(lay, p, seq.data(), a, hook);
  std::vector<float> logits(std::size_t(len) * v);
  head_forward_frozen<float>(lay, p, logits.data(), a.final_norm, len, hook);
  return logits;
}

struct Random : kdtest::RandomModel {
  Random() : RandomModel(50, 5, 0.2) {}
};

std::vector<std::int32_t> random_tokens(int n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = std::int32_t(rng() % unsigned(vocab));
  return t;
}

TEST(KvDecoder, LogitsEqualTheFullForwardAtEveryPosition) {
  Random m;
  const int v = m.spec.vocab;
  const std::vector<int> prompt_len{5, 9, 1}, total_len{14, 17, 10};
  std::vector<std::vector<std::int32_t>> seqs;
  for (int b = 0; b < 3; ++b) seqs.push_back(random_tokens(total_len[b], v, 10 + b));
  KvDecoder dec(*m.lay, 3, 32, 16, kThreads);
  // incremental logits per sequence and position
  std::vector<std::vector<float>> got(3);
  for (int b = 0; b < 3; ++b) got[b].resize(std::size_t(total_len[b]) * v);
  {  // one prefill of all three prompts (15 rows), every row's logits
    std::vector<std::int32_t> tok;
    std::vector<int> slot, out;
    for (int b = 0; b < 3; ++b) {
      for (int i = 0; i < prompt_len[b]; ++i) {
        tok.push_back(seqs[b][i]);
        slot.push_back(b);
      }
    }
    for (int r = 0; r < int(tok.size()); ++r) out.push_back(r);
    std::vector<float> logits(out.size() * v);
    dec.forward(m.params.data(), tok.data(), slot.data(), int(tok.size()), out.data(), int(out.size()), logits.data());
    int r = 0;
    for (int b = 0; b < 3; ++b) {
      for (int i = 0; i < prompt_len[b]; ++i, ++r) {
        std::copy_n(logits.begin() + std::size_t(r) * v, v, got[b].begin() + std::size_t(i) * v);
      }
    }
  }
  for (int b = 0; b < 3; ++b) EXPECT_EQ(dec.length(b), prompt_len[b]);
  // then one token per unfinished sequence per step
  for (int step = 0;; ++step) {
    std::vector<std::int32_t> tok;
    std::vector<int> slot, out;
    for (int b = 0; b < 3; ++b) {
      const int pos = prompt_len[b] + step;
      if (pos >= total_len[b]) continue;
      tok.push_back(seqs[b][pos]);
      slot.push_back(b);
      out.push_back(int(out.size()));
    }
    if (tok.empty()) break;
    std::vector<float> logits(out.size() * v);
    dec.forward(m.params.data(), tok.data(), slot.data(), int(tok.size()), out.data(), int(out.size()), logits.data());
    for (std::size_t r = 0; r < slot.size(); ++r) {
      const int pos = prompt_len[slot[r]] + step;
      std::copy_n(logits.begin() + r * v, v, got[slot[r]].begin() + std::size_t(pos) * v);
    }
  }
  for (int b = 0; b < 3; ++b) {
    const std::vector<float> want = full_logits(*m.lay, m.params.data(), seqs[b]);
    float scale = 0;
    for (float x : want) scale = std::max(scale, std::fabs(x));
    ASSERT_GT(scale, 1.0f) << "logits too flat to test";
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, double(std::fabs(got[b][i] - want[i])));
    EXPECT_LE(worst, 1e-5 * scale) << "sequence " << b << ": max |Δlogit| " << worst << " at logit scale " << scale;
  }
}

TEST(KvDecoder, AClearedSlotStartsAgain) {
  Random m;
  const int v = m.spec.vocab;
  KvDecoder dec(*m.lay, 1, 8, 8, kThreads);
  const auto a = random_tokens(6, v, 3), b = random_tokens(4, v, 4);
  std::vector<int> slot(8, 0);
  const int last_a = 5, last_b = 3;
  std::vector<float> la(static_cast<std::size_t>(v)), lb(static_cast<std::size_t>(v));
  dec.forward(m.params.data(), a.data(), slot.data(), 6, &last_a, 1, la.data());
  EXPECT_EQ(dec.length(0), 6);
  dec.clear(0);
  dec.forward(m.params.data(), b.data(), slot.data(), 4, &last_b, 1, lb.data());
  const auto want = full_logits(*m.lay, m.params.data(), b);
  for (int i = 0; i < v; ++i) EXPECT_NEAR(lb[i], want[std::size_t(3) * v + i], 1e-5 * 10);
}

// Greedy decoding of a trained tiny model, quantized, by the full forward (the whole
// sequence again for every token) and by the KV cache: the same tokens.
TEST(KvDecoder, QuantizedModelsGiveTheFullForwardsGreedyTokens) {
  // random weights large enough that attention matters (a trained model of the Markov task
  // would predict from the last token alone, whatever the cache held)
  kd::Config c = kdtest::tiny_config({"model.vocab=50", "teacher.vocab=50", "model.d_model=32", "model.d_ff=64"});
  c.has_teacher = false;
  kd::set_threads(kThreads);
  kd::Trainer t(c);
  t.student().init(t.student_params(), 5, 0.2);
  for (const auto& [wf, act] : {std::pair{"int8:channel", "int8:token"}, {"int4:g16", "int8:tensor"},
                                {"int4:g16", "none"}}) {
    SCOPED_TRACE(std::string(wf) + " / " + act);
    kd::QuantSection q;
    q.weight = wf;
    q.activation = act;
    q.head = true;
    auto calib = kd::make_synthetic(c, kd::Stream::validation);
    kd::quant::PtqInput in;
    in.layout = &t.student();
    in.table = &t.student_table();
    in.params = t.student_params();
    in.calibration = calib.get();
    in.batches = 2;
    in.batch_size = c.train.batch_size;
    in.seq_len = c.train.seq_len;
    in.threads = kThreads;
    const auto qm = kd::quant::post_training_quantize(q, c.model, in, "--data", nullptr);
    std::vector<float> p(t.student_params(), t.student_params() + t.student_table().total());
    for (const auto& w : qm.weights) w.dequantize(p.data() + t.student_table().at(w.plan.tensor).offset);
    kd::quant::IntegerInference hook(qm, c.model);
    const LlamaLayout& lay = t.student();
    const int v = lay.spec().vocab, n_new = 12;
    std::vector<std::int32_t> seq{1, 2, 3};
    KvDecoder dec(lay, 1, 32, 8, kThreads);
    const std::vector<int> slot(8, 0);
    std::vector<float> logits(static_cast<std::size_t>(v));
    int last = int(seq.size()) - 1;
    dec.forward(p.data(), seq.data(), slot.data(), int(seq.size()), &last, 1, logits.data(), &hook);
    for (int n = 0; n < n_new; ++n) {
      const auto want = full_logits(lay, p.data(), seq, &hook);
      const auto row = want.begin() + std::ptrdiff_t(seq.size() - 1) * v;
      const int want_tok = int(std::max_element(row, row + v) - row);
      // and the logits close (see the top: a flipped input code moves them ~2%; a cache at
      // the wrong positions moves them by their whole scale)
      float scale = 0, worst = 0;
      for (int i = 0; i < v; ++i) {
        scale = std::max(scale, std::fabs(row[i]));
        worst = std::max(worst, std::fabs(row[i] - logits[std::size_t(i)]));
      }
      EXPECT_LE(worst, 0.05f * scale) << "token " << n;
      const int got_tok = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
      ASSERT_EQ(got_tok, want_tok) << "token " << n;
      seq.push_back(got_tok);
      const int zero = 0;
      dec.forward(p.data(), &seq.back(), slot.data(), 1, &zero, 1, logits.data(), &hook);
    }
  }
}

}  // namespace
