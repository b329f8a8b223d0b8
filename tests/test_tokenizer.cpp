// The byte-level BPE tokenizer: the pre-tokenizer against GPT-2's splits, training against
// a naive reference trainer, encode against a naive reference encoder, encode→decode on
// arbitrary bytes, determinism across runs and thread counts, and the JSON file's checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/temp_files.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "data/tokenizer/bpe_trainer.h"
#include "data/tokenizer/pretoken_counts.h"
#include "data/tokenizer/pretokenize.h"
#include "base/errors.h"

namespace {

using kdtest::TempDir;

using kd::data::BpeMerge;
using kd::data::BpeTokenizer;

// tests/data: short documents written for kdtrain's tests (no third-party text), dedicated
// to the public domain: English prose, numbers and punctuation, accented words, Greek,
// Cyrillic, CJK, emoji, tabs and Unicode spaces, plus corpus.jsonl.
const std::string kDataDir = std::string(KD_FIXTURES_DIR) + "/../data";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The plain-text documents of tests/data (the JSONL file is prepare_corpus's business).
const std::vector<std::string>& test_documents() {
  static const std::vector<std::string> docs = [] {
    std::vector<std::string> d;
    for (const char* name : {"doc_a_harbor.txt", "doc_b_recipe.txt", "doc_c_languages.txt", "doc_d_notes.txt"})
      d.push_back(slurp(kDataDir + "/" + name));
    return d;
  }();
  return docs;
}

std::vector<std::string_view> views(const std::vector<std::string>& docs) {
  return std::vector<std::string_view>(docs.begin(), docs.end());
}

std::vector<std::string> pieces_of(std::string_view text) {
  std::vector<std::string_view> p;
  kd::data::pretokenize(text, p);
  return std::vector<std::string>(p.begin(), p.end());
}

// Trained once on tests/data, shared by the encode and file tests.
const BpeTokenizer& trained() {
  static const BpeTokenizer tok = [] {
    kd::data::BpeTrainSpec spec;
    spec.vocab_size = 700;
    spec.threads = 2;
    const auto docs = views(test_documents());
    return kd::data::train_bpe(docs, spec);
  }();
  return tok;
}

// Reference BPE: apply every merge in rank order, left to right, non-overlapping, to each
// piece. Quadratic, obviously right.
std::vector<std::int32_t> naive_encode(const std::vector<BpeMerge>& merges, std::string_view text) {
  std::vector<std::int32_t> out;
  for (const std::string& piece : pieces_of(text)) {
    std::vector<std::int32_t> s;
    for (unsigned char c : piece) s.push_back(c);
    for (std::size_t k = 0; k < merges.size() && s.size() > 1; ++k) {
      std::vector<std::int32_t> t;
      for (std::size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == merges[k].left && s[i + 1] == merges[k].right) {
          t.push_back(std::int32_t(256 + k));
          i += 2;
        } else {
          t.push_back(s[i++]);
        }
      }
      s.swap(t);
    }
    out.insert(out.end(), s.begin(), s.end());
  }
  return out;
}

// Reference trainer: recount every pair of every piece before each merge.
std::vector<BpeMerge> naive_train(const std::vector<std::string>& docs, std::size_t n_merges) {
  std::map<std::string, std::uint64_t> counts;
  for (const std::string& d : docs)
    for (const std::string& p : pieces_of(d)) ++counts[p];
  std::vector<std::pair<std::vector<std::int32_t>, std::uint64_t>> words;
  for (const auto& [p, c] : counts) {
    std::vector<std::int32_t> w;
    for (unsigned char ch : p) w.push_back(ch);
    words.emplace_back(w, c);
  }
  std::vector<BpeMerge> merges;
  while (merges.size() < n_merges) {
    std::map<std::pair<std::int32_t, std::int32_t>, std::uint64_t> pc;
    for (const auto& [w, c] : words)
      for (std::size_t i = 0; i + 1 < w.size(); ++i) pc[{w[i], w[i + 1]}] += c;
    if (pc.empty()) break;
    auto best = pc.begin();  // std::map order = lowest pair first, so ties keep the lowest
    for (auto it = pc.begin(); it != pc.end(); ++it)
      if (it->second > best->second) best = it;
    const auto [a, b] = best->first;
    const auto made = std::int32_t(256 + merges.size());
    merges.push_back({a, b});
    for (auto& [w, c] : words) {
      std::vector<std::int32_t> t;
      for (std::size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          t.push_back(made);
          i += 2;
        } else {
          t.push_back(w[i++]);
        }
      }
      w.swap(t);
    }
  }
  return merges;
}

