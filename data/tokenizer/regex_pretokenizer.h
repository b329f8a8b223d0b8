// A pre-tokenizer given by a regular expression, as Hugging Face tokenizer.json files state
// theirs (GPT-2's pattern inside ByteLevel, Llama 3's in a Split): the text is cut into the
// pattern's matches and the stretches between them ("Isolated" splitting), so the pieces tile
// the text exactly.
//
// PCRE2 runs the pattern in Unicode mode (\p{L}, \p{N}, \s by Unicode properties; lookahead).
// Text that is not valid UTF-8 cannot reach a Hugging Face tokenizer (it takes Python
// strings); kdtrain defines it so that encode→decode stays the identity: the text is cut at
// every maximal run of bytes that do not start a valid UTF-8 sequence (strict decoding, as
// pretokenize.h's), each run is one piece, and the pattern runs on the valid stretches
// between runs as if each were a whole text.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kd::data {

class RegexPretokenizer {
 public:
  // Compiles `pattern` (PCRE2, UTF + UCP, JIT when available). InputError naming `source`
  // and the offset when it does not compile.
  RegexPretokenizer(std::string pattern, const std::string& source);
  ~RegexPretokenizer();
  RegexPretokenizer(const RegexPretokenizer&) = delete;
  RegexPretokenizer& operator=(const RegexPretokenizer&) = delete;

  const std::string& pattern() const { return pattern_; }
  // Appends the pieces of `text` to `out` (views into `text`). Thread-safe.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  void split_valid(std::string_view text, std::vector<std::string_view>& out) const;
  std::string pattern_;
  struct Compiled;
  std::unique_ptr<Compiled> re_;
};

// GPT-2's pattern, which Hugging Face's ByteLevel pre-tokenizer applies when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Llama 3's pattern (its tokenizer.json's Split), which llama.cpp calls "llama-bpe".
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// kdtrain's own pre-tokenizer "gpt2-approx-v1" (pretokenize.h) as a pattern: GPT-2's, with
// its character classes spelt out as code-point ranges. On valid UTF-8 it cuts exactly where
// pretokenize() does; it is how a kdtrain tokenizer travels in a Hugging Face tokenizer.json.
std::string gpt2_approx_v1_pattern();

}  // namespace kd::data
