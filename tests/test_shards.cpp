// Token shards (kdtrain's format written and read back; nanoGPT and llm.c fixtures written
// by scripts/gen_shard_fixtures.py; every malformed file an InputError naming the path) and
// corpus preparation on tests/data.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/temp_files.h"
#include "data/prepare/prepare_corpus.h"
#include "data/shards/token_shard.h"
#include "data/token_dataset.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "base/errors.h"

namespace {

using kdtest::TempDir;
using kdtest::slurp;
using kdtest::write_bytes;

using kd::data::ShardFormat;
using kd::data::TokenShard;

const std::string kShardFixtures = std::string(KD_FIXTURES_DIR) + "/shards";
// tests/data: short documents written for kdtrain's tests (no third-party text), dedicated
// to the public domain: English prose, numbers and punctuation, accented words, Greek,
// Cyrillic, CJK, emoji, tabs and Unicode spaces, plus corpus.jsonl.
const std::string kDataDir = std::string(KD_FIXTURES_DIR) + "/../data";

std::string le32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int k = 0; k < 4; ++k) s[std::size_t(k)] = static_cast<char>(v >> (8 * k));
  return s;
}
std::string le64(std::uint64_t v) { return le32(std::uint32_t(v)) + le32(std::uint32_t(v >> 32)); }

std::vector<std::int32_t> read_all(const TokenShard& s) {
  std::vector<std::int32_t> out(s.size());
  s.copy_range(0, out);
  return out;
}

std::vector<std::int32_t> expected_tokens(const std::string& name) {
  std::istringstream in(slurp(kShardFixtures + "/" + name));
  std::vector<std::int32_t> v;
  for (long long t; in >> t;) v.push_back(std::int32_t(t));
  return v;
}

// The InputError's message; fails the test if `f` does not throw one or the message does
// not name `path` and `what`.
void expect_error(const std::function<void()>& f, const std::string& path, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << "no InputError for " << path << " (" << what << ")";
  } catch (const kd::InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
  }
}

// ---------------------------------------------------------------- kdtrain format

TEST(KdShard, RoundTripBothWidths) {
  TempDir dir;
  for (std::uint32_t width : {2u, 4u}) {
    std::vector<std::uint32_t> tokens(1000);
    std::iota(tokens.begin(), tokens.end(), 0u);
    tokens[10] = width == 2 ? 65535u : 4000000000u >> 1;  // the largest id each width carries (int32 reads)
    const std::string path = dir.file("w" + std::to_string(width) + ".bin");
    kd::data::write_kdtrain_shard(path, tokens, width, 12345, 0xABCDEF0123456789ULL);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    EXPECT_EQ(std::filesystem::file_size(path), 64 + 1000 * width);
    for (ShardFormat f : {ShardFormat::auto_detect, ShardFormat::kdtrain}) {
      const TokenShard s = TokenShard::open(path, f);
      EXPECT_EQ(s.format(), ShardFormat::kdtrain);
      EXPECT_EQ(s.token_bytes(), width);
      ASSERT_EQ(s.size(), 1000u);
      EXPECT_EQ(s.text_bytes(), 12345u);
      EXPECT_EQ(s.tokenizer_hash(), 0xABCDEF0123456789ULL);
      EXPECT_EQ(s.max_token(), tokens[10]);
      const std::vector<std::int32_t> all = read_all(s);
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        ASSERT_EQ(std::uint32_t(all[i]), tokens[i]);
        ASSERT_EQ(std::uint32_t(s[i]), tokens[i]);
      }
      std::vector<std::int32_t> part(5);
      s.copy_range(995, part);
      EXPECT_EQ(part, (std::vector<std::int32_t>{995, 996, 997, 998, 999}));
      EXPECT_THROW(s.copy_range(996, part), std::out_of_range);
    }
  }
}

