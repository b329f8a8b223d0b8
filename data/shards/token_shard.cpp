#include "data/shards/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <utility>
#include <vector>

#include "base/errors.h"
#include "base/files.h"

namespace kd::data {

namespace {

std::uint32_t load_u32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
std::uint64_t load_u64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// The whole file, mapped read-only; closes the descriptor at once (the mapping stays).
struct Mapped {
  void* addr = nullptr;
  std::size_t bytes = 0;
};

Mapped map_file(const std::string& path) {
  require_regular_file(path, "token shard");  // open() on a FIFO would wait for a writer
  // O_NONBLOCK: should the path have become a FIFO since, open() still returns at once
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  KD_CHECK_INPUT(fd >= 0, "{}: cannot open token shard ({})", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(fmt::format("{}: not a regular file ({}); token shard must be a file", path,
                                 file_kind(st.st_mode)));
  }
  Mapped m;
  m.bytes = std::size_t(st.st_size);
  if (m.bytes > 0) {
    m.addr = ::mmap(nullptr, m.bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m.addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw RuntimeFailure(fmt::format("{}: mmap of {} bytes failed ({})", path, m.bytes, std::strerror(err)));
    }
    ::madvise(m.addr, m.bytes, MADV_SEQUENTIAL);  // training streams through shards in order
  }
  ::close(fd);
  return m;
}

// Checks that `count` ids of `width` bytes exactly fill the file after the header.
void check_payload(const std::string& path, std::string_view fmt_name, std::size_t file_bytes,
                   std::size_t header, std::uint64_t count, std::uint32_t width) {
  const std::uint64_t room = (file_bytes - header) / width;
  KD_CHECK_INPUT(count <= room,
                 "{}: {} header says {} tokens of {} bytes but the file holds only {} (truncated? the file "
                 "has {} bytes)",
                 path, fmt_name, count, width, room, file_bytes);
  KD_CHECK_INPUT(header + count * width == file_bytes,
                 "{}: {} header says {} tokens of {} bytes ({} bytes with the header) but the file has {} bytes "
                 "(trailing data?)",
                 path, fmt_name, count, width, header + count * width, file_bytes);
}

}  // namespace

std::string_view shard_format_name(ShardFormat f) {
  switch (f) {
    case ShardFormat::auto_detect: return "auto";
    case ShardFormat::kdtrain: return "kdtrain";
    case ShardFormat::nanogpt: return "nanogpt";
    case ShardFormat::llmc: return "llmc";
  }
  return "?";
}

ShardFormat parse_shard_format(std::string_view name, std::string_view what) {
  for (ShardFormat f : {ShardFormat::auto_detect, ShardFormat::kdtrain, ShardFormat::nanogpt, ShardFormat::llmc})
    if (name == shard_format_name(f)) return f;
  throw InputError(fmt::format("{}: unknown shard format \"{}\" (expected auto, kdtrain, nanogpt or llmc)", what, name));
}

TokenShard TokenShard::open(const std::string& path, ShardFormat format) {
  TokenShard s;
  s.path_ = path;
  const Mapped m = map_file(path);
  s.map_ = m.addr;
  s.map_bytes_ = m.bytes;  // owned by `s` from here: an exception below unmaps it
  const auto* p = static_cast<const unsigned char*>(m.addr);
  const std::size_t n = m.bytes;

  if (format == ShardFormat::auto_detect) {
    format = ShardFormat::nanogpt;
    if (n >= 4) {
      const std::uint32_t magic = load_u32(p);
      if (magic == kKdShardMagic) format = ShardFormat::kdtrain;
      if (magic == std::uint32_t(kLlmcMagicU16) || magic == std::uint32_t(kLlmcMagicU32)) format = ShardFormat::llmc;
    }
    // A kdtrain (or llm.c) shard whose header was zeroed would read as nanoGPT ids, the header
    // included; 32 token-0 ids in a row are no plausible nanoGPT shard either.
    KD_CHECK_INPUT(format != ShardFormat::nanogpt || n < kKdShardHeaderBytes ||
                       std::any_of(p, p + kKdShardHeaderBytes, [](unsigned char b) { return b != 0; }),
                   "{}: the first {} bytes are all zero: a kdtrain shard with a zeroed header (damaged?), not a "
                   "shard format kdtrain knows; if it really is a nanoGPT shard, set data.format: nanogpt",
                   path, kKdShardHeaderBytes);
  }
  s.format_ = format;

  switch (format) {
    case ShardFormat::kdtrain: {
      KD_CHECK_INPUT(n >= kKdShardHeaderBytes, "{}: truncated kdtrain shard: {} bytes, less than the {}-byte header",
                     path, n, kKdShardHeaderBytes);
      const std::uint32_t magic = load_u32(p);
      KD_CHECK_INPUT(magic == kKdShardMagic, "{}: bad magic 0x{:08X} for a kdtrain shard (expected 0x{:08X}, \"KDTK\")",
                     path, magic, kKdShardMagic);
      const std::uint32_t version = load_u32(p + 4);
      KD_CHECK_INPUT(version == kKdShardVersion, "{}: kdtrain shard version {}; this kdtrain reads version {}", path,
                     version, kKdShardVersion);
      s.width_ = load_u32(p + 8);
      KD_CHECK_INPUT(s.width_ == 2 || s.width_ == 4, "{}: unknown token width {} bytes (expected 2 or 4)", path,
                     s.width_);
      KD_CHECK_INPUT(load_u32(p + 12) == 0, "{}: reserved header field is {}, expected 0", path, load_u32(p + 12));
      const std::uint64_t count = load_u64(p + 16);
      s.text_bytes_ = load_u64(p + 24);
      s.tokenizer_hash_ = load_u64(p + 32);
      check_payload(path, "kdtrain", n, kKdShardHeaderBytes, count, s.width_);
      s.count_ = std::size_t(count);
      s.base_ = p + kKdShardHeaderBytes;
      break;
    }
    case ShardFormat::llmc: {
      KD_CHECK_INPUT(n >= kLlmcHeaderBytes, "{}: truncated llm.c shard: {} bytes, less than the {}-byte header", path,
                     n, kLlmcHeaderBytes);
      const auto magic = std::int32_t(load_u32(p));
      const auto version = std::int32_t(load_u32(p + 4));
      const auto count = std::int32_t(load_u32(p + 8));
      KD_CHECK_INPUT(magic == kLlmcMagicU16 || magic == kLlmcMagicU32,
                     "{}: bad magic {} for an llm.c shard (expected {} for uint16 or {} for uint32 tokens)", path,
                     magic, kLlmcMagicU16, kLlmcMagicU32);
      const bool version_ok = magic == kLlmcMagicU16 ? version == 1 : (version == 1 || version == 7);
      KD_CHECK_INPUT(version_ok, "{}: llm.c shard version {} (expected 1{})", path, version,
                     magic == kLlmcMagicU32 ? " or 7" : "");
      KD_CHECK_INPUT(count >= 0, "{}: llm.c header token count is negative ({})", path, count);
      s.width_ = magic == kLlmcMagicU16 ? 2 : 4;
      check_payload(path, "llm.c", n, kLlmcHeaderBytes, std::uint64_t(count), s.width_);
      s.count_ = std::size_t(count);
      s.base_ = p + kLlmcHeaderBytes;
      break;
    }
    case ShardFormat::nanogpt: {
      KD_CHECK_INPUT(n % 2 == 0, "{}: a nanoGPT shard is raw uint16 tokens, but the file has an odd size ({} bytes)",
                     path, n);
      s.width_ = 2;
      s.count_ = n / 2;
      s.base_ = p;
      break;
    }
    case ShardFormat::auto_detect: break;
  }
  return s;
}

TokenShard::TokenShard(TokenShard&& o) noexcept { *this = std::move(o); }

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this == &o) return *this;
  release();
  path_ = std::move(o.path_);
  format_ = o.format_;
  map_ = std::exchange(o.map_, nullptr);
  map_bytes_ = std::exchange(o.map_bytes_, 0);
  base_ = std::exchange(o.base_, nullptr);
  count_ = std::exchange(o.count_, 0);
  width_ = o.width_;
  text_bytes_ = o.text_bytes_;
  tokenizer_hash_ = o.tokenizer_hash_;
  max_token_.store(o.max_token_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  return *this;
}

