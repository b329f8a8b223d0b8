// CRC-32, the checkpoint manifest's checksum: zlib's (the reflected polynomial 0xEDB88320,
// initial value and final inversion; crc32(0, data, n)), at memory speed with ISA-L's
// carry-less multiplication (on this machine ~26 GB/s a core from memory, ~60 GB/s from the
// cache, against zlib's ~4).
//
// GrainSums holds the CRC-32s of a region of memory, one per grain, taken by the code that
// last wrote it while the bytes were still in its cache (AdamW's update before a checkpoint,
// trainer/optim/adamw.h). A checkpoint writer then gets the CRC-32 of any range of the region
// from them and the range's two ends, instead of reading every byte again from memory on a
// core the training could use (trainer/checkpoint/byte_writer.h).
#pragma once

#include <cstdint>
#include <vector>

namespace kd::crc32 {

std::uint32_t of(const void* data, std::uint64_t bytes);
// The CRC-32 of the bytes whose CRC-32 is `crc` followed by `bytes` more at `data`.
std::uint32_t extend(std::uint32_t crc, const void* data, std::uint64_t bytes);
// The CRC-32 of the bytes of `a` followed by `b_bytes` bytes whose CRC-32 is `b`.
std::uint32_t combine(std::uint32_t a, std::uint32_t b, std::uint64_t b_bytes);

class GrainSums {
 public:
  // The grain the optimizer sums in: 64 KiB of each of the weights, m and v (256 KiB with
  // the gradient) stay in a core's 1 MiB L2 between the update and the CRC, and a 4 MiB
  // checkpoint block has at most two partial grains (3% of its bytes) read again for its ends.
  static constexpr std::uint64_t kGrain = std::uint64_t{64} << 10;

  // The region [base, base + bytes), its grains [base + k·grain, base + (k+1)·grain) (the
  // last one shorter); every grain's CRC-32 is set by the caller (grain()) before of() is used.
  void reset(const void* base, std::uint64_t bytes, std::uint64_t grain = kGrain);
  std::uint64_t grains() const { return crc_.size(); }
  std::uint64_t grain_bytes() const { return grain_; }
  // The CRC-32 of grain k (to set, and as set).
  std::uint32_t& grain(std::uint64_t k) { return crc_[k]; }
  std::uint32_t grain(std::uint64_t k) const { return crc_[k]; }

  // True when [p, p + bytes) lies in the region.
  bool covers(const void* p, std::uint64_t bytes) const;
  // The CRC-32 of [p, p + bytes), which covers(): the grains wholly inside it from the
  // table, its ends (less than a grain each) read from memory. Correct only while the region
  // holds what it held when the grains were summed.
  std::uint32_t of(const void* p, std::uint64_t bytes) const;

 private:
  const unsigned char* base_ = nullptr;
  std::uint64_t bytes_ = 0, grain_ = kGrain;
  std::uint64_t whole_op_ = 0;  // zlib's crc32_combine_gen(grain): combining a whole grain
  std::vector<std::uint32_t> crc_;
};

}  // namespace kd::crc32
