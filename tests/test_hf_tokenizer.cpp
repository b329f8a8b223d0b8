// Hugging Face tokenizer.json support, against an independent reference: the fixtures
// tests/fixtures/hf_tok_{llama3,gpt2} were written by scripts/hf_tokenizer_ref.py (its own
// BPE trainer and GPT-2-style encoder, Python's `regex` module for the patterns), with the
// ids it gives for multilingual text, emoji sequences and bytes that are not UTF-8. Ids must
// agree exactly: a tokenizer that is off by one id is a different model input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>
#include <string>
#include <vector>

#include "data/tokenizer/bpe_tokenizer.h"
#include "data/tokenizer/bpe_trainer.h"
#include "data/tokenizer/pretokenize.h"
#include "data/tokenizer/regex_pretokenizer.h"
#include "tests/support/temp_files.h"
#include "base/errors.h"

namespace {

using kd::data::BpeTokenizer;
using nlohmann::json;

std::string fixture(const std::string& name) { return std::string(KD_FIXTURES_DIR) + "/" + name; }

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += char(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

void expect_reference_ids(const BpeTokenizer& tok, const json& enc) {
  EXPECT_EQ(tok.vocab_size(), enc["vocab_size"].get<std::int64_t>());
  EXPECT_EQ(tok.eot_id(), enc["eot_id"].get<int>());
  EXPECT_EQ(tok.bos_id(), enc["bos_id"].get<int>());
  for (const json& c : enc["cases"]) {
    const std::string text = from_hex(c["hex"]);
    const auto want = c["ids"].get<std::vector<std::int32_t>>();
    const std::vector<std::int32_t> got = tok.encode(text);
    EXPECT_EQ(got, want) << "text: " << text;
    EXPECT_EQ(tok.decode(got), text);
  }
}

class HfTokenizerFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(HfTokenizerFixture, EncodesAsTheReferenceDoes) {
  const std::string dir = fixture(GetParam());
  const json enc = json::parse(kdtest::slurp(dir + "/encodings.json"));
  // load() takes the end-of-text token from tokenizer_config.json beside the file.
  const BpeTokenizer tok = BpeTokenizer::load(dir + "/tokenizer.json");
  EXPECT_FALSE(tok.native());
  expect_reference_ids(tok, enc);

  // kdtrain's envelope (checkpoints, prepare's output) and the regenerated tokenizer.json
  // give the same tokenizer back.
  const BpeTokenizer again = BpeTokenizer::from_json_text(tok.to_json_text(), "envelope");
  EXPECT_EQ(again.hash(), tok.hash());
  expect_reference_ids(again, enc);
  const BpeTokenizer hf = BpeTokenizer::from_hf_json_text(tok.to_hf_json_text(), "regenerated", tok.eot_id());
  EXPECT_EQ(hf.hash(), tok.hash());
  expect_reference_ids(hf, enc);
}

INSTANTIATE_TEST_SUITE_P(Styles, HfTokenizerFixture, ::testing::Values("hf_tok_llama3", "hf_tok_gpt2"));

TEST(HfTokenizer, Llama3IgnoreMergesReachesWholeWordTokens) {
  // " distilling" is in the fixture's vocab but no merge makes it: only ignore_merges does.
  const BpeTokenizer tok = BpeTokenizer::load(fixture("hf_tok_llama3") + "/tokenizer.json");
  const std::vector<std::int32_t> ids = tok.encode(" distilling");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(tok.decode(ids), " distilling");
}

// A text of characters drawn from every class of gpt2-approx-v1 and their borders.
std::string random_valid_text(std::mt19937& rng, int chars) {
  static const char32_t pool[] = {
      'a', 'Z', '0', '9', ' ', ' ', ' ', '\n', '\t', '\r', '\x0b', '\x1c', '\'', 's', 't', 'l', 'd', 'r', 'e', 'v',
      'm', '!', '.', '-', '_', '~', 0x7F, 0x01, 0x85, 0xA0, 0xAA, 0xB5, 0xBA, 0xA9, 0xBF, 0xC0, 0xD7, 0xF7, 0xE9,
      0x300, 0x36F, 0x370, 0x430, 0x1680, 0x2000, 0x200A, 0x200B, 0x2028, 0x2029, 0x202F, 0x205F, 0x2060, 0x2014,
      0x2BFF, 0x2C00, 0x3000, 0x3001, 0x303F, 0x3040, 0x65E5, 0xFE0F, 0xFE10, 0x1F600, 0x1F3FD, 0x1FAFF, 0x1FB00,
      0x10FFFF};
  std::uniform_int_distribution<std::size_t> pick(0, std::size(pool) - 1);
  std::string out;
  for (int i = 0; i < chars; ++i) kd::data::utf8_append(pool[pick(rng)], out);
  return out;
}

TEST(HfTokenizer, KdtrainPretokenizerAsAPatternCutsTheSame) {
  // A native tokenizer travels in tokenizer.json as gpt2_approx_v1_pattern(); on valid UTF-8
  // it must cut exactly where the hand-written pre-tokenizer does.
  const kd::data::RegexPretokenizer re(kd::data::gpt2_approx_v1_pattern(), "test");
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::string text = random_valid_text(rng, 1 + int(rng() % 24));
    std::vector<std::string_view> want, got;
    kd::data::pretokenize(text, want);
    re.split(text, got);
    ASSERT_EQ(got, want) << "text bytes: " << text;
  }
}

TEST(HfTokenizer, NativeTokenizerExportsToAnEquivalentHfFile) {
  const std::string corpus =
      "the cat sat on the mat; the cat's hat. Über café 東京 😀😀 1234 5678\n\n  spaces  and\ttabs";
  const std::vector<std::string_view> docs = {corpus, corpus};
  const BpeTokenizer native = kd::data::train_bpe(docs, {.vocab_size = 300, .threads = 1, .progress = {}});
  const BpeTokenizer hf = BpeTokenizer::from_hf_json_text(native.to_hf_json_text(), "export", native.eot_id());
  EXPECT_EQ(hf.vocab_size(), native.vocab_size());
  EXPECT_EQ(hf.eot_id(), native.eot_id());
  EXPECT_EQ(hf.pad_id(), native.pad_id());
  EXPECT_EQ(hf.bos_id(), -1);
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const std::string text = trial == 0 ? corpus : random_valid_text(rng, 40);
    ASSERT_EQ(hf.encode(text), native.encode(text)) << text;
  }
  const json cfg = json::parse(native.hf_tokenizer_config_json());
  EXPECT_EQ(cfg["eos_token"], "<|endoftext|>");
  EXPECT_TRUE(cfg["bos_token"].is_null());
}

