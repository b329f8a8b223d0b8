// Evaluation on a token shard (issue 20): bits per byte count the bytes of the tokens
// actually scored (their text per the tokenizer; special tokens none), not the shard's
// average over a prefix; the windowing is seq_len + 1 tokens with stride seq_len and a token
// limit rounds down to whole windows.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "data/prepare/prepare_corpus.h"
#include "data/shards/token_shard.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "tests/support/temp_files.h"
#include "trainer/eval/evaluator.h"
#include "trainer/model/llama.h"
#include "trainer/model/param_table.h"

namespace {

TEST(Evaluator, BitsPerByteCountTheScoredTokensOwnBytes) {
  kdtest::TempDir dir;
  kd::data::PrepareSpec spec;
  spec.inputs = {std::string(KD_FIXTURES_DIR) + "/../data"};
  spec.vocab_size = 300;
  spec.val_every = 3;
  spec.threads = 1;
  spec.out_dir = dir.file("prep");
  kd::data::prepare_corpus(spec);
  const kd::data::BpeTokenizer tok = kd::data::BpeTokenizer::load(dir.file("prep/tokenizer.json"));
  const kd::data::TokenShard shard = kd::data::TokenShard::open(dir.file("prep/val.bin"));

  // Every token's bytes over the whole shard are the shard's text bytes: the documents'
  // bytes, special tokens (eot) standing for none.
  std::uint64_t all = 0;
  for (std::size_t i = 0; i < shard.size(); ++i) {
    if (!tok.is_special(std::int32_t(shard[i]))) all += tok.token_bytes(std::int32_t(shard[i])).size();
  }
  EXPECT_EQ(all, shard.text_bytes());

  kd::ModelSpec ms;
  ms.vocab = 300;
  ms.d_model = 16;
  ms.n_layers = 1;
  ms.n_heads = 2;
  ms.n_kv_heads = 1;
  ms.d_ff = 32;
  kd::ParamTable table;
  const kd::LlamaLayout layout(ms, table);
  std::vector<float> params(table.total());
  layout.init(params.data(), 5, 0.02);

  const int batch = 3, seq = 16;
  const int threads = omp_get_max_threads();
  kd::Evaluator with(layout, nullptr, batch, seq, threads);
  with.set_tokenizer(tok);
  kd::Evaluator without(layout, nullptr, batch, seq, threads);
  for (const std::int64_t limit : std::vector<std::int64_t>{0, 40, 7 * 16}) {
    const kd::EvalResult r = with.run(params.data(), nullptr, shard, limit);
    const kd::EvalResult e = without.run(params.data(), nullptr, shard, limit);
    // windows of seq + 1 tokens, stride seq; a limit rounds down to whole windows (at least one)
    std::int64_t windows = std::int64_t((shard.size() - 1) / seq);
    if (limit > 0) windows = std::min<std::int64_t>(windows, std::max<std::int64_t>(1, limit / seq));
    ASSERT_EQ(r.tokens, windows * seq) << "limit " << limit;
    std::uint64_t bytes = 0;  // the labels scored: shard[1 .. windows * seq]
    for (std::int64_t i = 1; i <= windows * seq; ++i) {
      const auto id = std::int32_t(shard[std::size_t(i)]);
      if (!tok.is_special(id)) bytes += tok.token_bytes(id).size();
    }
    EXPECT_TRUE(r.bpb_exact);
    EXPECT_EQ(r.bytes, bytes);
    EXPECT_NEAR(r.bpb * std::log(2.0) * double(bytes), r.loss * double(r.tokens), 1e-9 * r.loss * double(r.tokens));
    EXPECT_EQ(r.loss, e.loss);
    // without the tokenizer: the shard's average bytes per token, an estimate
    EXPECT_FALSE(e.bpb_exact);
    const double estimated_bytes = double(shard.text_bytes()) * double(e.tokens) / double(shard.size());
    EXPECT_NEAR(e.bpb * std::log(2.0) * estimated_bytes, e.loss * double(e.tokens), 1e-9 * e.loss * double(e.tokens));
  }
}

}  // namespace
