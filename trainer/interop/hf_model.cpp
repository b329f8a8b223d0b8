#include "trainer/interop/hf_model.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "trainer/interop/safetensors.h"
#include "trainer/model/llama.h"
#include "base/errors.h"
#include "base/files.h"
#include "base/file_io.h"

namespace kd::interop {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Keys that do not change the forward's math: read past.
const std::set<std::string> kIgnored = {
    "architectures", "model_type", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype", "dtype",
    "transformers_version", "use_cache", "initializer_range", "max_position_embeddings", "_name_or_path",
    "attention_dropout", "pretraining_tp", "output_attentions", "output_hidden_states", "return_dict"};

std::string dims(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string read_text(const fs::path& p) {
  require_regular_file(p.string(), "the file");  // a FIFO would block the read
  std::ifstream f(p, std::ios::binary);
  KD_CHECK_INPUT(f.good(), "{}: cannot open", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

ModelSpec parse_hf_config(const std::string& text, const std::string& where) {
  json c;
  try {
    c = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: not JSON ({})", where, e.what()));
  }
  KD_CHECK_INPUT(c.is_object(), "{}: not a JSON object", where);
  auto key_error = [&](const std::string& k, const std::string& why) {
    return InputError(fmt::format("{}: key '{}' {}", where, k, why));
  };
  auto integer = [&](const std::string& k, bool required, int fallback) -> int {
    if (!c.contains(k) || c[k].is_null()) {
      if (required) throw key_error(k, "is required");
      return fallback;
    }
    if (!c[k].is_number_integer() || c[k].get<std::int64_t>() <= 0 || c[k].get<std::int64_t>() > (1 << 30)) {
      throw key_error(k, fmt::format("must be a positive integer (got {})", c[k].dump()));
    }
    return c[k].get<int>();
  };
  auto number = [&](const std::string& k, double fallback) -> double {
    if (!c.contains(k) || c[k].is_null()) return fallback;
    if (!c[k].is_number() || c[k].get<double>() <= 0) throw key_error(k, fmt::format("must be a positive number (got {})", c[k].dump()));
    return c[k].get<double>();
  };
  auto flag_off = [&](const std::string& k) {
    if (c.contains(k) && !c[k].is_null() && c[k] != false) {
      throw key_error(k, fmt::format("is {}: kdtrain's Llama has no such term; refusing rather than importing "
                                     "wrong logits", c[k].dump()));
    }
  };
  if (c.contains("model_type") && c["model_type"] != "llama") {
    throw key_error("model_type", fmt::format("is {}: only Llama-family models (\"llama\") are imported",
                                              c["model_type"].dump()));
  }
  if (c.contains("architectures")) {
    const auto& a = c["architectures"];
    if (!a.is_array() || a.size() != 1 || a[0] != "LlamaForCausalLM") {
      throw key_error("architectures", fmt::format("is {}: kdtrain imports LlamaForCausalLM", a.dump()));
    }
  }
  ModelSpec s;
  s.vocab = integer("vocab_size", true, 0);
  s.d_model = integer("hidden_size", true, 0);
  s.n_layers = integer("num_hidden_layers", true, 0);
  s.n_heads = integer("num_attention_heads", true, 0);
  s.n_kv_heads = integer("num_key_value_heads", false, s.n_heads);
  s.d_ff = integer("intermediate_size", true, 0);
  s.rope_theta = number("rope_theta", 10000.0);
  s.norm_eps = number("rms_norm_eps", 1e-6);  // LlamaConfig's default
  if (c.contains("head_dim") && !c["head_dim"].is_null()) {
    const int hd = integer("head_dim", true, 0);
    if (hd != s.d_model / s.n_heads || s.d_model % s.n_heads != 0) s.head_dim_override = hd;
  }
  if (c.contains("tie_word_embeddings")) {
    if (!c["tie_word_embeddings"].is_boolean()) throw key_error("tie_word_embeddings", "must be true or false");
    s.tie_embeddings = c["tie_word_embeddings"].get<bool>();
  }
  if (c.contains("hidden_act") && c["hidden_act"] != "silu") {
    throw key_error("hidden_act", fmt::format("is {}: kdtrain's MLP is SwiGLU (silu)", c["hidden_act"].dump()));
  }
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null()) {
    // Llama 3's scaling is implemented; other kinds (linear, dynamic, yarn, longrope) are not
    const auto& r = c["rope_scaling"];
    const std::string kind = r.is_object() ? r.value("rope_type", r.value("type", std::string())) : std::string();
    if (kind != "llama3") {
      throw key_error("rope_scaling", fmt::format("is {}: kdtrain implements rope_type \"llama3\" only; refusing "
                                                  "rather than importing wrong logits", r.dump()));
    }
    auto part = [&](const char* k) {
      if (!r.contains(k) || !r[k].is_number() || r[k].get<double>() <= 0) {
        throw key_error("rope_scaling", fmt::format("needs a positive number {} (got {})", k, r.dump()));
      }
      return r[k].get<double>();
    };
    for (const auto& [k, v] : r.items()) {
      if (k != "rope_type" && k != "type" && k != "factor" && k != "low_freq_factor" && k != "high_freq_factor" &&
          k != "original_max_position_embeddings") {
        throw key_error("rope_scaling", fmt::format("has '{}', unknown to kdtrain's llama3 scaling", k));
      }
    }
    s.rope_scaling = {part("factor"), part("low_freq_factor"), part("high_freq_factor"),
                      part("original_max_position_embeddings")};
  }
  flag_off("attention_bias");
  flag_off("mlp_bias");
  if (c.contains("sliding_window") && !c["sliding_window"].is_null()) {
    throw key_error("sliding_window", "is set: kdtrain's attention is full causal attention");
  }
  static const std::set<std::string> handled = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                                "num_key_value_heads", "intermediate_size", "rope_theta",
                                                "rms_norm_eps", "head_dim", "tie_word_embeddings", "hidden_act",
                                                "rope_scaling", "attention_bias", "mlp_bias", "sliding_window"};
  for (const auto& [k, v] : c.items()) {
    if (handled.count(k) || kIgnored.count(k)) continue;
    throw key_error(k, "is not known to kdtrain's Llama import (it may change the model's math); refusing rather "
                       "than importing wrong logits");
  }
  s.validate(where);
  return s;
}

std::string hf_config_json(const ModelSpec& s, const data::BpeTokenizer* tok) {
  json c = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"vocab_size", s.vocab},
            {"hidden_size", s.d_model},
            {"num_hidden_layers", s.n_layers},
            {"num_attention_heads", s.n_heads},
            {"num_key_value_heads", s.n_kv_heads},
            {"head_dim", s.head_dim()},
            {"intermediate_size", s.d_ff},
            {"hidden_act", "silu"},
            {"rms_norm_eps", s.norm_eps},
            {"rope_theta", s.rope_theta},
            {"rope_scaling", s.rope_scaling.factor > 0
                                 ? json{{"rope_type", "llama3"},
                                        {"factor", s.rope_scaling.factor},
                                        {"low_freq_factor", s.rope_scaling.low_freq_factor},
                                        {"high_freq_factor", s.rope_scaling.high_freq_factor},
                                        {"original_max_position_embeddings", s.rope_scaling.original_context}}
                                 : json(nullptr)},
            {"attention_bias", false},
            {"mlp_bias", false},
            {"tie_word_embeddings", s.tie_embeddings},
            {"torch_dtype", "float32"}};
  if (tok) {
    if (tok->bos_id() >= 0) c["bos_token_id"] = tok->bos_id();
    c["eos_token_id"] = tok->eot_id();
    if (tok->pad_id() >= 0) c["pad_token_id"] = tok->pad_id();
  }
  return c.dump(2) + "\n";
}

