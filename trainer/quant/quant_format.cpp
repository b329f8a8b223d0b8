#include "trainer/quant/quant_format.h"

#include <fmt/format.h>

#include <vector>

#include "base/errors.h"

namespace kd::quant {

namespace {
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t b = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(b, i - b));
      b = i + 1;
    }
  }
  return out;
}
constexpr const char* kGrammar =
    "none | int2..int8 | fp8_e4m3 | fp8_e5m2, then optionally :tensor|:channel|:g<size> (g32, g64, g128)|:token "
    "and :sym|:asym (e.g. int4:g128, int8:token)";
}  // namespace

kern::QuantFormat parse_format(std::string_view text, const std::string& where) {
  kern::QuantFormat f;
  if (text == "none" || text.empty()) return f;
  const auto parts = split(text, ':');
  const std::string_view type = parts[0];
  if (type == "fp8_e4m3") {
    f.kind = kern::QuantKind::fp8_e4m3;
  } else if (type == "fp8_e5m2") {
    f.kind = kern::QuantKind::fp8_e5m2;
  } else if (type.size() >= 4 && type.substr(0, 3) == "int") {
    int bits = 0;
    for (char ch : type.substr(3)) {
      KD_CHECK_INPUT(ch >= '0' && ch <= '9' && bits < 100, "{}: unknown quantization type '{}' in '{}' (expected {})",
                     where, type, text, kGrammar);
      bits = bits * 10 + (ch - '0');
    }
    KD_CHECK_INPUT(bits >= 2 && bits <= 8, "{}: {} bits is out of range in '{}' (integer formats have 2..8 bits)",
                   where, bits, text);
    f.kind = kern::QuantKind::integer;
    f.bits = bits;
  } else {
    throw InputError(fmt::format("{}: unknown quantization format '{}' (expected {})", where, text, kGrammar));
  }
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string_view p = parts[i];
    if (p == "tensor") {
      f.granularity = kern::QuantGranularity::tensor;
    } else if (p == "channel") {
      f.granularity = kern::QuantGranularity::channel;
    } else if (p == "token") {
      f.granularity = kern::QuantGranularity::token;
    } else if (p.size() >= 2 && p[0] == 'g' && p.find_first_not_of("0123456789", 1) == std::string_view::npos &&
               p.size() <= 6) {
      f.granularity = kern::QuantGranularity::group;
      f.group = std::stoi(std::string(p.substr(1)));
      KD_CHECK_INPUT(f.group >= 2 && f.group % 2 == 0, "{}: group size {} in '{}' must be even and at least 2 (32, 64 "
                     "and 128 are the usual ones)", where, f.group, text);
    } else if (p == "sym" || p == "asym") {
      KD_CHECK_INPUT(!f.is_fp8(), "{}: '{}' in '{}': fp8 formats are symmetric (no zero point)", where, p, text);
      f.symmetric = p == "sym";
    } else {
      throw InputError(fmt::format("{}: unknown option '{}' in quantization format '{}' (expected {})", where, p,
                                   text, kGrammar));
    }
  }
  return f;
}

std::string to_string(const kern::QuantFormat& f) {
  if (!f.enabled()) return "none";
  std::string s = f.kind == kern::QuantKind::integer ? fmt::format("int{}", f.bits)
                  : f.kind == kern::QuantKind::fp8_e4m3 ? "fp8_e4m3"
                                                         : "fp8_e5m2";
  switch (f.granularity) {
    case kern::QuantGranularity::tensor: s += ":tensor"; break;
    case kern::QuantGranularity::channel: s += ":channel"; break;
    case kern::QuantGranularity::token: s += ":token"; break;
    case kern::QuantGranularity::group: s += fmt::format(":g{}", f.group); break;
  }
  if (f.kind == kern::QuantKind::integer) s += f.symmetric ? ":sym" : ":asym";
  return s;
}

void check_format_for(const kern::QuantFormat& f, bool is_weight, int cols, const std::string& tensor,
                      const std::string& where) {
  if (!f.enabled()) return;
  if (is_weight) {
    KD_CHECK_INPUT(f.granularity != kern::QuantGranularity::token,
                   "{}: '{}' for weight '{}': token granularity is for activations (use channel or a group)",
                   where, to_string(f), tensor);
  } else {
    KD_CHECK_INPUT(f.granularity == kern::QuantGranularity::tensor || f.granularity == kern::QuantGranularity::token,
                   "{}: '{}' for the input of '{}': activations take tensor or token granularity", where,
                   to_string(f), tensor);
  }
  if (f.granularity == kern::QuantGranularity::group) {
    KD_CHECK_INPUT(cols % f.group == 0,
                   "{}: group size {} does not divide the input dimension {} of '{}' (use a group size "
                   "that divides it, or channel)",
                   where, f.group, cols, tensor);
  }
}

}  // namespace kd::quant
