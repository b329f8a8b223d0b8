// Hugging Face tokenizer.json files, byte-level BPE only (GPT-2, Llama 3 and their kin).
//
// Accepted:
//  * model: type "BPE", no dropout, no subword prefix or word suffix, byte_fallback false,
//    ignore_merges either way; vocab (token text → id) and merges ("a b" strings or [a, b]
//    pairs), the texts spelt with GPT-2's byte-to-character table (byte_unicode.h), all 256
//    bytes present;
//  * normalizer: null;
//  * pre_tokenizer: ByteLevel (use_regex: GPT-2's pattern), or a Sequence of a Split by a
//    regex or string with behavior "Isolated", invert false, then ByteLevel with use_regex
//    false (Llama 3); add_prefix_space false;
//  * post_processor: null, ByteLevel, or a TemplateProcessing whose single-text template is
//    [$A] or [special token, $A] (the latter is bos_id()); a Sequence of these;
//  * decoder: null or ByteLevel;
//  * added_tokens: special tokens (ids in or beyond the vocab).
// Refused by name: anything else. SentencePiece-style files (Metaspace pre-tokenizer,
// byte_fallback, a normalizer: Llama 2, Mistral) are named as such: their ids would differ.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_map>

#include "data/tokenizer/bpe_tokenizer.h"
#include "data/tokenizer/byte_unicode.h"
#include "data/tokenizer/regex_pretokenizer.h"
#include "base/errors.h"

