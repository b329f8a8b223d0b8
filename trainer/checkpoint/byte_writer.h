// Internal to trainer/checkpoint: writing a checkpoint's tensor bytes into the datasets HDF5
// has laid out (contiguous, allocated when created, so each has a fixed file offset), with
// plain pwrite from several threads, each piece's CRC-32 taken from the same memory as it is
// written. No HDF5 here: HDF5 is not thread-safe, and this runs on a background thread while
// the training goes on (trainer/checkpoint/checkpoint_writer.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kd::ckpt::bytes {

// `bytes` bytes at `src` that go to `file_offset`: one CRC block's part at most (the
// manifest's slice `slice` of entry `entry`), so its CRC-32 is one manifest slice.
struct Piece {
  std::size_t entry = 0, slice = 0;
  std::uint64_t file_offset = 0, bytes = 0;
  const char* src = nullptr;
  bool live = false;  // src is the caller's memory, read in place until read_done (TensorView::live)
  // Where the writer first copies the piece (nullptr: it is written from src): a place in a
  // snapshot at an address congruent to file_offset modulo the page (snapshot_places), so its
  // whole pages go to O_DIRECT without a staging copy.
  char* copy = nullptr;
};

// The places of `pieces` (those `take` says) in one page-aligned snapshot buffer: offsets
// into it, each congruent to its piece's file offset modulo the page, in the pieces' order
// (~0 for a piece not taken); `total` gets the buffer's size.
std::vector<std::uint64_t> snapshot_places(const std::vector<Piece>& pieces, const std::vector<bool>& take,
                                           std::uint64_t& total);


// Page-aligned memory for snapshots, kept from one checkpoint to the next: an anonymous
// mapping with huge pages asked for (MADV_HUGEPAGE: ~1000 page faults for 2 GB instead of
// 500000, fewer TLB misses in the copy, cheaper pinning for O_DIRECT), not touched when
// mapped, so the writer thread's first copy faults it in, in the background.
class SnapshotMemory {
 public:
  SnapshotMemory() = default;
  ~SnapshotMemory();
  SnapshotMemory(const SnapshotMemory&) = delete;
  SnapshotMemory& operator=(const SnapshotMemory&) = delete;
  // At least `bytes`, page-aligned; the previous contents are lost when it grows.
  // RuntimeFailure naming the size when the memory cannot be had.
  char* reserve(std::uint64_t bytes);

 private:
  void* data_ = nullptr;
  std::uint64_t size_ = 0;
};

struct Result {
  std::vector<std::uint32_t> crc32;  // per piece
  std::string error;                 // "" when every byte was written and synced
  std::int64_t failed_piece = -1;    // the piece whose write failed, if one did
};

// Writes every piece into the open file `fd` (O_WRONLY) with `threads` threads (the calling
// thread among them), then fdatasyncs the file. First the pieces with a `copy` place are
// copied there (one thread, each piece's CRC-32 taken from the copy as it is made), so that
// `read_done` (no caller's memory is read after it) is called as soon as no `live` piece
// without a copy is left: before the writes when every live piece has one, else after them.
// `direct_fd` (-1: none) is the same file opened with O_DIRECT: the whole pages of each
// piece go through it around the page cache (on this machine 3 GB/s against 0.5-2 GB/s
// buffered, and no cached pages to reclaim or write back later), from the piece's memory
// where that is page-aligned with its file offset (a `copy`), else from a page-aligned
// staging copy; a file system that refuses (EINVAL) gets buffered writes. `stop`: when set,
// the remaining pieces are skipped (an abandoned write: the result's error says so). The
// crash tests' faults: `die_after` >= 0 makes the process kill itself (SIGKILL) once that
// many pieces are written ("mid-dataset"); `fail_after` >= 0 makes the next piece's write
// fail as the disk would (EIO; "write-error").
Result write_pieces(int fd, int direct_fd, const std::vector<Piece>& pieces, int threads, const std::atomic<bool>& stop,
                    const std::function<void()>& read_done, std::int64_t die_after = -1,
                    std::int64_t fail_after = -1);

}  // namespace kd::ckpt::bytes