void expect_round_trip(const BpeTokenizer& tok, const std::string& text) {
  const std::vector<std::int32_t> ids = tok.encode(text);
  for (std::int32_t id : ids) ASSERT_LT(id, tok.eot_id()) << "encode emitted a special token";
  ASSERT_EQ(tok.decode(ids), text);
}

std::string expect_input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const kd::InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

// ---------------------------------------------------------------- pre-tokenizer

TEST(Pretokenize, SplitsLikeGpt2) {
  // GPT-2: 'Hello' ' world' "'s" ' 123' '!!'
  EXPECT_EQ(pieces_of("Hello world's 123!!"), (std::vector<std::string>{"Hello", " world", "'s", " 123", "!!"}));
  // A run of spaces gives its last space to the next word; a lone newline stays alone.
  EXPECT_EQ(pieces_of("a  b"), (std::vector<std::string>{"a", " ", " b"}));
  EXPECT_EQ(pieces_of("x\n\ny"), (std::vector<std::string>{"x", "\n", "\n", "y"}));
  EXPECT_EQ(pieces_of("end  "), (std::vector<std::string>{"end", "  "}));
  EXPECT_EQ(pieces_of("  \n  x"), (std::vector<std::string>{"  \n ", " x"}));
  // Contractions are case-sensitive, as in GPT-2; a quote otherwise joins punctuation.
  EXPECT_EQ(pieces_of("I'm don't we'll they're CAN'T"),
            (std::vector<std::string>{"I", "'m", " don", "'t", " we", "'ll", " they", "'re", " CAN", "'", "T"}));
  EXPECT_EQ(pieces_of("!!'s"), (std::vector<std::string>{"!!'", "s"}));
  // Letters then digits then punctuation are separate runs; one leading space joins each.
  EXPECT_EQ(pieces_of("abc123def ...x"), (std::vector<std::string>{"abc", "123", "def", " ...", "x"}));
}

TEST(Pretokenize, UnicodeClasses) {
  EXPECT_EQ(pieces_of("café naïve"), (std::vector<std::string>{"café", " naïve"}));
  EXPECT_EQ(pieces_of("東京 Ελλάδα"), (std::vector<std::string>{"東京", " Ελλάδα"}));
  EXPECT_EQ(pieces_of("hi 🌊🌊!"), (std::vector<std::string>{"hi", " 🌊🌊!"}));  // emoji are "other"
  EXPECT_EQ(pieces_of("a\u00a0b"), (std::vector<std::string>{"a", "\u00a0", "b"}));  // NBSP is whitespace
  EXPECT_EQ(pieces_of("a\u3000\u3000b"), (std::vector<std::string>{"a", "\u3000", "\u3000", "b"}));
  // Invalid UTF-8: each bad byte is "other" by itself, so it joins a punctuation run.
  EXPECT_EQ(pieces_of("a\xff\xfe b"), (std::vector<std::string>{"a", "\xff\xfe", " b"}));
  EXPECT_EQ(pieces_of("x\xc3"), (std::vector<std::string>{"x", "\xc3"}));           // truncated sequence
  EXPECT_EQ(pieces_of("\xed\xa0\x80"), (std::vector<std::string>{"\xed\xa0\x80"}));  // surrogate: 3 others
}

TEST(Pretokenize, PiecesTileArbitraryBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::string joined;
    for (const std::string& p : pieces_of(s)) {
      ASSERT_FALSE(p.empty());
      joined += p;
    }
    ASSERT_EQ(joined, s);
  }
}

TEST(Pretokenize, SafeCutsDoNotChangePieces) {
  // count_pieces cuts long documents only where the pieces stay the same: check that on
  // one long document against counting it uncut.
  std::string big;
  for (int rep = 0; big.size() < (std::size_t(5) << 20) / 2; ++rep)
    for (const std::string& d : test_documents()) big += d + "\n" + std::to_string(rep) + "\n";
  std::map<std::string, std::uint64_t> direct;
  for (const std::string& p : pieces_of(big)) ++direct[p];
  const std::string_view doc[] = {big};
  for (int threads : {1, 2}) {
    const kd::data::PieceCounts pc = kd::data::count_pieces(doc, threads);
    ASSERT_EQ(pc.pieces.size(), direct.size());
    std::size_t i = 0;
    for (const auto& [p, c] : direct) {
      ASSERT_EQ(pc.pieces[i], p);
      ASSERT_EQ(pc.counts[i], c) << p;
      ++i;
    }
  }
}