namespace kd::data {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr std::string_view kSentencePieceHint =
    "SentencePiece-style tokenizers (Llama 2, Mistral) are not supported; kdtrain reads byte-level BPE "
    "tokenizer.json files (GPT-2, Llama 3)";

const json* find(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool flag(const json& obj, const char* key, bool fallback, const std::string& where) {
  const json* v = find(obj, key);
  if (!v) return fallback;
  KD_CHECK_INPUT(v->is_boolean(), "{}: \"{}\" must be true or false, found {}", where, key, v->dump());
  return v->get<bool>();
}

std::string type_of(const json& obj, const std::string& where) {
  KD_CHECK_INPUT(obj.is_object(), "{} must be an object, found {}", where, obj.dump().substr(0, 80));
  const json* t = find(obj, "type");
  KD_CHECK_INPUT(t && t->is_string(), "{} has no \"type\"", where);
  return t->get<std::string>();
}

struct PreTokenizer {
  std::string pattern;
};

void check_byte_level(const json& bl, const std::string& where, bool want_regex, PreTokenizer& out) {
  KD_CHECK_INPUT(!flag(bl, "add_prefix_space", false, where),
                 "{}: add_prefix_space true is not supported (kdtrain never adds a space before a text)", where);
  const bool use_regex = flag(bl, "use_regex", true, where);
  if (want_regex) {
    out.pattern = use_regex ? std::string(kGpt2Pattern) : std::string("(?s).+");
  } else {
    KD_CHECK_INPUT(!use_regex, "{}: use_regex must be false after a Split (two patterns in a row are not supported)",
                   where);
  }
}

PreTokenizer read_pre_tokenizer(const json* pre, const std::string& source) {
  const std::string where = source + ": pre_tokenizer";
  KD_CHECK_INPUT(pre, "{} is null: a byte-level tokenizer needs ByteLevel ({})", where, kSentencePieceHint);
  const std::string type = type_of(*pre, where);
  KD_CHECK_INPUT(type != "Metaspace", "{} is Metaspace: {}", where, kSentencePieceHint);
  PreTokenizer out;
  if (type == "ByteLevel") {
    check_byte_level(*pre, where, true, out);
    return out;
  }
  KD_CHECK_INPUT(type == "Sequence", "{} of type \"{}\" is not supported (ByteLevel, or a Split then ByteLevel)",
                 where, type);
  const json* list = find(*pre, "pretokenizers");
  KD_CHECK_INPUT(list && list->is_array() && !list->empty(), "{}: \"pretokenizers\" must be a non-empty list", where);
  const std::string first = type_of((*list)[0], where + ".pretokenizers[0]");
  KD_CHECK_INPUT(first != "Metaspace", "{}.pretokenizers[0] is Metaspace: {}", where, kSentencePieceHint);
  if (list->size() == 1 && first == "ByteLevel") {
    check_byte_level((*list)[0], where + ".pretokenizers[0]", true, out);
    return out;
  }
  KD_CHECK_INPUT(list->size() == 2 && first == "Split",
                 "{}: only [Split, ByteLevel] or [ByteLevel] sequences are supported, found {} steps starting with "
                 "\"{}\"",
                 where, list->size(), first);
  const json& split = (*list)[0];
  const std::string sw = where + ".pretokenizers[0] (Split)";
  const json* behavior = find(split, "behavior");
  KD_CHECK_INPUT(behavior && *behavior == "Isolated", "{}: behavior {} is not supported (only \"Isolated\")", sw,
                 behavior ? behavior->dump() : "null");
  KD_CHECK_INPUT(!flag(split, "invert", false, sw), "{}: invert true is not supported", sw);
  const json* pat = find(split, "pattern");
  KD_CHECK_INPUT(pat && pat->is_object(), "{}: \"pattern\" must be {{\"Regex\": …}} or {{\"String\": …}}", sw);
  if (const json* re = find(*pat, "Regex"); re && re->is_string()) {
    out.pattern = re->get<std::string>();
  } else if (const json* lit = find(*pat, "String"); lit && lit->is_string()) {
    out.pattern = "\\Q" + lit->get<std::string>() + "\\E";
  } else {
    throw InputError(fmt::format("{}: \"pattern\" must be {{\"Regex\": …}} or {{\"String\": …}}", sw));
  }
  const std::string second = type_of((*list)[1], where + ".pretokenizers[1]");
  KD_CHECK_INPUT(second == "ByteLevel", "{}.pretokenizers[1] is \"{}\", expected ByteLevel", where, second);
  check_byte_level((*list)[1], where + ".pretokenizers[1]", false, out);
  return out;
}

// The single-text template's leading special token, or "" when texts start bare.
std::string read_bos_name(const json* post, const std::string& where) {
  if (!post) return "";
  const std::string type = type_of(*post, where);
  if (type == "ByteLevel") return "";  // offsets only
  if (type == "Sequence") {
    const json* list = find(*post, "processors");
    KD_CHECK_INPUT(list && list->is_array(), "{}: \"processors\" must be a list", where);
    std::string bos;
    for (std::size_t k = 0; k < list->size(); ++k) {
      std::string b = read_bos_name(&(*list)[k], fmt::format("{}.processors[{}]", where, k));
      if (!b.empty()) bos = std::move(b);
    }
    return bos;
  }
  KD_CHECK_INPUT(type == "TemplateProcessing",
                 "{} of type \"{}\" is not supported (ByteLevel, TemplateProcessing or a Sequence of them)", where, type);
  const json* single = find(*post, "single");
  KD_CHECK_INPUT(single && single->is_array(), "{}: \"single\" must be a list", where);
  const auto is_a = [](const json& e) { return e.is_object() && e.contains("Sequence"); };
  const auto special = [](const json& e) -> std::string {
    if (!e.is_object() || !e.contains("SpecialToken")) return "";
    const json& st = e["SpecialToken"];
    return st.is_object() && st.contains("id") && st["id"].is_string() ? st["id"].get<std::string>() : "";
  };
  if (single->size() == 1 && is_a((*single)[0])) return "";
  if (single->size() == 2 && !special((*single)[0]).empty() && is_a((*single)[1])) return special((*single)[0]);
  throw InputError(fmt::format("{}: the \"single\" template {} is not supported: kdtrain frames documents as "
                               "[bos] text eot, so only [$A] and [special token, $A] are",
                               where, single->dump()));
}

std::string merge_text(const json& m, std::size_t k, const std::string& source, std::string& right) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const std::size_t sp = s.find(' ');
    KD_CHECK_INPUT(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
                   "{}: model.merges[{}] = {} is not two tokens separated by one space", source, k, m.dump());
    right = s.substr(sp + 1);
    return s.substr(0, sp);
  }
  KD_CHECK_INPUT(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                 "{}: model.merges[{}] = {} must be \"a b\" or [\"a\", \"b\"]", source, k, m.dump());
  right = m[1].get<std::string>();
  return m[0].get<std::string>();
}

}  // namespace