HfModel read_hf_model(const std::string& dir_name) {
  const fs::path dir(dir_name);
  KD_CHECK_INPUT(fs::is_directory(dir), "{}: not a directory (a Hugging Face model directory: config.json, "
                 "model.safetensors)", dir_name);
  const fs::path cfg = dir / "config.json";
  KD_CHECK_INPUT(fs::exists(cfg), "{}: no config.json", dir_name);
  HfModel m;
  m.spec = parse_hf_config(read_text(cfg), cfg.string());
  m.tokenizer = read_hf_tokenizer(dir_name);
  KD_CHECK_INPUT(!m.tokenizer || m.tokenizer->vocab_size() <= m.spec.vocab,
                 "{}: tokenizer.json has {} tokens but config.json's vocab_size is {}", dir_name,
                 m.tokenizer ? m.tokenizer->vocab_size() : 0, m.spec.vocab);
  // shards: the index's weight_map, or the one file
  std::map<std::string, std::string> where;  // tensor -> file
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    json j;
    try {
      j = json::parse(read_text(index));
    } catch (const json::exception& e) {
      throw InputError(fmt::format("{}: not JSON ({})", index.string(), e.what()));
    }
    KD_CHECK_INPUT(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                   "{}: no weight_map object", index.string());
    for (const auto& [name, file] : j["weight_map"].items()) {
      KD_CHECK_INPUT(file.is_string() && file.get<std::string>().find('/') == std::string::npos,
                     "{}: weight_map['{}'] is not a file name in the directory", index.string(), name);
      where[name] = file.get<std::string>();
    }
  } else {
    KD_CHECK_INPUT(fs::exists(dir / "model.safetensors"), "{}: neither model.safetensors nor "
                   "model.safetensors.index.json", dir_name);
    const SafetensorsFile one((dir / "model.safetensors").string());
    for (const auto& t : one.tensors()) where[t.name] = "model.safetensors";
  }
  auto file = [&](const std::string& name) -> SafetensorsFile& {
    auto& f = files[name];
    if (!f) f = std::make_unique<SafetensorsFile>((dir / name).string());
    return *f;
  };
  const LlamaLayout layout(m.spec, m.table);
  m.params.resize(m.table.total(), "the model's parameters");
  std::set<std::string> used;
  for (const auto& t : m.table.tensors()) {
    const auto it = where.find(t.name);
    KD_CHECK_INPUT(it != where.end(), "{}: tensor '{}' is missing (config.json's shape needs it)", dir_name, t.name);
    SafetensorsFile& f = file(it->second);
    const SafeTensor* st = f.find(t.name);
    KD_CHECK_INPUT(st != nullptr, "{}: tensor '{}' is not in {} (the index says it is)", dir_name, t.name, it->second);
    KD_CHECK_INPUT(st->shape == t.shape, "{}: tensor '{}' has shape {}, config.json's model needs {}", f.path(),
                   t.name, dims(st->shape), dims(t.shape));
    f.read_float(*st, m.params.data() + t.offset);
    used.insert(t.name);
  }
  for (const auto& [name, file_name] : where) {
    if (used.count(name)) continue;
    // a tied model may still carry lm_head (the embedding again); old exports carry RoPE tables
    if (name == "lm_head.weight" && m.spec.tie_embeddings) continue;
    if (name.size() > 20 && name.ends_with(".rotary_emb.inv_freq")) continue;
    // kdtrain's own quantized export: the model imports as its dequantized weights
    if (is_quant_tensor_name(name) && file(file_name).metadata().count(kQuantMetadataKey)) {
      ++m.skipped_quant_tensors;
      continue;
    }
    throw InputError(fmt::format("{}: tensor '{}' ({}) is not part of a Llama of config.json's shape", dir_name, name,
                                 file_name));
  }
  return m;
}

