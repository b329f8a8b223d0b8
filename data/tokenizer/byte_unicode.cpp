#include "data/tokenizer/byte_unicode.h"

#include <array>

#include "data/tokenizer/pretokenize.h"

namespace kd::data {

namespace {

bool stands_for_itself(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct Table {
  std::array<char32_t, 256> to_cp{};
  std::array<int, 324> to_byte{};  // code points 0 … 323 (the shifted ones end at U+0143)
  Table() {
    to_byte.fill(-1);
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      to_cp[b] = stands_for_itself(b) ? char32_t(b) : char32_t(256 + shifted++);
      to_byte[to_cp[b]] = b;
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

std::string bytes_to_token_text(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(table().to_cp[static_cast<unsigned char>(c)], out);
  return out;
}

std::optional<std::string> token_text_to_bytes(std::string_view text) {
  std::string out;
  for (std::size_t pos = 0; pos < text.size();) {
    char32_t cp = 0;
    const std::size_t len = utf8_decode_at(text, pos, cp);
    if (len == 0 || cp >= table().to_byte.size() || table().to_byte[cp] < 0) return std::nullopt;
    out += char(table().to_byte[cp]);
    pos += len;
  }
  return out;
}

}  // namespace kd::data
