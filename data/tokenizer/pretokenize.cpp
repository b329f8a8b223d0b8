#include "data/tokenizer/pretokenize.h"

namespace kd::data {

namespace {

CharClass class_of_ascii(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::letter;
  if (c >= '0' && c <= '9') return CharClass::digit;
  if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F)) return CharClass::space;
  return CharClass::other;
}

CharClass class_of_code_point(char32_t cp) {
  if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
      cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
    return CharClass::space;
  if (cp <= 0x9F) return CharClass::other;  // C1 controls
  if (cp <= 0xBF) return (cp == 0xAA || cp == 0xB5 || cp == 0xBA) ? CharClass::letter : CharClass::other;
  if (cp == 0xD7 || cp == 0xF7) return CharClass::other;
  if (cp >= 0x300 && cp <= 0x36F) return CharClass::other;
  if (cp >= 0x2000 && cp <= 0x2BFF) return CharClass::other;
  if (cp >= 0x3001 && cp <= 0x303F) return CharClass::other;
  if (cp >= 0xFE00 && cp <= 0xFE0F) return CharClass::other;
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return CharClass::other;
  return CharClass::letter;
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

std::size_t utf8_decode_at(std::string_view text, std::size_t pos, char32_t& cp) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  const unsigned char c = s[pos];
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  // Strict UTF-8 (RFC 3629): the allowed second-byte range depends on the lead byte,
  // which rules out overlong forms, surrogates and code points above U+10FFFF.
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;  // stray continuation byte, C0/C1 or F5..FF lead
  }
  if (pos + len > n) return 0;
  if (s[pos + 1] < lo || s[pos + 1] > hi) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if (!is_continuation(s[pos + k])) return 0;
    cp = (cp << 6) | (s[pos + k] & 0x3F);
  }
  return len;
}

void utf8_append(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  }
}

CharInfo classify_at(std::string_view text, std::size_t pos) {
  const auto c = static_cast<unsigned char>(text[pos]);
  if (c < 0x80) return {class_of_ascii(c), 1};
  char32_t cp = 0;
  const std::size_t len = utf8_decode_at(text, pos, cp);
  if (len == 0) return {CharClass::other, 1};
  return {class_of_code_point(cp), static_cast<unsigned char>(len)};
}

namespace {

// Length of a GPT-2 contraction ('s 't 're 've 'm 'll 'd, case-sensitive) at pos, or 0.
std::size_t contraction_at(std::string_view t, std::size_t pos) {
  if (t[pos] != '\'' || pos + 1 >= t.size()) return 0;
  const char a = t[pos + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= t.size()) return 0;
  const char b = t[pos + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// End of the run of characters of class `cls` starting at pos.
std::size_t run_end(std::string_view t, std::size_t pos, CharClass cls) {
  while (pos < t.size()) {
    const CharInfo ci = classify_at(t, pos);
    if (ci.cls != cls) break;
    pos += ci.len;
  }
  return pos;
}

}  // namespace

void pretokenize(std::string_view text, std::vector<std::string_view>& out) {
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    if (const std::size_t c = contraction_at(text, i)) {
      out.push_back(text.substr(i, c));
      i += c;
      continue;
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a single ASCII space joins the run after it.
    std::size_t start = i;
    if (text[i] == ' ' && i + 1 < n) {
      const CharInfo next = classify_at(text, i + 1);
      if (next.cls != CharClass::space) {
        const std::size_t end = run_end(text, i + 1, next.cls);
        out.push_back(text.substr(i, end - i));
        i = end;
        continue;
      }
    }
    const CharInfo ci = classify_at(text, i);
    if (ci.cls != CharClass::space) {
      const std::size_t end = run_end(text, i, ci.cls);
      out.push_back(text.substr(start, end - start));
      i = end;
      continue;
    }
    // Whitespace: `\s+(?!\S)` leaves the last whitespace character of a run that is followed
    // by a non-space, so that a final ' ' can join the next word; `\s+` takes a lone one.
    std::size_t last = i, end = i;
    while (end < n) {
      const CharInfo w = classify_at(text, end);
      if (w.cls != CharClass::space) break;
      last = end;
      end += w.len;
    }
    if (end < n && last > i) end = last;  // run of >= 2 before a non-space: keep the last back
    out.push_back(text.substr(i, end - i));
    i = end;
  }
}

}  // namespace kd::data
