// kdtrain tokenize / detokenize: what a tokenizer does to a text, and back. Text from
// --text, a file or stdin; output to stdout or --out (never over an existing file without
// --overwrite, never over the input; a temporary name, then a rename).
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/errors.h"
#include "base/file_io.h"
#include "base/files.h"
#include "data/tokenizer/pretokenize.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/cli/tokenizer_arg.h"

namespace kd::cli {

namespace {

using json = nlohmann::json;

// --text, else the input file, else stdin.
std::string input_text(const TokenizeOptions& o) {
  if (o.has_text) return o.text;
  if (o.input.empty() || o.input == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  require_regular_file(o.input, "the input text");  // a FIFO would block the read
  std::ifstream in(o.input, std::ios::binary);
  KD_CHECK_INPUT(in.good(), "{}: cannot open ({})", o.input, std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `bytes` to --out (or stdout): refused over an existing file without --overwrite and
// over the input; written under a temporary name, then renamed (write_file_atomic).
void write_output(const TokenizeOptions& o, const std::string& bytes) {
  if (o.out.empty() || o.out == "-") {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
    if (std::ferror(stdout)) throw RuntimeFailure("writing to stdout failed");
    return;
  }
  write_file_atomic(o.out, bytes);
}

// The checks of --out, before any work.
void check_output(const char* command, const TokenizeOptions& o) {
  if (o.out.empty() || o.out == "-") return;
  refuse_input_as_output(command, o.out, o.input.empty() ? std::vector<std::string>{} : std::vector<std::string>{o.input});
  refuse_existing_output(command, o.out, o.overwrite);
}

// Token ids from text: a JSON array, a JSON object with "ids" (tokenize's output), or
// integers separated by spaces, commas or newlines.
std::vector<std::int64_t> parse_ids(const std::string& text, const std::string& where) {
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    try {
      const json j = json::parse(text);
      const json& ids = j.is_object() ? j.at("ids") : j;
      return ids.get<std::vector<std::int64_t>>();
    } catch (const json::exception& e) {
      throw InputError(fmt::format("{}: not a JSON list of token ids, nor an object with one in \"ids\" ({})", where,
                                   e.what()));
    }
  }
  std::vector<std::int64_t> ids;
  std::size_t i = 0;
  while (i < text.size()) {
    if (std::strchr(" \t\r\n,", text[i]) != nullptr) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < text.size() && std::strchr(" \t\r\n,", text[end]) == nullptr) ++end;
    const std::string word = text.substr(i, end - i);
    std::int64_t v = 0;
    const char* p = word.c_str();
    char* stop = nullptr;
    errno = 0;
    v = std::strtoll(p, &stop, 10);
    KD_CHECK_INPUT(errno == 0 && stop && *stop == '\0' && !word.empty(),
                   "{}: \"{}\" (token {}) is not an integer token id", where, word, ids.size());
    ids.push_back(v);
    i = end;
  }
  return ids;
}

// A token's bytes as text: valid UTF-8 as it is, every other byte (a piece of a character
// split between tokens) as <0xNN>, the way byte tokens are usually shown.
std::string readable(std::string_view bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = data::utf8_length_at(bytes, i);
    if (n == 0) {
      out += fmt::format("<0x{:02X}>", static_cast<unsigned char>(bytes[i]));
      ++i;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace

int run_tokenize(const TokenizeOptions& o) {
  check_output("tokenize", o);
  const data::BpeTokenizer tok = tokenizer_from_path(o.tokenizer);
  const std::string text = input_text(o);
  std::vector<std::int32_t> ids = tok.encode(text);
  if (o.framed) {  // as prepare writes documents into shards: bos (if any) first, eot last
    if (tok.bos_id() >= 0) ids.insert(ids.begin(), tok.bos_id());
    ids.push_back(tok.eot_id());
  }
  std::string out;
  if (o.ids_only) {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += ' ';
      out += std::to_string(ids[i]);
    }
    out += '\n';
  } else {
    json pieces = json::array();
    for (const std::int32_t id : ids) pieces.push_back(readable(tok.token_bytes(id)));
    const json j{{"tokenizer", o.tokenizer},
                 {"bytes", text.size()},
                 {"tokens", ids.size()},
                 {"ids", ids},
                 {"pieces", pieces}};
    out = j.dump() + "\n";
  }
  write_output(o, out);
  return 0;
}

int run_detokenize(const TokenizeOptions& o) {
  check_output("detokenize", o);
  const data::BpeTokenizer tok = tokenizer_from_path(o.tokenizer);
  const std::string where = o.has_text ? std::string("--ids") : o.input.empty() ? std::string("stdin") : o.input;
  const std::vector<std::int64_t> ids = parse_ids(input_text(o), where);
  std::vector<std::int32_t> checked;
  checked.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    KD_CHECK_INPUT(ids[i] >= 0 && ids[i] < tok.vocab_size(),
                   "{}: token {} is id {}, outside the tokenizer's vocabulary of {} ({})", where, i, ids[i],
                   tok.vocab_size(), o.tokenizer);
    checked.push_back(std::int32_t(ids[i]));
  }
  write_output(o, tok.decode(checked));
  return 0;
}

}  // namespace kd::cli