// ---------------------------------------------------------------- training

TEST(BpeTrain, HandCheckedMerges) {
  // Pieces: "aaab" once, " aaab" twice. (a,a) occurs 6 times → 256 = "aa"; the words become
  // [aa a b]: (aa,a) and (a,b) tie at 3, the lower pair (97,98) wins → 257 = "ab"; then
  // (256,257) 3 times → 258 = "aaab"; then (32,258) twice → 259 = " aaab". Nothing is left to
  // merge, so training stops at 4 merges (vocab 262) though 10 were asked for.
  const std::string_view docs[] = {"aaab aaab aaab"};
  kd::data::BpeTrainSpec spec;
  spec.vocab_size = 258 + 10;
  const BpeTokenizer tok = kd::data::train_bpe(docs, spec);
  EXPECT_EQ(tok.merges(), (std::vector<BpeMerge>{{97, 97}, {97, 98}, {256, 257}, {32, 258}}));
  EXPECT_EQ(tok.vocab_size(), 262);
  EXPECT_EQ(tok.eot_id(), 260);
  EXPECT_EQ(tok.pad_id(), 261);
  EXPECT_EQ(tok.encode("aaab aaab"), (std::vector<std::int32_t>{258, 259}));
  EXPECT_EQ(tok.token_bytes(259), " aaab");
}

TEST(BpeTrain, MatchesNaiveTrainer) {
  const std::vector<BpeMerge> ref = naive_train(test_documents(), 120);
  kd::data::BpeTrainSpec spec;
  spec.vocab_size = 258 + 120;
  const auto docs = views(test_documents());
  const BpeTokenizer tok = kd::data::train_bpe(docs, spec);
  ASSERT_EQ(tok.merges().size(), ref.size());
  for (std::size_t k = 0; k < ref.size(); ++k)
    ASSERT_EQ(tok.merges()[k], ref[k]) << "merge " << k << ": " << tok.token_bytes(std::int32_t(256 + k));
}

TEST(BpeTrain, DeterministicAcrossRunsAndThreads) {
  // A corpus big enough to be cut into chunks (several MiB in one document plus many small
  // ones), trained with 1 and 2 threads, twice.
  std::vector<std::string> docs;
  std::string big;
  std::mt19937 rng(3);
  while (big.size() < (std::size_t(3) << 20)) {
    for (const std::string& d : test_documents()) {
      big += d;
      big += "\nrun " + std::to_string(rng() % 100000) + "\n";
    }
  }
  docs.push_back(big);
  for (int i = 0; i < 200; ++i) docs.push_back(test_documents()[std::size_t(i) % 4].substr(std::size_t(i) % 50));
  const auto v = views(docs);
  std::vector<std::uint64_t> hashes;
  std::vector<std::vector<BpeMerge>> merges;
  for (int threads : {1, 2, 2}) {
    kd::data::BpeTrainSpec spec;
    spec.vocab_size = 1024;
    spec.threads = threads;
    std::size_t calls = 0;
    spec.progress = [&](std::size_t done, std::size_t total) {
      ++calls;
      EXPECT_LE(done, total);
    };
    const BpeTokenizer tok = kd::data::train_bpe(v, spec);
    EXPECT_GT(calls, 0u);
    hashes.push_back(tok.hash());
    merges.push_back(tok.merges());
  }
  EXPECT_EQ(merges[0].size(), 1024u - 258u);
  EXPECT_EQ(merges[0], merges[1]);
  EXPECT_EQ(merges[1], merges[2]);
  EXPECT_EQ(hashes[0], hashes[1]);
  EXPECT_EQ(hashes[1], hashes[2]);
}

