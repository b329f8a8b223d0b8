#include "trainer/checkpoint/byte_writer.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
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
#include "trainer/util/crc32.h"

namespace kd::ckpt::bytes {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kStageBytes = std::uint64_t{8} << 20;
// Pieces smaller than this go through the page cache, all flushed by the one fdatasync: each
// O_DIRECT write waits for the device, and on this VM's disk a round trip took up to ~2 ms,
// so an 89 MB student's few hundred small tensors took 0.2-0.8 s direct against 0.12-0.16 s
// through the page cache (torch.save: 0.13 s); the weights' 4 MiB blocks still go direct.
constexpr std::uint64_t kDirectMinBytes = std::uint64_t{1} << 20;
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

// Copies n bytes to dst in blocks, each's CRC-32 taken first and the copy then reading it
// from the cache (one pass over memory instead of two); the CRC of all n bytes. The caller
// fences.
std::uint32_t copy_with_crc(char* dst, const char* src, std::uint64_t n) {
  std::uint32_t crc = crc32::of(nullptr, 0);
  for (std::uint64_t at = 0; at < n; at += kCopyBlock) {
    const std::uint64_t b = std::min(kCopyBlock, n - at);
    crc = crc32::extend(crc, src + at, b);
    stream_copy(dst + at, src + at, b);
  }
  return crc;
}

// The CRC-32 of a piece read where it lies: from the sums its memory's writer took, when
// known (its ends read), else from all its bytes.
std::uint32_t sum_in_place(const Piece& p) {
  return p.known ? p.known->of(p.src, p.bytes) : crc32::of(p.src, p.bytes);
}

// A live piece copied to its `copy` place; its CRC-32 (taken on the way when not known).
std::uint32_t copy_summed(const Piece& p) {
  if (!p.known) return copy_with_crc(p.copy, p.src, p.bytes);
  stream_copy(p.copy, p.src, p.bytes);
  return p.known->of(p.src, p.bytes);
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
                                     "train.checkpoint_copy: none writes the state in place instead): {}",
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

std::uint64_t direct_memory_alignment(int fd) {
  struct statx st {};
  if (fd < 0 || ::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) != 0 || !(st.stx_mask & STATX_DIOALIGN) ||
      st.stx_dio_mem_align == 0) {
    return kPage;
  }
  return std::min<std::uint64_t>(st.stx_dio_mem_align, kPage);
}

Handover::Handover(std::size_t pieces)
    : state_(std::make_unique<std::atomic<std::uint8_t>[]>(pieces)), crc_(pieces, 0) {
  for (std::size_t i = 0; i < pieces; ++i) state_[i].store(kPending, std::memory_order_relaxed);
}

void Handover::notify() {
  { std::lock_guard lock(m_); }  // a waiter between its check and its sleep sees the change
  cv_.notify_all();
}

bool Handover::claim(std::size_t i) {
  std::uint8_t want = kPending;
  return state_[i].compare_exchange_strong(want, kReading);
}

void Handover::released(std::size_t i) {
  state_[i].store(kReleased);
  // (sequentially consistent with take_back's store of taking_: one of the two sees the other)
  if (taking_.load()) notify();
}

std::uint32_t Handover::copied(std::size_t i) {
  if (state_[i].load(std::memory_order_acquire) != kCopied) {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return state_[i].load(std::memory_order_acquire) == kCopied; });
  }
  return crc_[i];
}

std::uint64_t Handover::take_back(const std::vector<Piece>& pieces) {
  taking_.store(true);
  std::vector<std::size_t> mine;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    std::uint8_t want = kPending;
    if (pieces[i].copy && state_[i].compare_exchange_strong(want, kCopying)) mine.push_back(i);
  }
  // the pieces nearest the writer first: it waits for those soonest
  const std::int64_t n = std::int64_t(mine.size());
  std::uint64_t bytes = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bytes)
  for (std::int64_t k = 0; k < n; ++k) {
    const std::size_t i = mine[std::size_t(k)];
    crc_[i] = copy_summed(pieces[i]);
    stream_fence();
    state_[i].store(kCopied, std::memory_order_release);
    notify();
    bytes += pieces[i].bytes;
  }
  std::unique_lock lock(m_);
  cv_.wait(lock, [&] {
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      if (state_[i].load() == kReading) return false;
    }
    return true;
  });
  return bytes;
}