std::optional<data::BpeTokenizer> read_hf_tokenizer(const std::string& dir_name) {
  const fs::path dir(dir_name), path = dir / "tokenizer.json";
  if (!fs::exists(path)) return std::nullopt;
  std::optional<std::int32_t> eos;
  if (fs::exists(dir / "config.json")) {
    const json c = json::parse(read_text(dir / "config.json"), nullptr, false);
    json id = c.is_object() ? c.value("eos_token_id", json()) : json();
    if (id.is_array() && !id.empty()) id = id[0];  // Llama 3.1 Instruct lists several; the first ends a text
    if (!id.is_null()) {
      KD_CHECK_INPUT(id.is_number_integer(), "{}: key 'eos_token_id' must be an integer or a list of them (got {})",
                     (dir / "config.json").string(), id.dump());
      eos = id.get<std::int32_t>();
    }
  }
  if (eos) return data::BpeTokenizer::from_hf_json_text(read_text(path), path.string(), eos);
  return data::BpeTokenizer::load(path.string());
}

void write_hf_model(const std::string& dir_name, const ModelSpec& spec, const ParamTable& table, const float* params,
                    const data::BpeTokenizer* tokenizer, const QuantTensors* quant) {
  const fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RuntimeFailure(fmt::format("{}: cannot make the directory ({})", dir_name, ec.message()));
  std::vector<SafeTensorOut> out;
  for (const auto& t : table.tensors()) {
    if (t.has(kAuxiliary)) continue;
    out.push_back({t.name, t.shape, params + t.offset});
  }
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (quant) {
    out.insert(out.end(), quant->tensors.begin(), quant->tensors.end());
    metadata.insert(quant->metadata.begin(), quant->metadata.end());
  }
  write_safetensors((dir / "model.safetensors").string(), out, metadata);
  auto write_text = [&](const std::string& name, const std::string& text) {
    write_file_atomic((dir / name).string(), text);  // checked to the last byte, fsync'ed
  };
  if (tokenizer) {
    write_text("tokenizer.json", tokenizer->to_hf_json_text());
    write_text("tokenizer_config.json", tokenizer->hf_tokenizer_config_json());
  }
  write_text("config.json", hf_config_json(spec, tokenizer));  // last: its presence marks a whole export
}

}  // namespace kd::interop