BpeTokenizer BpeTokenizer::from_hf_json(const json& doc, const std::string& source, std::optional<std::int32_t> eos) {
  KD_CHECK_INPUT(doc.is_object(), "{}: the top level must be a JSON object", source);
  const json* model = find(doc, "model");
  KD_CHECK_INPUT(model, "{}: no \"model\" (not a Hugging Face tokenizer.json?)", source);
  const std::string mtype = type_of(*model, source + ": model");
  KD_CHECK_INPUT(mtype == "BPE", "{}: model.type is \"{}\": only BPE is supported ({})", source, mtype,
                 kSentencePieceHint);
  const std::string mw = source + ": model";
  KD_CHECK_INPUT(!flag(*model, "byte_fallback", false, mw), "{}: model.byte_fallback is true: {}", source,
                 kSentencePieceHint);
  if (const json* d = find(*model, "dropout"))
    KD_CHECK_INPUT(d->is_number() && d->get<double>() == 0.0,
                   "{}: model.dropout {} is not supported (encoding must be deterministic)", source, d->dump());
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = find(*model, key))
      KD_CHECK_INPUT(*v == "", "{}: model.{} {} is not supported (byte-level BPE has none)", source, key, v->dump());
  if (const json* norm = find(doc, "normalizer"))
    throw InputError(fmt::format("{}: normalizer {} is not supported ({})", source,
                                 norm->is_object() && norm->contains("type") ? norm->at("type").dump() : norm->dump(),
                                 kSentencePieceHint));
  const PreTokenizer pre = read_pre_tokenizer(find(doc, "pre_tokenizer"), source);
  if (const json* dec = find(doc, "decoder")) {
    const std::string dt = type_of(*dec, source + ": decoder");
    KD_CHECK_INPUT(dt == "ByteLevel", "{}: decoder of type \"{}\" is not supported (only ByteLevel; {})", source, dt,
                   kSentencePieceHint);
  }

  BpeTokenizer t;
  t.native_ = false;
  t.ignore_merges_ = flag(*model, "ignore_merges", false, mw);

  // Ids: the vocab's and the added tokens'; together exactly 0 … N − 1.
  const json* vocab = find(*model, "vocab");
  KD_CHECK_INPUT(vocab && vocab->is_object() && !vocab->empty(), "{}: model.vocab must be a non-empty object", source);
  std::unordered_map<std::string, std::int32_t, TextHash, std::equal_to<>> text_ids;  // vocab token text → id
  std::vector<std::optional<std::string>> bytes_by_id;
  // Ids are dense, so none reaches the number of entries: checked before an id sizes anything
  // (one id of 2^31 - 2 would otherwise ask for 2^31 slots).
  const json* added = find(doc, "added_tokens");
  const std::int64_t entries =
      std::int64_t(vocab->size()) + (added && added->is_array() ? std::int64_t(added->size()) : 0);
  const auto place = [&](std::int64_t id, std::string bytes, const std::string& what) {
    KD_CHECK_INPUT(id >= 0 && id < kMaxBpeVocab, "{}: {} has id {}, outside [0, 2^31)", source, what, id);
    KD_CHECK_INPUT(id < entries, "{}: {} has id {}, but the file has {} tokens in all: ids must be 0 … {}", source,
                   what, id, entries, entries - 1);
    if (bytes_by_id.size() <= std::size_t(id)) bytes_by_id.resize(std::size_t(id) + 1);
    KD_CHECK_INPUT(!bytes_by_id[std::size_t(id)], "{}: {} reuses id {}", source, what, id);
    bytes_by_id[std::size_t(id)] = std::move(bytes);
  };
  std::unordered_map<std::string, std::int32_t> special_ids;
  if (added) {
    KD_CHECK_INPUT(added->is_array(), "{}: added_tokens must be a list", source);
    for (std::size_t k = 0; k < added->size(); ++k) {
      const json& a = (*added)[k];
      const std::string what = fmt::format("added_tokens[{}]", k);
      KD_CHECK_INPUT(a.is_object() && a.contains("id") && a["id"].is_number_integer() && a.contains("content") &&
                         a["content"].is_string(),
                     "{}: {} must have an integer \"id\" and a string \"content\"", source, what);
      const std::string content = a["content"].get<std::string>();
      KD_CHECK_INPUT(flag(a, "special", false, source + ": " + what),
                     "{}: {} ({}) is not special: kdtrain does not match added tokens inside text", source, what,
                     a["content"].dump());
      const auto id = a["id"].get<std::int64_t>();
      KD_CHECK_INPUT(id >= 0 && id < kMaxBpeVocab, "{}: {} has id {}, outside [0, 2^31)", source, what, id);
      special_ids[content] = std::int32_t(id);
      t.specials_.push_back({std::int32_t(id), content, false});
    }
  }
  for (const auto& [tok, idv] : vocab->items()) {
    KD_CHECK_INPUT(idv.is_number_integer(), "{}: model.vocab[{}] must be an integer id", source, json(tok).dump());
    const auto id = idv.get<std::int64_t>();
    const std::string what = fmt::format("model.vocab[{}]", json(tok).dump());
    if (const auto sp = special_ids.find(tok); sp != special_ids.end() && sp->second == id) {
      for (Special& s : t.specials_)
        if (s.id == id) s.in_vocab = true;
      place(id, tok, what);
    } else {
      std::optional<std::string> bytes = token_text_to_bytes(tok);
      KD_CHECK_INPUT(bytes && !bytes->empty(), "{}: {} is not spelt in byte-level characters ({})", source, what,
                     kSentencePieceHint);
      place(id, std::move(*bytes), what);
    }
    text_ids.emplace(tok, std::int32_t(id));
  }
  for (const Special& s : t.specials_)
    if (!s.in_vocab) place(s.id, s.name, fmt::format("added token {}", json(s.name).dump()));
  for (std::size_t id = 0; id < bytes_by_id.size(); ++id)
    KD_CHECK_INPUT(bytes_by_id[id].has_value(), "{}: id {} is neither in model.vocab nor in added_tokens", source, id);
  KD_CHECK_INPUT(std::int64_t(bytes_by_id.size()) >= kMinBpeVocab, "{}: {} tokens are too few", source,
                 bytes_by_id.size());
  t.bytes_.reserve(bytes_by_id.size());
  for (auto& b : bytes_by_id) t.bytes_.push_back(std::move(*b));
  std::sort(t.specials_.begin(), t.specials_.end(), [](const Special& a, const Special& b) { return a.id < b.id; });

  for (int b = 0; b < 256; ++b) {
    const auto it = text_ids.find(bytes_to_token_text(std::string(1, char(b))));
    KD_CHECK_INPUT(it != text_ids.end(), "{}: model.vocab lacks the byte 0x{:02X} (spelt {}): not a byte-level "
                   "vocabulary", source, b, json(bytes_to_token_text(std::string(1, char(b)))).dump());
    t.byte_ids_[std::size_t(b)] = it->second;
  }

  const json* merges = find(*model, "merges");
  KD_CHECK_INPUT(merges && merges->is_array(), "{}: model.merges must be a list", source);
  t.merges_.reserve(merges->size());
  t.merge_ids_.reserve(merges->size());
  for (std::size_t k = 0; k < merges->size(); ++k) {
    std::string right;
    const std::string left = merge_text((*merges)[k], k, source, right);
    const auto l = text_ids.find(left), r = text_ids.find(right), m = text_ids.find(left + right);
    KD_CHECK_INPUT(l != text_ids.end() && r != text_ids.end(), "{}: model.merges[{}] = {} uses a token not in the "
                   "vocab", source, k, (*merges)[k].dump());
    KD_CHECK_INPUT(m != text_ids.end(), "{}: model.merges[{}] = {} makes {}, which is not in the vocab", source, k,
                   (*merges)[k].dump(), json(left + right).dump());
    t.merges_.push_back({l->second, r->second});
    t.merge_ids_.push_back(m->second);
  }
  t.index_merges(source + ": model.merges");
  if (t.ignore_merges_)
    for (const auto& [tok, id] : text_ids) t.whole_ids_.emplace(t.bytes_[std::size_t(id)], id);

  t.regex_ = std::make_shared<const RegexPretokenizer>(pre.pattern, source + ": pre_tokenizer");

  const std::string bos = read_bos_name(find(doc, "post_processor"), source + ": post_processor");
  if (!bos.empty()) {
    const auto it = special_ids.find(bos);
    KD_CHECK_INPUT(it != special_ids.end(), "{}: post_processor puts {} before each text, which is not an added "
                   "token", source, json(bos).dump());
    t.bos_id_ = it->second;
  }
  if (eos) {
    KD_CHECK_INPUT(*eos >= 0 && *eos < t.vocab_size(), "{}: the end-of-text id {} is outside the vocabulary [0, {})",
                   source, *eos, t.vocab_size());
    t.eot_id_ = *eos;
  } else {
    for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>"})
      if (const auto it = special_ids.find(name); it != special_ids.end() && t.eot_id_ < 0) t.eot_id_ = it->second;
    KD_CHECK_INPUT(t.eot_id_ >= 0, "{}: cannot tell which token ends a document (no eos id given and no special "
                   "token named <|endoftext|>, <|end_of_text|> or </s>); put a tokenizer_config.json with "
                   "\"eos_token\" beside it", source);
  }
  for (const char* name : {"<|pad|>", "<pad>", "<|finetune_right_pad_id|>"})
    if (const auto it = special_ids.find(name); it != special_ids.end() && t.pad_id_ < 0) t.pad_id_ = it->second;
  t.hash_ = t.hf_hash();
  return t;
}