TEST(KdShard, HeaderBytesAreAsDocumented) {
  TempDir dir;
  const std::string path = dir.file("h.bin");
  const std::vector<std::uint32_t> tokens = {7, 300};
  kd::data::write_kdtrain_shard(path, tokens, 2, 99, 0x1122334455667788ULL);
  const std::string b = slurp(path);
  ASSERT_EQ(b.size(), 68u);
  EXPECT_EQ(b.substr(0, 4), "KDTK");
  EXPECT_EQ(b.substr(4, 4), le32(1));
  EXPECT_EQ(b.substr(8, 4), le32(2));
  EXPECT_EQ(b.substr(12, 4), le32(0));
  EXPECT_EQ(b.substr(16, 8), le64(2));
  EXPECT_EQ(b.substr(24, 8), le64(99));
  EXPECT_EQ(b.substr(32, 8), le64(0x1122334455667788ULL));
  EXPECT_EQ(b.substr(40, 24), std::string(24, '\0'));
  EXPECT_EQ(b.substr(64), std::string("\x07\x00\x2c\x01", 4));
}

TEST(KdShard, EmptyShard) {
  TempDir dir;
  kd::data::write_kdtrain_shard(dir.file("e.bin"), {}, 2, 0, 0);
  const TokenShard s = TokenShard::open(dir.file("e.bin"));
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.max_token(), 0u);
}

TEST(KdShard, WriterRejectsWhatDoesNotFit) {
  TempDir dir;
  const std::vector<std::uint32_t> big = {1, 70000};
  expect_error([&] { kd::data::write_kdtrain_shard(dir.file("x.bin"), big, 2, 0, 0); }, dir.file("x.bin"),
               "token 70000 at position 1 does not fit a uint16 shard");
  expect_error([&] { kd::data::write_kdtrain_shard(dir.file("x.bin"), big, 3, 0, 0); }, dir.file("x.bin"),
               "token width 3");
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.bin.tmp")));
}

TEST(KdShard, MalformedFilesNameThePathAndTheProblem) {
  TempDir dir;
  const std::string p = dir.file("bad.bin");
  const auto header = [](std::uint32_t version, std::uint32_t width, std::uint64_t count) {
    return le32(kd::data::kKdShardMagic) + le32(version) + le32(width) + le32(0) + le64(count) + le64(0) + le64(0) +
           std::string(24, '\0');
  };
  const auto open = [&] { TokenShard::open(p); };
  const auto open_kd = [&] { TokenShard::open(p, ShardFormat::kdtrain); };

  expect_error([&] { TokenShard::open(dir.file("missing.bin")); }, dir.file("missing.bin"), "cannot open token shard");
  write_bytes(p, le32(kd::data::kKdShardMagic) + "short");
  expect_error(open, p, "truncated kdtrain shard");
  write_bytes(p, header(1, 2, 10) + std::string(8, '\0'));  // 4 of 10 tokens
  expect_error(open, p, "header says 10 tokens of 2 bytes but the file holds only 4");
  write_bytes(p, header(1, 2, 2) + std::string(6, '\0'));
  expect_error(open, p, "trailing data");
  write_bytes(p, header(2, 2, 0));
  expect_error(open, p, "kdtrain shard version 2");
  write_bytes(p, header(1, 3, 0));
  expect_error(open, p, "unknown token width 3");
  write_bytes(p, std::string(64, 'x'));
  expect_error(open_kd, p, "bad magic");
  std::string reserved = header(1, 2, 0);
  reserved[12] = 1;
  write_bytes(p, reserved);
  expect_error(open, p, "reserved header field");
}

// A FIFO, a directory or a device named as a shard is refused by name, and a FIFO without a
// writer must not block: open() on one waits for a writer forever (issue 20). If it does block,
// the test unblocks it itself (opening the FIFO for writing) after a generous wait.
TEST(KdShard, NonRegularFilesAreRefusedWithoutBlocking) {
  TempDir dir;
  const std::string fifo = dir.file("fifo.bin");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto pending = std::async(std::launch::async, [&] { TokenShard::open(fifo); });
  if (pending.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "TokenShard::open blocked on a FIFO";
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // the reader waits: release it
    pending.wait();
    if (w >= 0) ::close(w);
  }
  expect_error([&] { pending.get(); }, fifo, "not a regular file");
  expect_error([&] { TokenShard::open(dir.path()); }, dir.path(), "not a regular file");
  expect_error([] { TokenShard::open("/dev/null"); }, "/dev/null", "not a regular file");
}

