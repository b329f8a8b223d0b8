// bfloat16: the top 16 bits of an IEEE float32 (8 exponent bits, 7 mantissa bits).
// Rounding to nearest even; a NaN stays a NaN. Shared by the teacher cache, bf16 teacher
// weights and every backend.
#pragma once

#include <cstdint>
#include <cstring>

namespace kd::common {

inline std::uint16_t to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return std::uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}

inline float from_bf16(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace kd::common
