#include "trainer/checkpoint/byte_writer.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "base/file_io.h"
#include "trainer/checkpoint/manifest.h"

namespace kd::ckpt::bytes {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kStageBytes = std::uint64_t{8} << 20;

}  // namespace

Result write_pieces(int fd, int direct_fd, const std::vector<Piece>& pieces, int threads,
                    const std::atomic<bool>& stop, const std::function<void()>& read_done, std::int64_t die_after,
                    std::int64_t fail_after) {
  Result r;
  r.crc32.assign(pieces.size(), 0);
  std::atomic<std::size_t> next{0};
  std::atomic<std::int64_t> written{0};
  std::atomic<bool> direct{direct_fd >= 0};
  std::mutex m;
  auto work = [&] {
    // the page-aligned staging buffer of this thread's O_DIRECT writes
    std::unique_ptr<char, decltype(&std::free)> stage(nullptr, &std::free);
    if (direct) stage.reset(static_cast<char*>(std::aligned_alloc(kPage, kStageBytes)));
    for (std::size_t i = next++; i < pieces.size(); i = next++) {
      if (stop.load(std::memory_order_relaxed)) return;
      const Piece& p = pieces[i];
      r.crc32[i] = manifest::crc32_of(p.src, p.bytes);
      // the whole pages of the piece go around the page cache, the ends through it
      const std::uint64_t end = p.file_offset + p.bytes;
      std::uint64_t lo = (p.file_offset + kPage - 1) / kPage * kPage, hi = end / kPage * kPage;
      if (!direct || !stage || lo >= hi) lo = hi = end;
      bool good = write_all_at(fd, {p.src, lo - p.file_offset}, p.file_offset);
      if (fail_after >= 0 && written.load() >= fail_after) {
        good = false;
        errno = EIO;
      }
      for (std::uint64_t at = lo; good && at < hi;) {
        const std::uint64_t n = std::min<std::uint64_t>(hi - at, kStageBytes);
        std::memcpy(stage.get(), p.src + (at - p.file_offset), n);
        if (direct && write_all_at(direct_fd, {stage.get(), n}, at)) {
          at += n;
          continue;
        }
        if (errno != EINVAL) {
          good = false;
          break;
        }
        direct = false;  // the file system takes no direct I/O here (alignment): the page cache then
        good = write_all_at(fd, {p.src + (at - p.file_offset), hi - at}, at);
        at = hi;
      }
      good = good && write_all_at(fd, {p.src + (hi - p.file_offset), end - hi}, hi);
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
  if (read_done) read_done();
  if (r.error.empty() && stop.load()) r.error = "the write was abandoned";
  if (r.error.empty() && ::fdatasync(fd) != 0) r.error = fmt::format("fdatasync: {}", std::strerror(errno));
  return r;
}

}  // namespace kd::ckpt::bytes
