#include "trainer/checkpoint/byte_writer.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "base/errors.h"
#include "base/file_io.h"
#include "trainer/checkpoint/manifest.h"

namespace kd::ckpt::bytes {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kStageBytes = std::uint64_t{8} << 20;
// the snapshot's copy goes in blocks this size, each's CRC taken first, the copy then reading
// it from the cache (one pass over memory instead of two)
constexpr std::uint64_t kCopyBlock = std::uint64_t{256} << 10;

// memcpy whose stores bypass the cache. glibc's memcpy of this machine takes 0.66 s for 2 GB
// when source and destination sit at different offsets modulo 64 (a tensor's place in the
// flat buffer against its page-congruent place in a snapshot or staging buffer), 0.18 s when
// they agree; these streaming stores take 0.17 s either way, and leave the training's data in
// the cache. The caller fences (_mm_sfence) before another thread or the device reads `dst`.
void stream_copy(char* dst, const char* src, std::uint64_t n) {
#if defined(__AVX2__)
  const std::uint64_t head = std::min<std::uint64_t>(n, (32 - reinterpret_cast<std::uintptr_t>(dst) % 32) % 32);
  std::memcpy(dst, src, head);
  std::uint64_t i = head;
  for (; i + 128 <= n; i += 128) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 32));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 64));
    const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 96));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), a);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 32), b);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 64), c);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 96), d);
  }
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst, src, n);
#endif
}

void stream_fence() {
#if defined(__AVX2__)
  _mm_sfence();
#endif
}

}  // namespace

SnapshotMemory::~SnapshotMemory() {
  if (data_) ::munmap(data_, size_);
}

char* SnapshotMemory::reserve(std::uint64_t bytes) {
  if (bytes <= size_) return static_cast<char*>(data_);
  if (data_) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  constexpr std::uint64_t kHuge = std::uint64_t{2} << 20;
  const std::uint64_t n = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw RuntimeFailure(fmt::format("out of memory: cannot map the checkpoint's snapshot of the state ({:.2f} GiB; "
                                     "train.checkpoint_copy: false writes the state in place instead): {}",
                                     double(n) / double(std::uint64_t{1} << 30), std::strerror(errno)));
  }
  (void)::madvise(p, n, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
  data_ = p;
  size_ = n;
  return static_cast<char*>(p);
}

std::vector<std::uint64_t> snapshot_places(const std::vector<Piece>& pieces, const std::vector<bool>& take,
                                           std::uint64_t& total) {
  std::vector<std::uint64_t> at(pieces.size(), ~std::uint64_t{0});
  total = 0;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (!take[i]) continue;
    const std::uint64_t want = pieces[i].file_offset % kPage;
    total += (want + kPage - total % kPage) % kPage;  // the next address congruent to the file offset
    at[i] = total;
    total += pieces[i].bytes;
  }
  return at;
}

Result write_pieces(int fd, int direct_fd, const std::vector<Piece>& pieces, int threads,
                    const std::atomic<bool>& stop, const std::function<void()>& read_done, std::int64_t die_after,
                    std::int64_t fail_after) {
  Result r;
  r.crc32.assign(pieces.size(), 0);
  // where each piece is written from: its copy once made
  std::vector<const char*> from(pieces.size());
  std::vector<bool> summed(pieces.size(), false);
  bool waits_for_writes = false;  // a live piece is written from the caller's memory
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    from[i] = pieces[i].src;
    waits_for_writes = waits_for_writes || (pieces[i].live && !pieces[i].copy);
  }
  for (std::size_t i = 0; i < pieces.size() && !stop.load(std::memory_order_relaxed); ++i) {
    const Piece& p = pieces[i];
    if (!p.copy) continue;
    std::uint32_t crc = manifest::crc32_of(nullptr, 0);
    for (std::uint64_t at = 0; at < p.bytes; at += kCopyBlock) {
      const std::uint64_t n = std::min(kCopyBlock, p.bytes - at);
      crc = manifest::crc32_continue(crc, p.src + at, n);  // src stays as it is until read_done
      stream_copy(p.copy + at, p.src + at, n);            // from the cache the CRC brought it to
    }
    r.crc32[i] = crc;
    summed[i] = true;
    from[i] = p.copy;
  }
  stream_fence();
  if (read_done && !waits_for_writes) read_done();
  std::atomic<std::size_t> next{0};
  std::atomic<std::int64_t> written{0};
  std::atomic<bool> direct{direct_fd >= 0};
  std::mutex m;
  auto work = [&] {
    // the page-aligned staging buffer of this thread's O_DIRECT writes of unaligned memory
    std::unique_ptr<char, decltype(&std::free)> stage(nullptr, &std::free);
    for (std::size_t i = next++; i < pieces.size(); i = next++) {
      if (stop.load(std::memory_order_relaxed)) return;
      const Piece& p = pieces[i];
      const char* src = from[i];
      if (!summed[i]) r.crc32[i] = manifest::crc32_of(src, p.bytes);
      // the whole pages of the piece go around the page cache, the ends through it
      const std::uint64_t end = p.file_offset + p.bytes;
      std::uint64_t lo = (p.file_offset + kPage - 1) / kPage * kPage, hi = end / kPage * kPage;
      const bool aligned = reinterpret_cast<std::uintptr_t>(src + (lo - p.file_offset)) % kPage == 0;
      if (direct && !aligned && !stage) stage.reset(static_cast<char*>(std::aligned_alloc(kPage, kStageBytes)));
      if (!direct || (!aligned && !stage) || lo >= hi) lo = hi = end;
      bool good = write_all_at(fd, {src, lo - p.file_offset}, p.file_offset);
      if (fail_after >= 0 && written.load() >= fail_after) {
        good = false;
        errno = EIO;
      }
      for (std::uint64_t at = lo; good && at < hi;) {
        const std::uint64_t n = aligned ? hi - at : std::min<std::uint64_t>(hi - at, kStageBytes);
        const char* out = src + (at - p.file_offset);
        if (!aligned) {
          stream_copy(stage.get(), out, n);
          stream_fence();
          out = stage.get();
        }
        if (direct && write_all_at(direct_fd, {out, n}, at)) {
          at += n;
          continue;
        }
        if (errno != EINVAL) {
          good = false;
          break;
        }
        direct = false;  // the file system takes no direct I/O here (alignment): the page cache then
        good = write_all_at(fd, {src + (at - p.file_offset), hi - at}, at);
        at = hi;
      }
      good = good && write_all_at(fd, {src + (hi - p.file_offset), end - hi}, hi);
      if (!good) {
        const std::string e = fmt::format("writing {} bytes at offset {}: {}", p.bytes, p.file_offset,
                                          std::strerror(errno));
        std::lock_guard lock(m);
        if (r.error.empty()) {
          r.error = e;
          r.failed_piece = std::int64_t(i);
        }
        next = pieces.size();
        return;
      }
      if (++written == die_after) ::raise(SIGKILL);
    }
  };
  if (die_after == 0) ::raise(SIGKILL);
  std::vector<std::thread> helpers;
  const int n = std::clamp(threads, 1, int(std::max<std::size_t>(pieces.size(), 1)));
  for (int t = 1; t < n; ++t) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
  if (read_done && waits_for_writes) read_done();
  if (r.error.empty() && stop.load()) r.error = "the write was abandoned";
  if (r.error.empty() && ::fdatasync(fd) != 0) r.error = fmt::format("fdatasync: {}", std::strerror(errno));
  return r;
}

}  // namespace kd::ckpt::bytes
