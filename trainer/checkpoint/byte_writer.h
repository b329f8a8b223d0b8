// Internal to trainer/checkpoint: writing a checkpoint's tensor bytes into the datasets HDF5
// has laid out (contiguous, allocated when created, so each has a fixed file offset), with
// plain pwrite from several threads, each piece's CRC-32 taken from the same memory as it is
// written. No HDF5 here: HDF5 is not thread-safe, and this runs on a background thread while
// the training goes on (trainer/checkpoint/checkpoint_writer.cpp).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "trainer/util/crc32.h"

namespace kd::ckpt::bytes {

// `bytes` bytes at `src` that go to `file_offset`: one CRC block's part at most (the
// manifest's slice `slice` of entry `entry`), so its CRC-32 is one manifest slice.
struct Piece {
  std::size_t entry = 0, slice = 0;
  std::uint64_t file_offset = 0, bytes = 0;
  const char* src = nullptr;
  bool live = false;  // src is the caller's memory, read in place until read_done (TensorView::live)
  // Where the writer first copies the piece, or a Handover's take_back() does (nullptr: it
  // is written from src): a place in a snapshot at an address congruent to file_offset
  // modulo the page (snapshot_places), so its whole pages go to O_DIRECT without a staging
  // copy.
  char* copy = nullptr;
  // The CRC-32s its caller took of the memory a live piece lies in (CheckpointContents::
  // known_crc32): its CRC-32 then comes from them and its ends, not from reading all of src.
  const crc32::GrainSums* known = nullptr;
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

// The live pieces of a write in place that the caller takes back before the writer has
// reached them (BackgroundCheckpoint's copy at the update): the writer claims each live piece
// before it reads it in place; take_back() claims the rest, copies them to their `copy`
// places (each CRC-32 taken from the cache on the way), waits for the pieces being read in
// place, and returns: from then on the writer reads the copies only. The disk's head start
// is not copied at all, so the copy costs what the write had not yet done.
class Handover {
 public:
  explicit Handover(std::size_t pieces);
  // `pieces` are the write's (every live one with a `copy` place); the caller's OpenMP
  // threads copy. Returns the bytes copied (0 when the writer was done with every piece).
  // Called again, it finds nothing left.
  std::uint64_t take_back(const std::vector<Piece>& pieces);

  // The writer's side (write_pieces): claim() = true when piece i is the writer's to read in
  // place, then released() once it no longer reads it; else copied() waits for its copy
  // and gives the copy's CRC-32.
  bool claim(std::size_t i);
  void released(std::size_t i);
  std::uint32_t copied(std::size_t i);

 private:
  enum : std::uint8_t { kPending, kReading, kReleased, kCopying, kCopied };
  void notify();
  std::unique_ptr<std::atomic<std::uint8_t>[]> state_;
  std::vector<std::uint32_t> crc_;
  std::atomic<bool> taking_{false};
  std::mutex m_;
  std::condition_variable cv_;
};

// The memory alignment O_DIRECT needs on the open file `fd` (statx's STATX_DIOALIGN, Linux
// 6.1 and later: 512 on this machine's ext4), a page where the system does not say or fd < 0.
std::uint64_t direct_memory_alignment(int fd);

struct WriteOptions {
  int threads = 1;      // writing threads, the calling thread among them
  int direct_fd = -1;   // the file opened with O_DIRECT; -1: none
  // the memory alignment O_DIRECT needs on this file (statx's STATX_DIOALIGN; a page when
  // the file system does not say): a piece's whole file pages go from its memory in place
  // when that lies at this alignment, else from a page-aligned staging copy
  std::uint64_t direct_mem_align = 4096;
  // called as soon as no `live` piece's memory is read again (see write_pieces)
  std::function<void()> read_done;
  // live pieces the caller may take back while they are written in place; their `copy`
  // places are then not filled by the writer (nullptr: none)
  Handover* handover = nullptr;
  // the crash tests' faults: >= 0 makes the process kill itself (SIGKILL) once that many
  // pieces are written ("mid-dataset"), or the next piece's write fail as the disk would
  // (EIO; "write-error")
  std::int64_t die_after = -1, fail_after = -1;
};

// Writes every piece into the open file `fd` (O_WRONLY), then fdatasyncs the file. Without
// a handover, the pieces with a `copy` place are first copied there (one thread, each
// piece's CRC-32 taken from the copy as it is made), so that `read_done` is called as soon as
// no `live` piece without a copy is left: before the writes when every live piece has one,
// else after them. With `direct_fd`, the whole pages of each piece of 1 MiB or more go through
// it around the page cache (on this machine 3 GB/s against 0.5-2 GB/s buffered, and no cached
// pages to reclaim or write back later), the ends and smaller pieces through the page cache
// (a device round trip each would cost more than their copy); a file system that refuses
// (EINVAL) gets buffered writes. `stop`: when set, the remaining pieces are skipped (an
// abandoned write: the result's error says so).
Result write_pieces(int fd, const std::vector<Piece>& pieces, const WriteOptions& options,
                    const std::atomic<bool>& stop);

}  // namespace kd::ckpt::bytes