TEST(BpeTrain, RejectsBadVocabAndEmptyCorpus) {
  kd::data::BpeTrainSpec spec;
  const std::string_view docs[] = {"some text"};
  spec.vocab_size = 258;
  EXPECT_NE(expect_input_error([&] { kd::data::train_bpe(docs, spec); }).find("vocab_size 258"), std::string::npos);
  spec.vocab_size = (std::int64_t(1) << 31) + 1;
  EXPECT_THROW(kd::data::train_bpe(docs, spec), kd::InputError);
  spec.vocab_size = 300;
  const std::string_view empty[] = {"", "a\nb\nc"};  // no two bytes inside one piece
  EXPECT_THROW(kd::data::train_bpe(empty, spec), kd::InputError);
}

// ---------------------------------------------------------------- encode / decode

TEST(BpeEncode, SpecialTokensAtTheEnd) {
  const BpeTokenizer& tok = trained();
  EXPECT_EQ(tok.vocab_size(), 700);
  EXPECT_EQ(tok.eot_id(), 698);
  EXPECT_EQ(tok.pad_id(), 699);
  EXPECT_EQ(tok.token_bytes(tok.eot_id()), "<|endoftext|>");
  EXPECT_EQ(tok.token_bytes(tok.pad_id()), "<|pad|>");
  // The literal text of a special token is ordinary bytes to encode().
  const std::vector<std::int32_t> ids = tok.encode("a<|endoftext|>b");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.eot_id()), 0);
  std::vector<std::int32_t> with_eot = tok.encode("doc one");
  with_eot.push_back(tok.eot_id());
  EXPECT_EQ(tok.decode(with_eot), "doc one<|endoftext|>");
  EXPECT_THROW(tok.decode(std::vector<std::int32_t>{700}), kd::InputError);
  EXPECT_THROW(tok.decode(std::vector<std::int32_t>{-1}), kd::InputError);
}

