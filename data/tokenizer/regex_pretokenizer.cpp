#include "data/tokenizer/regex_pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

#include <initializer_list>

#include "data/tokenizer/pretokenize.h"
#include "base/errors.h"

namespace kd::data {

struct RegexPretokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

RegexPretokenizer::RegexPretokenizer(std::string pattern, const std::string& source)
    : pattern_(std::move(pattern)), re_(std::make_unique<Compiled>()) {
  int err = 0;
  PCRE2_SIZE at = 0;
  re_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(), PCRE2_UTF | PCRE2_UCP,
                            &err, &at, nullptr);
  if (!re_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw InputError(fmt::format("{}: the pre-tokenizer pattern does not compile at offset {}: {}", source, at,
                                 reinterpret_cast<const char*>(msg)));
  }
  pcre2_jit_compile(re_->code, PCRE2_JIT_COMPLETE);  // optional: the interpreter runs it otherwise
}

RegexPretokenizer::~RegexPretokenizer() = default;

void RegexPretokenizer::split_valid(std::string_view text, std::vector<std::string_view>& out) const {
  thread_local struct MatchData {
    pcre2_match_data* md = pcre2_match_data_create(16, nullptr);
    ~MatchData() { pcre2_match_data_free(md); }
  } data;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t pos = 0, gap = 0;  // gap: start of the text not yet given to a piece
  while (pos < text.size()) {
    const int rc = pcre2_match(re_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, data.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw RuntimeFailure(fmt::format("pre-tokenizer pattern: PCRE2 match error {}", rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.md);
    const std::size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match cuts nothing: step over one character
      pos = b + classify_at(text, b).len;
      continue;
    }
    if (b > gap) out.push_back(text.substr(gap, b - gap));
    out.push_back(text.substr(b, e - b));
    pos = gap = e;
  }
  if (gap < text.size()) out.push_back(text.substr(gap));
}

void RegexPretokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  std::size_t valid = 0, pos = 0;
  while (pos < text.size()) {
    if (const std::size_t len = utf8_length_at(text, pos)) {
      pos += len;
      continue;
    }
    if (pos > valid) split_valid(text.substr(valid, pos - valid), out);
    std::size_t end = pos + 1;
    while (end < text.size() && utf8_length_at(text, end) == 0) ++end;
    out.push_back(text.substr(pos, end - pos));
    pos = valid = end;
  }
  if (pos > valid) split_valid(text.substr(valid, pos - valid), out);
}

namespace {

struct Range {
  char32_t lo, hi;
};

// A character-class body for these ranges that PCRE2, Oniguruma (Hugging Face's regex engine)
// and Python's `regex` all read alike: ASCII as \xHH, the rest as the characters themselves
// (\x{…} is not understood by Python's module).
std::string class_body(std::initializer_list<Range> ranges) {
  std::string out;
  const auto put = [&out](char32_t cp) {
    if (cp < 0x80)
      out += fmt::format("\\x{:02X}", unsigned(cp));
    else
      utf8_append(cp, out);
  };
  for (const Range r : ranges) {
    put(r.lo);
    if (r.hi != r.lo) out += '-', put(r.hi);
  }
  return out;
}

}  // namespace

std::string gpt2_approx_v1_pattern() {
  // The classes of pretokenize.h. Whitespace is tested before "other" there, so the ranges
  // of "other" leave out the whitespace among them (U+0085, U+2000–U+200A, …).
  const std::string space = class_body({{0x09, 0x0D}, {0x20, 0x20}, {0x1C, 0x1F}, {0x85, 0x85}, {0xA0, 0xA0},
                                        {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F},
                                        {0x205F, 0x205F}, {0x3000, 0x3000}});
  const std::string other = class_body(
      {{0x00, 0x08}, {0x0E, 0x1B}, {0x21, 0x2F}, {0x3A, 0x40}, {0x5B, 0x60}, {0x7B, 0x7F}, {0x80, 0x84},
       {0x86, 0x9F}, {0xA1, 0xA9}, {0xAB, 0xB4}, {0xB6, 0xB9}, {0xBB, 0xBF}, {0xD7, 0xD7}, {0xF7, 0xF7},
       {0x300, 0x36F}, {0x200B, 0x2027}, {0x202A, 0x202E}, {0x2030, 0x205E}, {0x2060, 0x2BFF}, {0x3001, 0x303F},
       {0xFE00, 0xFE0F}, {0x1F000, 0x1FAFF}});
  const std::string digit = class_body({{0x30, 0x39}});
  return fmt::format("'s|'t|'re|'ve|'m|'ll|'d|\\x20?[^{0}{1}{2}]+|\\x20?[{2}]+|\\x20?[{1}]+|[{0}]+(?![^{0}])|[{0}]+",
                     space, other, digit);
}

}  // namespace kd::data
