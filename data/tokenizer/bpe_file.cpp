// The tokenizer's JSON file (format in bpe_tokenizer.h and docs/tokenizer-format.md).
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "data/tokenizer/bpe_tokenizer.h"
#include "base/errors.h"
#include "base/files.h"

namespace kd::data {

namespace {

using nlohmann::json;

const json& field(const json& doc, const char* key, const std::string& source) {
  const auto it = doc.find(key);
  KD_CHECK_INPUT(it != doc.end(), "{}: missing field \"{}\" (not a kdtrain tokenizer file?)", source, key);
  return *it;
}

std::int64_t int_field(const json& doc, const char* key, const std::string& source) {
  const json& v = field(doc, key, source);
  KD_CHECK_INPUT(v.is_number_integer(), "{}: field \"{}\" must be an integer, found {}", source, key, v.dump());
  return v.get<std::int64_t>();
}

std::string string_field(const json& doc, const char* key, const std::string& source) {
  const json& v = field(doc, key, source);
  KD_CHECK_INPUT(v.is_string(), "{}: field \"{}\" must be a string, found {}", source, key, v.dump());
  return v.get<std::string>();
}

json parse_json(std::string_view text, const std::string& source) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
}

// A bare tokenizer.json's end of text: tokenizer_config.json's eos_token, when that file is
// beside it.
std::optional<std::int32_t> eos_beside(const std::string& path, const json& tokenizer) {
  const std::filesystem::path cfg = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (!std::filesystem::exists(cfg)) return std::nullopt;
  std::ifstream in(cfg, std::ios::binary);
  const json c = json::parse(in, nullptr, false);
  KD_CHECK_INPUT(c.is_object(), "{}: not a JSON object", cfg.string());
  json name = c.value("eos_token", json());
  if (name.is_object()) name = name.value("content", json());
  if (!name.is_string()) return std::nullopt;
  for (const json& a : tokenizer.value("added_tokens", json::array()))
    if (a.is_object() && a.value("content", json()) == name && a.value("id", json()).is_number_integer())
      return a["id"].get<std::int32_t>();
  throw InputError(fmt::format("{}: eos_token {} is not an added token of {}", cfg.string(), name.dump(), path));
}

}  // namespace

BpeTokenizer BpeTokenizer::from_json_text(std::string_view text, const std::string& source) {
  return from_document(parse_json(text, source), source);
}

BpeTokenizer BpeTokenizer::from_hf_json_text(std::string_view text, const std::string& source,
                                             std::optional<std::int32_t> eos) {
  return from_hf_json(parse_json(text, source), source, eos);
}