// A kdtrain shard whose header was zeroed (a damaged copy) is neither kdtrain's (no magic)
// nor a plausible nanoGPT shard (32 token-0 ids in a row): auto-detection refuses it rather
// than reading the header as tokens. An explicit nanogpt format still reads it.
TEST(KdShard, ZeroedHeaderIsNotReadAsNanoGpt) {
  TempDir dir;
  const std::string p = dir.file("zeroed.bin");
  const std::vector<std::uint32_t> tokens = {5, 6, 7, 8, 9, 10};
  kd::data::write_kdtrain_shard(p, tokens, 2, 0, 0);
  std::string bytes = slurp(p);
  std::fill(bytes.begin(), bytes.begin() + std::ptrdiff_t(kd::data::kKdShardHeaderBytes), '\0');
  write_bytes(p, bytes);
  expect_error([&] { TokenShard::open(p); }, p, "zeroed header");
  EXPECT_EQ(TokenShard::open(p, ShardFormat::nanogpt).size(), (64 + 12) / 2u);
}

// seq_len + 1 tokens make exactly one (tokens, labels) window: accepted, and the window is
// the whole shard; seq_len tokens are fewer than one window.
TEST(KdShard, OneWindowShardIsAccepted) {
  TempDir dir;
  const int seq = 4;
  const std::string p = dir.file("one.bin");
  kd::data::write_kdtrain_shard(p, std::vector<std::uint32_t>{1, 2, 3, 4, 5}, 2, 0, 0);
  auto shard = std::make_shared<const TokenShard>(TokenShard::open(p));
  EXPECT_NO_THROW(kd::data::check_shard(*shard, 8, seq, "training"));
  kd::data::TokenDataset ds(shard, 8, seq, 7);
  std::vector<std::int32_t> t(seq), l(seq);
  ds.next(t.data(), l.data(), 1, seq);
  EXPECT_EQ(t, (std::vector<std::int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(l, (std::vector<std::int32_t>{2, 3, 4, 5}));
  const std::string q = dir.file("short.bin");
  kd::data::write_kdtrain_shard(q, std::vector<std::uint32_t>{1, 2, 3, 4}, 2, 0, 0);
  expect_error([&] { kd::data::check_shard(TokenShard::open(q), 8, seq, "training"); }, q,
               "4 tokens, fewer than one sequence of seq_len + 1 = 5");
}

// ---------------------------------------------------------------- nanoGPT and llm.c

TEST(ForeignShards, NanoGptFixture) {
  const std::string path = kShardFixtures + "/nanogpt_u16.bin";
  const std::vector<std::int32_t> want = expected_tokens("expected_u16.txt");
  for (ShardFormat f : {ShardFormat::auto_detect, ShardFormat::nanogpt}) {
    const TokenShard s = TokenShard::open(path, f);
    EXPECT_EQ(s.format(), ShardFormat::nanogpt);
    EXPECT_EQ(s.token_bytes(), 2u);
    EXPECT_EQ(s.text_bytes(), 0u);
    EXPECT_EQ(read_all(s), want);
    EXPECT_EQ(s.max_token(), 65535u);
  }
}

TEST(ForeignShards, LlmcFixtures) {
  struct Case {
    const char* file;
    const char* expected;
    std::uint32_t width;
  };
  for (const Case c : {Case{"llmc_u16.bin", "expected_u16.txt", 2}, Case{"llmc_u32.bin", "expected_u32.txt", 4}}) {
    const std::vector<std::int32_t> want = expected_tokens(c.expected);
    for (ShardFormat f : {ShardFormat::auto_detect, ShardFormat::llmc}) {
      const TokenShard s = TokenShard::open(kShardFixtures + "/" + c.file, f);
      EXPECT_EQ(s.format(), ShardFormat::llmc) << c.file;
      EXPECT_EQ(s.token_bytes(), c.width) << c.file;
      EXPECT_EQ(read_all(s), want) << c.file;
    }
  }
  // An explicit format wins over detection: the same bytes read as raw uint16.
  const TokenShard raw = TokenShard::open(kShardFixtures + "/llmc_u16.bin", ShardFormat::nanogpt);
  EXPECT_EQ(raw.size(), (1024 + 2 * expected_tokens("expected_u16.txt").size()) / 2);
}

TEST(ForeignShards, MalformedFilesNameThePathAndTheProblem) {
  TempDir dir;
  const std::string p = dir.file("bad.bin");
  const auto llmc = [](std::int32_t magic, std::int32_t version, std::int32_t count) {
    std::string h = le32(std::uint32_t(magic)) + le32(std::uint32_t(version)) + le32(std::uint32_t(count));
    return h + std::string(1024 - h.size(), '\0');
  };
  const auto open = [&] { TokenShard::open(p); };

  write_bytes(p, std::string(7, '\0'));
  expect_error(open, p, "odd size (7 bytes)");
  write_bytes(p, le32(20240520) + std::string(100, '\0'));
  expect_error(open, p, "truncated llm.c shard");
  write_bytes(p, llmc(20240520, 2, 0));
  expect_error(open, p, "llm.c shard version 2");
  write_bytes(p, llmc(20240801, 3, 0));
  expect_error(open, p, "llm.c shard version 3 (expected 1 or 7)");
  write_bytes(p, llmc(20240520, 1, 50) + std::string(20, '\0'));
  expect_error(open, p, "header says 50 tokens of 2 bytes but the file holds only 10");
  write_bytes(p, llmc(20240801, 7, -5));
  expect_error(open, p, "negative");
  write_bytes(p, llmc(12345, 1, 0));
  expect_error([&] { TokenShard::open(p, ShardFormat::llmc); }, p, "bad magic 12345");
}

TEST(ForeignShards, FormatNames) {
  EXPECT_EQ(kd::data::parse_shard_format("llmc", "data.format"), ShardFormat::llmc);
  EXPECT_EQ(kd::data::parse_shard_format("auto", "data.format"), ShardFormat::auto_detect);
  expect_error([] { kd::data::parse_shard_format("hdf5", "data.format"); }, "data.format", "\"hdf5\"");
}

// ---------------------------------------------------------------- prepare_corpus

std::vector<std::string> documents_in_path_order() {
  // corpus.jsonl (5 objects on 6 lines, one blank) sorts before the doc_*.txt files.
  std::vector<std::string> docs = {
      "A short note: the library opens at 9 and closes at 17:30 on weekdays.",
      "Rain is expected tonight.\nTake an umbrella if you're walking home.",
      "The committee approved the budget (3 votes to 1) and adjourned at 21:05.",
      "Unicode works too: naïve café, 東京, Ελλάδα, and a rocket 🚀.",
      "Quotes \"inside\" text, a tab\there, and a backslash \\ end.",
  };
  for (const char* name : {"doc_a_harbor.txt", "doc_b_recipe.txt", "doc_c_languages.txt", "doc_d_notes.txt"})
    docs.push_back(slurp(kDataDir + "/" + name));
  return docs;
}

TEST(PrepareCorpus, SplitsTrainsEncodesAndIsThreadIndependent) {
  const std::vector<std::string> docs = documents_in_path_order();
  std::string want_train, want_val;
  std::size_t train_bytes = 0, val_bytes = 0;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    const bool val = (i + 1) % 3 == 0;  // the 3rd, 6th and 9th documents
    (val ? want_val : want_train) += docs[i] + "<|endoftext|>";
    (val ? val_bytes : train_bytes) += docs[i].size();
  }

  TempDir dir;
  std::vector<std::string> outputs;
  for (int threads : {1, 2}) {
    kd::data::PrepareSpec spec;
    spec.inputs = {kDataDir};
    spec.vocab_size = 500;
    spec.val_every = 3;
    spec.threads = threads;
    spec.out_dir = dir.file("out" + std::to_string(threads));
    std::vector<std::string> lines;
    spec.progress = [&](const std::string& line) { lines.push_back(line); };
    const kd::data::PrepareResult r = kd::data::prepare_corpus(spec);
    EXPECT_FALSE(lines.empty());
    EXPECT_EQ(r.train_docs, 6u);
    EXPECT_EQ(r.val_docs, 3u);
    EXPECT_EQ(r.train_bytes, train_bytes);
    EXPECT_EQ(r.val_bytes, val_bytes);
    EXPECT_EQ(r.vocab_size, 500);

    const kd::data::BpeTokenizer tok = kd::data::BpeTokenizer::load(spec.out_dir + "/tokenizer.json");
    EXPECT_EQ(tok.hash(), r.tokenizer_hash);
    const TokenShard train = TokenShard::open(spec.out_dir + "/train.bin");
    const TokenShard val = TokenShard::open(spec.out_dir + "/val.bin");
    EXPECT_EQ(train.format(), ShardFormat::kdtrain);
    EXPECT_EQ(train.token_bytes(), 2u);
    EXPECT_EQ(train.size(), r.train_tokens);
    EXPECT_EQ(val.size(), r.val_tokens);
    EXPECT_EQ(train.text_bytes(), train_bytes);
    EXPECT_EQ(val.text_bytes(), val_bytes);
    EXPECT_EQ(train.tokenizer_hash(), tok.hash());
    EXPECT_EQ(tok.decode(read_all(train)), want_train);
    EXPECT_EQ(tok.decode(read_all(val)), want_val);
    const std::vector<std::int32_t> ids = read_all(train);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.eot_id()), 6);
    EXPECT_EQ(ids.back(), tok.eot_id());

    outputs.push_back(slurp(spec.out_dir + "/tokenizer.json") + slurp(spec.out_dir + "/train.bin") +
                      slurp(spec.out_dir + "/val.bin"));
  }
  EXPECT_EQ(outputs[0], outputs[1]);
}