ordered_json BpeTokenizer::hf_json() const {
  ordered_json added = ordered_json::array();
  for (const Special& s : specials_)
    added.push_back({{"id", s.id}, {"content", s.name}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  std::vector<bool> special(bytes_.size(), false), in_vocab(bytes_.size(), true);
  for (const Special& s : specials_) special[std::size_t(s.id)] = true, in_vocab[std::size_t(s.id)] = s.in_vocab;
  std::vector<std::string> texts(bytes_.size());
  ordered_json vocab = ordered_json::object();
  std::unordered_map<std::string, std::int32_t> seen;
  for (std::size_t id = 0; id < bytes_.size(); ++id) {
    texts[id] = special[id] ? bytes_[id] : bytes_to_token_text(bytes_[id]);
    if (!in_vocab[id]) continue;
    const auto [it, fresh] = seen.emplace(texts[id], std::int32_t(id));
    KD_CHECK_INPUT(fresh, "tokenizer: ids {} and {} have the same bytes {}; a Hugging Face vocab cannot hold both",
                   it->second, id, json(texts[id]).dump());
    vocab[texts[id]] = id;
  }
  ordered_json merges = ordered_json::array();
  for (const BpeMerge& m : merges_) merges.push_back(texts[std::size_t(m.left)] + " " + texts[std::size_t(m.right)]);

  ordered_json doc;
  doc["version"] = "1.0";
  doc["truncation"] = nullptr;
  doc["padding"] = nullptr;
  doc["added_tokens"] = added;
  doc["normalizer"] = nullptr;
  const std::string pattern = regex_ ? regex_->pattern() : gpt2_approx_v1_pattern();
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  if (bos_id_ >= 0) {
    const std::string& b = bytes_[std::size_t(bos_id_)];
    const ordered_json bos_tok = {{"SpecialToken", {{"id", b}, {"type_id", 0}}}};
    doc["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {bos_tok, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {bos_tok, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos_tok, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{b, {{"id", b}, {"ids", {bos_id_}}, {"tokens", {b}}}}}}};
  } else {
    doc["post_processor"] = nullptr;
  }
  doc["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
  doc["model"] = {{"type", "BPE"},          {"dropout", nullptr},       {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},      {"byte_fallback", false},   {"ignore_merges", ignore_merges_},
                  {"vocab", vocab},         {"merges", merges}};
  return doc;
}

std::string BpeTokenizer::to_hf_json_text() const { return hf_json().dump(1) + "\n"; }

std::string BpeTokenizer::hf_tokenizer_config_json() const {
  const auto name = [&](std::int32_t id) -> ordered_json {
    return id < 0 ? ordered_json(nullptr) : ordered_json(bytes_[std::size_t(id)]);
  };
  ordered_json doc;
  doc["tokenizer_class"] = "PreTrainedTokenizerFast";
  doc["bos_token"] = name(bos_id_);
  doc["eos_token"] = name(eot_id_);
  doc["pad_token"] = name(pad_id_);
  doc["clean_up_tokenization_spaces"] = false;
  return doc.dump(2) + "\n";
}

}  // namespace kd::data
