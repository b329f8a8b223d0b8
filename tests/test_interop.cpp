// Hugging Face interop (trainer/interop): a Llama directory written by an independent script
// (scripts/hf_llama_ref.py: its own safetensors writer, shards, F32/F16/BF16 tensors, GQA,
// untied head) imports with the logits of its own float64 LlamaForCausalLM forward; export
// then import gives the same parameters bit for bit; bad files and configs are InputErrors
// naming the file, tensor or key.
// Tolerance against the reference: 2e-5 of the largest logit (float32 through two blocks
// against float64).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/temp_files.h"
#include "trainer/interop/hf_model.h"
#include "trainer/interop/safetensors.h"
#include "trainer/model/llama.h"
#include "base/errors.h"

namespace {

namespace fs = std::filesystem;
const std::string kFixture = std::string(KD_FIXTURES_DIR) + "/hf_tiny";

std::vector<float> logits_of(const kd::interop::HfModel& m, const std::vector<std::int32_t>& tokens, int batch) {
  kd::ParamTable table;
  const kd::LlamaLayout lay(m.spec, table);
  const int seq = int(tokens.size()) / batch, rows = batch * seq;
  kd::FrozenActivations<float> a;
  a.build(m.spec, batch, seq, 64, {});
  kd::llama_forward_frozen(lay, m.params.data(), tokens.data(), a);
  std::vector<float> out(std::size_t(rows) * std::size_t(m.spec.vocab));
  kd::head_forward_frozen(lay, m.params.data(), out.data(), a.final_norm, rows);
  return out;
}

std::vector<std::int32_t> reference_tokens(const std::string& fixture = kFixture) {
  std::ifstream f(fixture + "/reference.json");
  const auto j = nlohmann::json::parse(f);
  std::vector<std::int32_t> t;
  for (const auto& row : j["tokens"]) {
    for (const auto& v : row) t.push_back(v.get<std::int32_t>());
  }
  return t;
}

fs::path scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("kd_interop_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

template <class F>
void expect_input_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL() << "no error";
  } catch (const kd::InputError& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

// hf_tiny: plain RoPE, untied head, two shards; hf_llama3: Llama 3.1's RoPE scaling, tied head.
TEST(HfInterop, ImportsIndependentlyWrittenLlamasWithTheirLogits) {
  for (const std::string name : {"hf_tiny", "hf_llama3"}) {
    SCOPED_TRACE(name);
    const std::string dir = std::string(KD_FIXTURES_DIR) + "/" + name;
    const auto m = kd::interop::read_hf_model(dir);
    EXPECT_EQ(m.spec.n_kv_heads, 2);
    EXPECT_EQ(m.spec.tie_embeddings, name == "hf_llama3");
    EXPECT_EQ(m.spec.rope_scaling.factor, name == "hf_llama3" ? 8.0 : 0.0);
    EXPECT_EQ(m.spec.rope_theta, 500000.0);
    const auto got = logits_of(m, reference_tokens(dir), 2);
    const kd::interop::SafetensorsFile ref(dir + "/reference.safetensors");
    std::vector<float> want(got.size());
    ASSERT_EQ(std::size_t(ref.find("logits")->numel()), want.size());
    ref.read_float(*ref.find("logits"), want.data());
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])));
      scale = std::max(scale, std::fabs(double(want[i])));
    }
    EXPECT_LT(worst, 2e-5 * scale) << "largest logit difference " << worst << " of " << scale;
    // the scaling matters here: without it the logits are elsewhere
    if (name == "hf_llama3") {
      auto plain = kd::interop::read_hf_model(dir);
      plain.spec.rope_scaling = {};
      const auto off = logits_of(plain, reference_tokens(dir), 2);
      double moved = 0;
      for (std::size_t i = 0; i < want.size(); ++i) moved = std::max(moved, std::fabs(double(off[i]) - double(want[i])));
      EXPECT_GT(moved, 1e-2 * scale) << "the fixture does not exercise the RoPE scaling";
    }
  }
}