TEST(PrepareCorpus, TokenizerSeesOnlyTrainingDocuments) {
  // A word that occurs only in the validation document must not become a token.
  TempDir dir;
  std::filesystem::create_directories(dir.file("in"));
  write_bytes(dir.file("in/1.txt"), "the cat sat on the mat, the cat sat. ");
  write_bytes(dir.file("in/2.txt"), "zyzzyva zyzzyva zyzzyva zyzzyva zyzzyva zyzzyva");
  kd::data::PrepareSpec spec;
  spec.inputs = {dir.file("in")};
  spec.vocab_size = 300;
  spec.val_every = 2;
  spec.out_dir = dir.file("out");
  const kd::data::PrepareResult r = kd::data::prepare_corpus(spec);
  EXPECT_EQ(r.val_docs, 1u);
  const kd::data::BpeTokenizer tok = kd::data::BpeTokenizer::load(spec.out_dir + "/tokenizer.json");
  for (std::int32_t id = 256; id < tok.eot_id(); ++id)
    EXPECT_EQ(std::string(tok.token_bytes(id)).find('z'), std::string::npos) << tok.token_bytes(id);
  EXPECT_LT(r.vocab_size, 300);  // a tiny corpus runs out of pairs
}

TEST(PrepareCorpus, NoValidationSplit) {
  TempDir dir;
  kd::data::PrepareSpec spec;
  spec.inputs = {kDataDir + "/doc_a_harbor.txt", kDataDir + "/corpus.jsonl"};
  spec.vocab_size = 300;
  spec.val_every = 0;
  spec.out_dir = dir.path();
  write_bytes(dir.file("val.bin"), "stale");
  const kd::data::PrepareResult r = kd::data::prepare_corpus(spec);
  EXPECT_EQ(r.train_docs, 6u);
  EXPECT_EQ(r.val_docs, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("val.bin")));
}