BpeTokenizer BpeTokenizer::from_document(const json& doc, const std::string& source) {
  KD_CHECK_INPUT(doc.is_object(), "{}: the top level must be a JSON object", source);

  KD_CHECK_INPUT(doc.contains("format") || !doc.contains("model"),
                 "{}: a Hugging Face tokenizer.json; load it with its eos id (kdtrain import-hf or prepare "
                 "--tokenizer)", source);
  const std::string format = string_field(doc, "format", source);
  KD_CHECK_INPUT(format == "kdtrain-bpe" || format == "kdtrain-hf-bpe",
                 "{}: field \"format\" is \"{}\", expected \"kdtrain-bpe\" or \"kdtrain-hf-bpe\"", source, format);
  const std::int64_t version = int_field(doc, "version", source);
  if (format == "kdtrain-hf-bpe") {
    KD_CHECK_INPUT(version == 1, "{}: field \"version\" is {}; this kdtrain reads version 1", source, version);
    const std::int64_t eot = int_field(doc, "eot_id", source);
    KD_CHECK_INPUT(eot >= 0 && eot < kMaxBpeVocab, "{}: field \"eot_id\" is {}", source, eot);
    return from_hf_json(field(doc, "hf_tokenizer", source), source + ": field \"hf_tokenizer\"", std::int32_t(eot));
  }
  KD_CHECK_INPUT(version == 1, "{}: field \"version\" is {}; this kdtrain reads version 1", source, version);
  const json& byte_level = field(doc, "byte_level", source);
  KD_CHECK_INPUT(byte_level.is_boolean() && byte_level.get<bool>(),
                 "{}: field \"byte_level\" must be true (only byte-level BPE is supported)", source);
  const std::string pre = string_field(doc, "pretokenizer", source);
  KD_CHECK_INPUT(pre == kPretokenizerName, "{}: field \"pretokenizer\" is \"{}\", expected \"{}\"", source, pre,
                 kPretokenizerName);
  const std::int64_t vocab = int_field(doc, "vocab_size", source);
  KD_CHECK_INPUT(vocab >= kMinBpeVocab && vocab <= kMaxBpeVocab, "{}: field \"vocab_size\" is {}, outside [{}, {}]",
                 source, vocab, kMinBpeVocab, kMaxBpeVocab);

  const json& specials = field(doc, "special_tokens", source);
  KD_CHECK_INPUT(specials.is_object() && specials.size() == 2,
                 "{}: field \"special_tokens\" must be an object with exactly \"{}\" and \"{}\"", source, kEotText,
                 kPadText);
  const std::pair<std::string_view, std::int64_t> expected[] = {{kEotText, vocab - 2}, {kPadText, vocab - 1}};
  for (const auto& [name, id] : expected) {
    const auto it = specials.find(std::string(name));
    KD_CHECK_INPUT(it != specials.end(), "{}: field \"special_tokens\" lacks \"{}\"", source, name);
    KD_CHECK_INPUT(it->is_number_integer() && it->get<std::int64_t>() == id,
                   "{}: field \"special_tokens\": \"{}\" must be {} (vocab_size {} − {}), found {}", source, name, id,
                   vocab, vocab - id, it->dump());
  }

  const json& list = field(doc, "merges", source);
  KD_CHECK_INPUT(list.is_array(), "{}: field \"merges\" must be an array of [a, b] pairs", source);
  KD_CHECK_INPUT(std::int64_t(list.size()) == vocab - 258,
                 "{}: field \"merges\" has {} entries but vocab_size {} needs {} (256 bytes + merges + 2 specials)",
                 source, list.size(), vocab, vocab - 258);
  std::vector<BpeMerge> merges;
  merges.reserve(list.size());
  for (std::size_t k = 0; k < list.size(); ++k) {
    const json& m = list[k];
    const bool ok = m.is_array() && m.size() == 2 && m[0].is_number_integer() && m[1].is_number_integer();
    KD_CHECK_INPUT(ok, "{}: field \"merges\"[{}] must be a pair of integer ids [a, b], found {}", source, k, m.dump());
    const std::int64_t a = m[0].get<std::int64_t>(), b = m[1].get<std::int64_t>();
    KD_CHECK_INPUT(a >= 0 && b >= 0 && a < 256 + std::int64_t(k) && b < 256 + std::int64_t(k),
                   "{}: field \"merges\"[{}] = [{}, {}] uses an id outside [0, {}) (a merge may only use bytes "
                   "and tokens made by earlier merges)",
                   source, k, a, b, 256 + k);
    merges.push_back({std::int32_t(a), std::int32_t(b)});
  }
  return from_merges(std::move(merges), source + ": field \"merges\"");
}

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  require_regular_file(path, "tokenizer file");  // a FIFO would block the read
  std::ifstream in(path, std::ios::binary);
  KD_CHECK_INPUT(in.good(), "{}: cannot open tokenizer file ({})", path,
                 std::filesystem::exists(path) ? "not readable" : "no such file");
  std::ostringstream text;
  text << in.rdbuf();
  const json doc = parse_json(text.str(), path);
  // A bare Hugging Face tokenizer.json: its document end is tokenizer_config.json's eos_token.
  if (doc.is_object() && doc.contains("model") && !doc.contains("format"))
    return from_hf_json(doc, path, eos_beside(path, doc));
  return from_document(doc, path);
}

std::string BpeTokenizer::to_json_text() const {
  if (!native_) {
    // The Hugging Face file inside kdtrain's envelope, which adds what tokenizer.json cannot
    // say: the id that ends a document.
    nlohmann::ordered_json doc;
    doc["format"] = "kdtrain-hf-bpe";
    doc["version"] = 1;
    doc["eot_id"] = eot_id_;
    doc["hf_tokenizer"] = hf_json();
    return doc.dump(1) + "\n";
  }
  // Written by hand so that each merge sits on its own line (diffable, greppable); the
  // strings go through nlohmann's escaping.
  std::string s = "{\n";
  s += "  \"format\": \"kdtrain-bpe\",\n";
  s += "  \"version\": 1,\n";
  s += fmt::format("  \"vocab_size\": {},\n", vocab_size());
  s += "  \"byte_level\": true,\n";
  s += fmt::format("  \"pretokenizer\": {},\n", json(std::string(kPretokenizerName)).dump());
  s += fmt::format("  \"special_tokens\": {{{}: {}, {}: {}}},\n", json(std::string(kEotText)).dump(), eot_id(),
                   json(std::string(kPadText)).dump(), pad_id());
  s += "  \"merges\": [";
  for (std::size_t k = 0; k < merges_.size(); ++k)
    s += fmt::format("{}\n    [{}, {}]", k ? "," : "", merges_[k].left, merges_[k].right);
  s += "\n  ]\n}\n";
  return s;
}

void BpeTokenizer::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  const std::string text = to_json_text();
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw RuntimeFailure(fmt::format("{}: cannot create ({})", tmp, std::strerror(errno)));
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed) {
    std::remove(tmp.c_str());
    throw RuntimeFailure(fmt::format("{}: write failed", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw RuntimeFailure(fmt::format("{}: cannot rename to {} ({})", tmp, path, std::strerror(errno)));
}

}  // namespace kd::data