TEST(HfInterop, ExportThenImportIsBitIdentical) {
  const auto m = kd::interop::read_hf_model(std::string(KD_FIXTURES_DIR) + "/hf_llama3");
  const fs::path dir = scratch("roundtrip");
  kd::interop::write_hf_model(dir.string(), m.spec, m.table, m.params.data(), nullptr);
  const auto back = kd::interop::read_hf_model(dir.string());
  ASSERT_EQ(back.table.total(), m.table.total());
  EXPECT_EQ(0, std::memcmp(back.params.data(), m.params.data(), sizeof(float) * m.table.total()));
  EXPECT_EQ(back.spec.rope_scaling.factor, 8.0);
  EXPECT_EQ(back.spec.rope_scaling.original_context, 16.0);
  const auto tokens = reference_tokens();
  EXPECT_EQ(logits_of(back, tokens, 2), logits_of(m, tokens, 2));
  // an untied model with its own head_dim too
  kd::ModelSpec s = m.spec;
  s.tie_embeddings = false;
  s.head_dim_override = 32;  // 4 heads of 32 over d_model 64
  kd::ParamTable t;
  const kd::LlamaLayout lay(s, t);
  std::vector<float> p(t.total());
  lay.init(p.data(), 3, 0.05);
  const fs::path dir2 = scratch("tied");
  kd::interop::write_hf_model(dir2.string(), s, t, p.data(), nullptr);
  const auto tied = kd::interop::read_hf_model(dir2.string());
  EXPECT_FALSE(tied.spec.tie_embeddings);
  EXPECT_EQ(tied.spec.head_dim(), 32);
  EXPECT_EQ(0, std::memcmp(tied.params.data(), p.data(), sizeof(float) * p.size()));
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

TEST(HfInterop, TokenizerTravelsWithTheModel) {
  // The Llama 3 style tokenizer of scripts/hf_tokenizer_ref.py with a model sized for it:
  // export writes tokenizer.json, tokenizer_config.json and the ids in config.json; import
  // reads back the same tokenizer (same hash: same ids for every text).
  const auto tok = kd::data::BpeTokenizer::load(std::string(KD_FIXTURES_DIR) + "/hf_tok_llama3/tokenizer.json");
  kd::ModelSpec s = kd::interop::read_hf_model(std::string(KD_FIXTURES_DIR) + "/hf_llama3").spec;
  s.vocab = int(tok.vocab_size());
  kd::ParamTable t;
  const kd::LlamaLayout lay(s, t);
  std::vector<float> p(t.total());
  lay.init(p.data(), 5, 0.05);
  const fs::path dir = scratch("with_tokenizer");
  kd::interop::write_hf_model(dir.string(), s, t, p.data(), &tok);
  const auto back = kd::interop::read_hf_model(dir.string());
  ASSERT_TRUE(back.tokenizer.has_value());
  EXPECT_EQ(back.tokenizer->hash(), tok.hash());
  EXPECT_EQ(back.tokenizer->bos_id(), tok.bos_id());
  EXPECT_EQ(back.tokenizer->eot_id(), tok.eot_id());
  const auto cfg = nlohmann::json::parse(kdtest::slurp((dir / "config.json").string()));
  EXPECT_EQ(cfg["bos_token_id"], tok.bos_id());
  EXPECT_EQ(cfg["eos_token_id"], tok.eot_id());

  // config.json's eos_token_id decides the end of text, a list's first entry (Llama 3.1 Instruct)
  auto edited = cfg;
  edited["eos_token_id"] = {tok.bos_id() + 2, tok.eot_id()};
  kdtest::write_bytes((dir / "config.json").string(), edited.dump());
  EXPECT_EQ(kd::interop::read_hf_tokenizer(dir.string())->eot_id(), tok.bos_id() + 2);
  // a tokenizer larger than the model's vocabulary is refused, naming both
  edited["vocab_size"] = 300;
  edited["eos_token_id"] = tok.eot_id();
  kdtest::write_bytes((dir / "config.json").string(), edited.dump());
  try {
    (void)kd::interop::read_hf_model(dir.string());
    ADD_FAILURE() << "a 562-token tokenizer was accepted for a 300-token model";
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json has 562 tokens but config.json's vocab_size is 300"),
              std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// A copy of the fixture with one file changed by `edit`.
fs::path edited(const std::string& name, const std::function<void(const fs::path&)>& edit) {
  const fs::path dir = scratch(name);
  fs::copy(kFixture, dir);
  edit(dir);
  return dir;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A one-tensor safetensors file with this header (the data: `data_bytes` zero bytes).
std::string safetensors_bytes(const std::string& header, std::size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[std::size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

TEST(HfInterop, BadFilesNameTheFileAndTensor) {
  const std::string shard = "model-00002-of-00002.safetensors";
  {  // truncated: the last bytes of a shard are gone
    const auto dir = edited("trunc", [&](const fs::path& d) {
      const std::string b = read_file(d / shard);
      write_file(d / shard, b.substr(0, b.size() - 100));
    });
    expect_input_error([&] { kd::interop::read_hf_model(dir.string()); }, {shard, "outside the", "truncated"});
    fs::remove_all(dir);
  }
  const fs::path f = scratch("one.safetensors");
  // a header whose offsets disagree with the shape
  write_file(f, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20));
  expect_input_error([&] { kd::interop::SafetensorsFile s(f.string()); }, {f.string(), "'w'", "hold 20 bytes", "needs 24"});
  // a header longer than the file
  std::string lie = safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  lie[0] = char(0xff);
  write_file(f, lie);
  expect_input_error([&] { kd::interop::SafetensorsFile s(f.string()); }, {f.string(), "header claims"});
  // overlapping tensors
  write_file(f, safetensors_bytes(
                    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  expect_input_error([&] { kd::interop::SafetensorsFile s(f.string()); }, {"overlap"});
  // a dtype kdtrain does not read
  write_file(f, safetensors_bytes(R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", 16));
  const kd::interop::SafetensorsFile s(f.string());
  std::vector<float> out(2);
  expect_input_error([&] { s.read_float(*s.find("w"), out.data()); }, {"'w'", "dtype F64", "F32, F16 and BF16"});
  fs::remove(f);
}

// Sizes computed from a file cannot wrap around: a shape of 2^32 x 2^32 F32 elements has
// 2^66 bytes, which read as 0 bytes in 64 bits (issue 20); refused naming the tensor.
TEST(HfInterop, SizesThatOverflowAreRefusedByName) {
  const fs::path f = scratch("overflow.safetensors");
  write_file(f, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0));
  expect_input_error([&] { kd::interop::SafetensorsFile s(f.string()); }, {f.string(), "'w'", "overflow"});
  // 2^62 elements fit an int64, their 2^64 bytes do not
  write_file(f, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0));
  expect_input_error([&] { kd::interop::SafetensorsFile s(f.string()); }, {f.string(), "'w'", "overflow"});
  fs::remove(f);
  // config.json sizes whose parameter count does not fit 64 bits
  const auto dir = edited("huge", [&](const fs::path& d) {
    auto c = nlohmann::json::parse(read_file(d / "config.json"));
    c["vocab_size"] = 1 << 30;
    c["hidden_size"] = 1 << 30;
    c["intermediate_size"] = 1 << 30;
    c["num_hidden_layers"] = 1;
    c["num_attention_heads"] = 1 << 20;
    c["num_key_value_heads"] = 1 << 20;
    c.erase("head_dim");
    write_file(d / "config.json", c.dump());
    fs::remove(d / "tokenizer.json");
  });
  expect_input_error([&] { kd::interop::read_hf_model(dir.string()); }, {"overflow"});
  fs::remove_all(dir);
}

TEST(HfInterop, ConfigKeysThatChangeTheMathAreRefusedByName) {
  const std::string base = read_file(kFixture + "/config.json");
  auto with = [&](const std::string& key, const nlohmann::json& value) {
    auto j = nlohmann::json::parse(base);
    j[key] = value;
    return j.dump();
  };
  auto refuse = [&](const std::string& key, const nlohmann::json& value) {
    expect_input_error([&] { kd::interop::parse_hf_config(with(key, value), "x/config.json"); },
                       {"x/config.json", "'" + key + "'"});
  };
  refuse("rope_scaling", {{"rope_type", "yarn"}, {"factor", 8.0}});
  refuse("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}});  // without its other parts
  refuse("attention_bias", true);
  refuse("mlp_bias", true);
  refuse("sliding_window", 4096);
  refuse("hidden_act", "gelu");
  refuse("partial_rotary_factor", 0.5);  // not on the allow-list
  refuse("model_type", "mistral");
  refuse("hidden_size", -3);
  // harmless keys and explicit defaults pass
  EXPECT_NO_THROW(kd::interop::parse_hf_config(with("use_cache", false), "x"));
  EXPECT_NO_THROW(kd::interop::parse_hf_config(with("rope_scaling", nullptr), "x"));
  // a missing tensor names it
  const auto dir = edited("missing", [&](const fs::path& d) {
    auto j = nlohmann::json::parse(read_file(d / "config.json"));
    j["num_hidden_layers"] = 3;
    write_file(d / "config.json", j.dump());
  });
  expect_input_error([&] { kd::interop::read_hf_model(dir.string()); }, {"model.layers.2.", "missing"});
  fs::remove_all(dir);
}

}  // namespace