Result write_pieces(int fd, const std::vector<Piece>& pieces, const WriteOptions& o, const std::atomic<bool>& stop) {
  Result r;
  r.crc32.assign(pieces.size(), 0);
  Handover* const handover = o.handover;
  // where each piece is written from: its copy once made
  std::vector<const char*> from(pieces.size());
  std::vector<bool> summed(pieces.size(), false);
  bool waits_for_writes = false;  // a live piece is written from the caller's memory
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    from[i] = pieces[i].src;
    waits_for_writes = waits_for_writes || (pieces[i].live && (handover || !pieces[i].copy));
  }
  for (std::size_t i = 0; i < pieces.size() && !handover && !stop.load(std::memory_order_relaxed); ++i) {
    const Piece& p = pieces[i];
    if (!p.copy) continue;
    r.crc32[i] = copy_summed(p);  // src stays as it is until read_done
    summed[i] = true;
    from[i] = p.copy;
  }
  stream_fence();
  if (o.read_done && !waits_for_writes) o.read_done();
  std::atomic<std::size_t> next{0};
  std::atomic<std::int64_t> written{0};
  std::atomic<bool> direct{o.direct_fd >= 0};
  std::mutex m;
  auto write_piece = [&](std::size_t i, const char* src, std::unique_ptr<char, decltype(&std::free)>& stage) {
    const Piece& p = pieces[i];
    // the whole pages of the piece go around the page cache, the ends through it
    const std::uint64_t end = p.file_offset + p.bytes;
    std::uint64_t lo = (p.file_offset + kPage - 1) / kPage * kPage, hi = end / kPage * kPage;
    const bool aligned = reinterpret_cast<std::uintptr_t>(src + (lo - p.file_offset)) % o.direct_mem_align == 0;
    const bool small = p.bytes < kDirectMinBytes;
    if (direct && !small && !aligned && !stage) stage.reset(static_cast<char*>(std::aligned_alloc(kPage, kStageBytes)));
    if (!direct || small || (!aligned && !stage) || lo >= hi) lo = hi = end;
    bool good = write_all_at(fd, {src, lo - p.file_offset}, p.file_offset);
    if (o.fail_after >= 0 && written.load() >= o.fail_after) {
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
      if (direct && write_all_at(o.direct_fd, {out, n}, at)) {
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
    return good && write_all_at(fd, {src + (hi - p.file_offset), end - hi}, hi);
  };
  auto work = [&] {
    // the page-aligned staging buffer of this thread's O_DIRECT writes of unaligned memory
    std::unique_ptr<char, decltype(&std::free)> stage(nullptr, &std::free);
    for (std::size_t i = next++; i < pieces.size(); i = next++) {
      if (stop.load(std::memory_order_relaxed)) return;
      const Piece& p = pieces[i];
      const char* src = from[i];
      bool good = true;
      if (handover && p.copy && !handover->claim(i)) {  // taken back: written from its copy
        src = p.copy;
        r.crc32[i] = handover->copied(i);
        good = write_piece(i, src, stage);
      } else if (handover && p.copy) {  // the writer's to read in place until released
        r.crc32[i] = sum_in_place(p);
        good = write_piece(i, src, stage);
        handover->released(i);
      } else {
        if (!summed[i]) r.crc32[i] = sum_in_place(p);
        good = write_piece(i, src, stage);
      }
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
      if (++written == o.die_after) ::raise(SIGKILL);
    }
  };
  if (o.die_after == 0) ::raise(SIGKILL);
  std::vector<std::thread> helpers;
  const int n = std::clamp(o.threads, 1, int(std::max<std::size_t>(pieces.size(), 1)));
  for (int t = 1; t < n; ++t) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
  if (o.read_done && waits_for_writes) o.read_done();
  if (r.error.empty() && stop.load()) r.error = "the write was abandoned";
  if (r.error.empty() && ::fdatasync(fd) != 0) r.error = fmt::format("fdatasync: {}", std::strerror(errno));
  return r;
}

}  // namespace kd::ckpt::bytes
