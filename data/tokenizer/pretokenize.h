// GPT-2's pre-tokenizer, by hand over bytes: splits text into the pieces that BPE merges
// never cross. The pieces tile the input exactly (concatenated they give the text back,
// byte for byte, valid UTF-8 or not), which is what makes encode→decode the identity.
//
// GPT-2's pattern, tried in this order at each position:
//   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
//
// Approximation ("gpt2-approx-v1"; a change of these classes is a new pretokenizer name,
// since it changes which merges a trained tokenizer holds). Code points are decoded from
// strict UTF-8; every byte that does not start a valid sequence (stray continuation,
// overlong form, surrogate, > U+10FFFF, truncated) is one "other" character by itself.
//   whitespace: \t \n \v \f \r space, U+001C–U+001F, U+0085, U+00A0, U+1680, U+2000–U+200A,
//               U+2028, U+2029, U+202F, U+205F, U+3000
//   digit:      ASCII 0–9 only (GPT-2's \p{N} also has other scripts' digits and ²³¹¼½¾)
//   other:      the remaining ASCII, C1 controls U+0080–U+009F, Latin-1 punctuation and
//               symbols U+00A1–U+00BF (but ª µ º are letters) and × ÷, combining marks
//               U+0300–U+036F, general punctuation and symbols U+2000–U+2BFF, CJK
//               punctuation U+3001–U+303F, variation selectors U+FE00–U+FE0F, emoji and
//               pictographs U+1F000–U+1FAFF
//   letter:     ASCII letters and every other code point >= U+0080
// So accented Latin, Greek, Cyrillic and CJK text splits as GPT-2 splits it; the rare
// non-ASCII digit or symbol outside the ranges above is taken for a letter.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kd::data {

// Character classes of the pattern above.
enum class CharClass : unsigned char { letter, digit, space, other };

// The class and byte length (1–4) of the character starting at text[pos] (pos < size).
struct CharInfo {
  CharClass cls;
  unsigned char len;
};
CharInfo classify_at(std::string_view text, std::size_t pos);

// Strict UTF-8 (RFC 3629: no overlong forms, surrogates or code points above U+10FFFF): the
// byte length (1–4) of the character starting at text[pos] (pos < size), its code point in
// `cp`; 0 when no valid sequence starts there.
std::size_t utf8_decode_at(std::string_view text, std::size_t pos, char32_t& cp);
// Appends the UTF-8 bytes of code point cp (≤ U+10FFFF).
void utf8_append(char32_t cp, std::string& out);
inline std::size_t utf8_length_at(std::string_view text, std::size_t pos) {
  char32_t cp;
  return utf8_decode_at(text, pos, cp);
}

// Appends the pieces of `text` to `out`, in order (views into `text`).
void pretokenize(std::string_view text, std::vector<std::string_view>& out);

}  // namespace kd::data
