// Token shards: flat files of token ids that training streams through. kdtrain writes its
// own format and reads two formats users already have. Readers map the file read-only
// (mmap), so a shard larger than memory costs only the pages touched.
//
// kdtrain (".bin" written by `kdtrain prepare`), all little-endian, 64-byte header:
//   offset  0  u32  magic 0x4B54444B (the bytes 'K','D','T','K')
//   offset  4  u32  version = 1
//   offset  8  u32  token_bytes: 2 (uint16 ids) or 4 (uint32 ids)
//   offset 12  u32  reserved = 0
//   offset 16  u64  token_count
//   offset 24  u64  text_bytes: UTF-8 bytes of the text the tokens encode (for bits per
//                   byte); 0 = unknown
//   offset 32  u64  tokenizer_hash (BpeTokenizer::hash(); 0 = unknown)
//   offset 40  zero padding to 64
//   offset 64  token_count ids of token_bytes each; the file ends there.
// nanoGPT: raw uint16 ids, no header (nanoGPT's prepare.py train.bin / val.bin).
// llm.c:   256 int32 header: [0] magic 20240520 (uint16 ids) or 20240801 (uint32 ids),
//          [1] version (1; llm.c writes 7 for its uint32 "llama-3" shards, also accepted),
//          [2] token count; the ids follow at byte 1024.
// Auto-detection reads the first 4 bytes: kdtrain's magic, else llm.c's, else nanoGPT.
// (A nanoGPT file whose first two ids spell a magic is misread; name the format then.) A file
// whose first 64 bytes are all zero (a zeroed kdtrain header) is refused rather than read as
// nanoGPT: name the format to read one.
#pragma once
// Ids are read in place, which assumes a little-endian host (x86-64, AArch64).

#include <cstddef>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace kd::data {

static_assert(std::endian::native == std::endian::little, "token shards are read in place as little-endian");

enum class ShardFormat { auto_detect, kdtrain, nanogpt, llmc };

std::string_view shard_format_name(ShardFormat f);
// "auto", "kdtrain", "nanogpt", "llmc"; anything else is an InputError naming `what`.
ShardFormat parse_shard_format(std::string_view name, std::string_view what);

inline constexpr std::uint32_t kKdShardMagic = 0x4B54444Bu;
inline constexpr std::uint32_t kKdShardVersion = 1;
inline constexpr std::size_t kKdShardHeaderBytes = 64;
inline constexpr std::int32_t kLlmcMagicU16 = 20240520;
inline constexpr std::int32_t kLlmcMagicU32 = 20240801;
inline constexpr std::size_t kLlmcHeaderBytes = 256 * 4;

class TokenShard {
 public:
  // Maps `path` and checks its header against its size. Every malformed file is an
  // InputError naming the path and what is wrong.
  static TokenShard open(const std::string& path, ShardFormat format = ShardFormat::auto_detect);

  TokenShard(TokenShard&&) noexcept;
  TokenShard& operator=(TokenShard&&) noexcept;
  ~TokenShard();

  std::size_t size() const { return count_; }
  // Token i (i < size(), unchecked). A uint32 id above INT32_MAX reads negative: compare
  // max_token() with the vocabulary before training on a shard.
  std::int32_t operator[](std::size_t i) const {
    if (width_ == 2) {
      std::uint16_t v;
      std::memcpy(&v, base_ + 2 * i, 2);
      return v;
    }
    std::uint32_t v;
    std::memcpy(&v, base_ + 4 * i, 4);
    return std::int32_t(v);
  }
  // Copies tokens [begin, begin + out.size()); std::out_of_range if that passes the end.
  void copy_range(std::size_t begin, std::span<std::int32_t> out) const;

  // The largest id in the shard (0 when empty). The first call reads the whole shard.
  std::uint32_t max_token() const;
  std::uint64_t text_bytes() const { return text_bytes_; }          // 0 if unknown
  std::uint64_t tokenizer_hash() const { return tokenizer_hash_; }  // 0 if unknown
  std::uint32_t token_bytes() const { return width_; }
  ShardFormat format() const { return format_; }
  const std::string& path() const { return path_; }

 private:
  TokenShard() = default;
  void release();

  std::string path_;
  ShardFormat format_ = ShardFormat::kdtrain;
  void* map_ = nullptr;  // the whole file (null when it is empty)
  std::size_t map_bytes_ = 0;
  const unsigned char* base_ = nullptr;  // the first token
  std::size_t count_ = 0;
  std::uint32_t width_ = 2;
  std::uint64_t text_bytes_ = 0;
  std::uint64_t tokenizer_hash_ = 0;
  mutable std::atomic<std::int64_t> max_token_{-1};  // cached; -1 = not computed yet
};

// Writes a kdtrain shard to path + ".tmp", then renames it to `path`, so no half-written
// file carries the final name. token_bytes is 2 or 4; an id that does not fit it is an
// InputError; an I/O failure is a RuntimeFailure naming the path.
void write_kdtrain_shard(const std::string& path, std::span<const std::uint32_t> tokens,
                         std::uint32_t token_bytes, std::uint64_t text_bytes, std::uint64_t tokenizer_hash);

}  // namespace kd::data