TEST(PrepareCorpus, BadInputIsNamed) {
  TempDir dir;
  kd::data::PrepareSpec spec;
  spec.vocab_size = 300;
  spec.out_dir = dir.file("out");
  const auto run = [&] { kd::data::prepare_corpus(spec); };

  spec.inputs = {dir.file("nope")};
  expect_error(run, dir.file("nope"), "does not exist");

  const std::string jl = dir.file("c.jsonl");
  write_bytes(jl, "{\"text\": \"fine\"}\n{\"text\": unquoted}\n");
  spec.inputs = {jl};
  expect_error(run, jl + ":2", "not a JSON object");
  write_bytes(jl, "{\"text\": \"fine\"}\n\n{\"body\": \"x\"}\n");
  expect_error(run, jl + ":3", "no \"text\" field");
  write_bytes(jl, "{\"text\": 5}\n");
  expect_error(run, jl + ":1", "field \"text\" must be a string");

  std::filesystem::create_directories(dir.file("empty"));
  spec.inputs = {dir.file("empty")};
  expect_error(run, dir.file("empty"), "holds no documents");

  spec.inputs = {kDataDir + "/doc_a_harbor.txt"};
  spec.val_every = 1;
  expect_error(run, "val_every 1", "no training text");
}

}  // namespace