TokenShard::~TokenShard() { release(); }

void TokenShard::release() {
  if (map_) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

void TokenShard::copy_range(std::size_t begin, std::span<std::int32_t> out) const {
  if (begin > count_ || out.size() > count_ - begin)
    throw std::out_of_range(fmt::format("{}: tokens [{}, {}) requested from a shard of {}", path_, begin,
                                        begin + out.size(), count_));
  if (width_ == 2) {
    const unsigned char* p = base_ + 2 * begin;
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = v;
    }
  } else {
    std::memcpy(out.data(), base_ + 4 * begin, 4 * out.size());
  }
}

std::uint32_t TokenShard::max_token() const {
  std::int64_t cached = max_token_.load(std::memory_order_relaxed);
  if (cached >= 0) return std::uint32_t(cached);
  std::uint32_t m = 0;
  if (width_ == 2) {
    for (std::size_t i = 0; i < count_; ++i) m = std::max<std::uint32_t>(m, std::uint32_t(std::uint16_t((*this)[i])));
  } else {
    for (std::size_t i = 0; i < count_; ++i) m = std::max(m, std::uint32_t((*this)[i]));
  }
  max_token_.store(m, std::memory_order_relaxed);  // racing first calls store the same value
  return m;
}

void write_kdtrain_shard(const std::string& path, std::span<const std::uint32_t> tokens, std::uint32_t token_bytes,
                         std::uint64_t text_bytes, std::uint64_t tokenizer_hash) {
  KD_CHECK_INPUT(token_bytes == 2 || token_bytes == 4, "{}: token width {} bytes is not 2 or 4", path, token_bytes);
  if (token_bytes == 2) {
    const auto it = std::find_if(tokens.begin(), tokens.end(), [](std::uint32_t t) { return t > 0xFFFFu; });
    KD_CHECK_INPUT(it == tokens.end(), "{}: token {} at position {} does not fit a uint16 shard (use 4-byte tokens)",
                   path, it == tokens.end() ? 0u : *it, it - tokens.begin());
  }
  unsigned char header[kKdShardHeaderBytes] = {};
  const std::uint32_t h32[4] = {kKdShardMagic, kKdShardVersion, token_bytes, 0};
  const std::uint64_t h64[3] = {tokens.size(), text_bytes, tokenizer_hash};
  std::memcpy(header, h32, sizeof h32);
  std::memcpy(header + 16, h64, sizeof h64);

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw RuntimeFailure(fmt::format("{}: cannot create ({})", tmp, std::strerror(errno)));
  bool ok = std::fwrite(header, 1, sizeof header, f) == sizeof header;
  if (token_bytes == 4) {
    ok = ok && std::fwrite(tokens.data(), 4, tokens.size(), f) == tokens.size();
  } else {
    std::vector<std::uint16_t> buf;
    for (std::size_t i = 0; ok && i < tokens.size(); i += std::size_t(1) << 16) {
      const std::size_t n = std::min(tokens.size() - i, std::size_t(1) << 16);
      buf.assign(tokens.begin() + std::ptrdiff_t(i), tokens.begin() + std::ptrdiff_t(i + n));
      ok = std::fwrite(buf.data(), 2, n, f) == n;
    }
  }
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;  // the rename must not land before the data
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw RuntimeFailure(fmt::format("{}: writing the token shard failed ({})", tmp, std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw RuntimeFailure(fmt::format("{}: cannot rename to {} ({})", tmp, path, std::strerror(errno)));
}

}  // namespace kd::data