TEST(BpeEncode, MatchesNaiveEncoder) {
  const BpeTokenizer& tok = trained();
  for (const std::string& d : test_documents()) EXPECT_EQ(tok.encode(d), naive_encode(tok.merges(), d));
  std::mt19937 rng(11);
  const std::string alphabet = "aaeeiou tnrsl'.,\n";
  for (int trial = 0; trial < 300; ++trial) {
    std::string s(rng() % 60, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    ASSERT_EQ(tok.encode(s), naive_encode(tok.merges(), s)) << s;
  }
  // Long pieces exercise the heap (repeated pairs, equal ranks side by side).
  const std::string runs[] = {std::string(1000, 'a'), std::string(999, ' ') + "x", "ab" + std::string(500, 'b')};
  for (const std::string& s : runs) EXPECT_EQ(tok.encode(s), naive_encode(tok.merges(), s));
}

TEST(BpeEncode, RoundTripOnTextAndArbitraryBytes) {
  const BpeTokenizer& tok = trained();
  for (const std::string& d : test_documents()) expect_round_trip(tok, d);
  for (const char* s : {"", " ", "Hello world's 123!!", "plain ASCII, with punctuation; and digits 0123456789.",
                        "naïve café Zürich São Paulo", "日本語のテキストと中文文本", "🌊⛵🐟🦀☀️🌙✨👍🏽🇳🇴❤️",
                        "mixed: 東京🚀café\t\n\r\n  \u00a0\u3000end", "\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc"})
    expect_round_trip(tok, s);
  // Thousands of random strings: raw bytes (mostly invalid UTF-8), and UTF-8 fragments
  // cut at random places.
  std::mt19937_64 rng(12345);
  const std::string pool = test_documents()[2];  // the multilingual one
  kd::data::BpeEncodeCache cache;
  for (int trial = 0; trial < 4000; ++trial) {
    std::string s;
    if (trial % 2 == 0) {
      s.resize(rng() % 80);
      for (char& c : s) c = static_cast<char>(rng() % 256);
    } else {
      const std::size_t a = rng() % pool.size(), n = rng() % 120;
      s = pool.substr(a, n);
    }
    const std::vector<std::int32_t> ids = tok.encode(s, &cache);
    ASSERT_EQ(tok.decode(ids), s) << "trial " << trial;
    ASSERT_EQ(ids, tok.encode(s)) << "cached and uncached encodings differ";
  }
}

// ---------------------------------------------------------------- file format

TEST(BpeFile, SaveLoadRoundTrip) {
  const BpeTokenizer& tok = trained();
  TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  tok.save(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const BpeTokenizer back = BpeTokenizer::load(path);
  EXPECT_EQ(back.merges(), tok.merges());
  EXPECT_EQ(back.hash(), tok.hash());
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  for (const std::string& d : test_documents()) EXPECT_EQ(back.encode(d), tok.encode(d));
  EXPECT_EQ(back.to_json_text(), slurp(path));
  // The file is plain JSON with the documented fields.
  const std::string text = slurp(path);
  EXPECT_NE(text.find("\"format\": \"kdtrain-bpe\""), std::string::npos);
  EXPECT_NE(text.find("\"<|endoftext|>\": 698"), std::string::npos);
}

TEST(BpeFile, HashTracksTheMerges) {
  const BpeTokenizer a = BpeTokenizer::from_merges({{97, 97}, {256, 98}});
  const BpeTokenizer b = BpeTokenizer::from_merges({{97, 97}, {256, 99}});
  const BpeTokenizer c = BpeTokenizer::from_merges({{97, 97}, {256, 98}});
  EXPECT_NE(a.hash(), b.hash());
  EXPECT_EQ(a.hash(), c.hash());
}

TEST(BpeFile, LoadErrorsNameTheProblem) {
  const std::string good = BpeTokenizer::from_merges({{97, 97}, {256, 98}}).to_json_text();
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const std::size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  const auto err = [](const std::string& text) {
    return expect_input_error([&] { BpeTokenizer::from_json_text(text, "tok.json"); });
  };
  EXPECT_NO_THROW(BpeTokenizer::from_json_text(good, "tok.json"));

  std::string e = err("{\"format\": ");
  EXPECT_NE(e.find("tok.json: not valid JSON"), std::string::npos) << e;
  e = err(with("\"kdtrain-bpe\"", "\"gpt2\""));
  EXPECT_NE(e.find("tok.json: field \"format\" is \"gpt2\""), std::string::npos) << e;
  e = err(with("\"version\": 1", "\"version\": 2"));
  EXPECT_NE(e.find("\"version\" is 2"), std::string::npos) << e;
  e = err(with("[256, 98]", "[257, 98]"));  // merge 1 makes id 257: it cannot use itself
  EXPECT_NE(e.find("\"merges\"[1] = [257, 98] uses an id outside [0, 257)"), std::string::npos) << e;
  e = err(with("[256, 98]", "[97, 97]"));
  EXPECT_NE(e.find("repeats an earlier merge"), std::string::npos) << e;
  e = err(with("\"vocab_size\": 260", "\"vocab_size\": 261"));
  EXPECT_NE(e.find("field \"special_tokens\""), std::string::npos) << e;
  e = err(with("\"<|endoftext|>\": 258", "\"<|endoftext|>\": 259"));
  EXPECT_NE(e.find("\"<|endoftext|>\" must be 258"), std::string::npos) << e;
  e = err(with("[256, 98]", "[256, \"b\"]"));
  EXPECT_NE(e.find("\"merges\"[1] must be a pair of integer ids"), std::string::npos) << e;
  e = err(with("\"pretokenizer\": \"gpt2-approx-v1\",", ""));
  EXPECT_NE(e.find("missing field \"pretokenizer\""), std::string::npos) << e;
  e = err(with("\"byte_level\": true", "\"byte_level\": false"));
  EXPECT_NE(e.find("\"byte_level\""), std::string::npos) << e;

  e = expect_input_error([] { BpeTokenizer::load("/nonexistent/tokenizer.json"); });
  EXPECT_NE(e.find("/nonexistent/tokenizer.json"), std::string::npos) << e;
}

TEST(BpeFile, MergeCountMustMatchVocab) {
  std::string s = BpeTokenizer::from_merges({{97, 97}, {256, 98}}).to_json_text();
  // Declare vocab 259 with matching specials but keep two merges.
  s.replace(s.find("\"vocab_size\": 260"), 17, "\"vocab_size\": 259");
  s.replace(s.find("\"<|endoftext|>\": 258"), 20, "\"<|endoftext|>\": 257");
  s.replace(s.find("\"<|pad|>\": 259"), 14, "\"<|pad|>\": 258");
  const std::string e = expect_input_error([&] { BpeTokenizer::from_json_text(s, "tok.json"); });
  EXPECT_NE(e.find("\"merges\" has 2 entries but vocab_size 259 needs 1"), std::string::npos) << e;
}

}  // namespace
