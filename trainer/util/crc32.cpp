#include "trainer/util/crc32.h"

#include <isa-l/crc.h>
#include <zlib.h>

#include <algorithm>

#include "base/errors.h"

namespace kd::crc32 {

std::uint32_t of(const void* data, std::uint64_t bytes) { return extend(0, data, bytes); }

// ISA-L's crc32_gzip_refl is zlib's crc32 (the same reflected polynomial, initial value and
// final inversion; a previous CRC as the seed continues it), vectorised with carry-less
// multiplication. test_checkpoint checks the two agree.
std::uint32_t extend(std::uint32_t crc, const void* data, std::uint64_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (bytes > 0) {  // its length is 32 bits
    const std::uint64_t n = std::min<std::uint64_t>(bytes, std::uint64_t{1} << 30);
    crc = crc32_gzip_refl(crc, p, n);
    p += n;
    bytes -= n;
  }
  return crc;
}

std::uint32_t combine(std::uint32_t a, std::uint32_t b, std::uint64_t b_bytes) {
  return std::uint32_t(::crc32_combine(a, b, z_off_t(b_bytes)));
}

void GrainSums::reset(const void* base, std::uint64_t bytes, std::uint64_t grain) {
  KD_ASSERT(grain > 0, "a grain of 0 bytes");
  base_ = static_cast<const unsigned char*>(base);
  bytes_ = bytes;
  grain_ = grain;
  whole_op_ = ::crc32_combine_gen(z_off_t(grain));
  crc_.assign((bytes + grain - 1) / grain, 0);
}

bool GrainSums::covers(const void* p, std::uint64_t bytes) const {
  const auto* q = static_cast<const unsigned char*>(p);
  return base_ != nullptr && q >= base_ && std::uint64_t(q - base_) <= bytes_ && bytes <= bytes_ - std::uint64_t(q - base_);
}

std::uint32_t GrainSums::of(const void* p, std::uint64_t bytes) const {
  KD_ASSERT(covers(p, bytes), "a range outside the summed region");
  const std::uint64_t lo = std::uint64_t(static_cast<const unsigned char*>(p) - base_), hi = lo + bytes;
  const std::uint64_t first = (lo + grain_ - 1) / grain_;            // the first grain wholly inside
  const std::uint64_t last = hi == bytes_ ? grains() : hi / grain_;  // one past the last
  if (first >= last) return extend(0, p, bytes);  // within a grain, or across one bound only
  const std::uint64_t head_end = first * grain_, tail_begin = std::min(last * grain_, bytes_);
  std::uint32_t crc = extend(0, base_ + lo, head_end - lo);
  for (std::uint64_t k = first; k < last; ++k) {
    const std::uint64_t n = std::min(grain_, bytes_ - k * grain_);
    crc = n == grain_ ? std::uint32_t(::crc32_combine_op(crc, crc_[k], whole_op_)) : combine(crc, crc_[k], n);
  }
  return extend(crc, base_ + tail_begin, hi - tail_begin);
}

}  // namespace kd::crc32