// Each refusal names the field, so that a user knows what kdtrain cannot reproduce.
void expect_refused(const std::function<void(json&)>& edit, const std::string& says) {
  json tok = json::parse(kdtest::slurp(fixture("hf_tok_llama3") + "/tokenizer.json"));
  edit(tok);
  try {
    (void)BpeTokenizer::from_hf_json_text(tok.dump(), "tok.json", 0);
    ADD_FAILURE() << "accepted; expected a refusal saying: " << says;
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tok.json"), std::string::npos) << e.what();
  }
}

TEST(HfTokenizer, RefusesWhatItCannotReproduceByName) {
  expect_refused([](json& t) { t["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}}; },
                 "pre_tokenizer is Metaspace: SentencePiece-style");
  expect_refused([](json& t) { t["model"]["byte_fallback"] = true; }, "model.byte_fallback is true");
  expect_refused([](json& t) { t["model"]["type"] = "Unigram"; }, "model.type is \"Unigram\"");
  expect_refused([](json& t) { t["normalizer"] = {{"type", "NFC"}}; }, "normalizer \"NFC\" is not supported");
  expect_refused([](json& t) { t["model"]["dropout"] = 0.1; }, "model.dropout 0.1");
  expect_refused([](json& t) { t["added_tokens"][1]["special"] = false; }, "added_tokens[1] (\"<|end_of_text|>\") is not special");
  expect_refused([](json& t) { t["model"]["merges"][5] = json::array({"zz", "q"}); }, "model.merges[5]");
  expect_refused(
      [](json& t) {
        json& v = t["model"]["vocab"];
        const json id = v["Ā"];  // byte 0x00's spelling
        v.erase("Ā");
        v["ĀĀ"] = id;
      },
      "lacks the byte 0x00");
  expect_refused([](json& t) { t["model"]["vocab"]["extra"] = 9999; },
                 "model.vocab[\"extra\"] has id 9999, but the file has 563 tokens in all");
  // ids are dense: one far beyond the entries given is refused before anything is sized by it
  expect_refused([](json& t) { t["model"]["vocab"]["extra"] = 2147483000; }, "id 2147483000");
  expect_refused([](json& t) { t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(\\p{L}"; },
                 "pre_tokenizer: the pre-tokenizer pattern does not compile");
  expect_refused([](json& t) { t["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; },
                 "behavior \"Removed\" is not supported");
  expect_refused([](json& t) { t["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true; },
                 "add_prefix_space true");
  expect_refused(
      [](json& t) {
        auto& single = t["post_processor"]["processors"][1]["single"];
        single = json::array({single[1], single[0]});
      },
      "the \"single\" template");
  expect_refused([](json& t) { t["decoder"] = {{"type", "Metaspace"}}; }, "decoder of type \"Metaspace\"");
}

TEST(HfTokenizer, BareFileNeedsToKnowItsEndOfText) {
  kdtest::TempDir dir;
  json tok = json::parse(kdtest::slurp(fixture("hf_tok_llama3") + "/tokenizer.json"));
  tok["added_tokens"][1]["content"] = "<|stop|>";
  kdtest::write_bytes(dir.file("tokenizer.json"), tok.dump());
  try {
    (void)BpeTokenizer::load(dir.file("tokenizer.json"));
    ADD_FAILURE() << "accepted a tokenizer whose end-of-text token is unknown";
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot tell which token ends a document"), std::string::npos) << e.what();
  }
  kdtest::write_bytes(dir.file("tokenizer_config.json"), R"({"eos_token": {"content": "<|stop|>"}})");
  EXPECT_EQ(BpeTokenizer::load(dir.file("tokenizer.json")).eot_id(), 560);
  kdtest::write_bytes(dir.file("tokenizer_config.json"), R"({"eos_token": "<|nope|>"})");
  EXPECT_THROW((void)BpeTokenizer::load(dir.file("tokenizer.json")), kd::InputError);
}

}  // namespace
