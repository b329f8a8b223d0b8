// GPT-2's byte-to-character table, which Hugging Face's byte-level BPE (ByteLevel
// pre-tokenizer and decoder) uses to spell tokens: the printable bytes ! … ~, ¡ … ¬ and ® … ÿ
// stand for themselves, the other 68 bytes take U+0100 onwards in byte order. A token's
// string in tokenizer.json is its bytes spelt this way.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kd::data {

// The token string (UTF-8) of raw bytes.
std::string bytes_to_token_text(std::string_view bytes);
// The raw bytes of a token string; nullopt when a character is not in the table.
std::optional<std::string> token_text_to_bytes(std::string_view text);

}  // namespace kd::data
