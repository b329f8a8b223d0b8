#include "trainer/checkpoint/checked_read.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <mutex>

#include "base/file_io.h"
#include "trainer/checkpoint/h5_util.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/util/crc32.h"

namespace kd::ckpt::checked {

namespace {

constexpr const char* kReadFailed = "reading failed (a read error, the file cut short, or a Fletcher-32 checksum "
                                    "mismatch in a file of an older kdtrain)";

constexpr std::uint64_t kLookAhead = std::uint64_t{128} << 20;

// Asks the disk for [at, at + bytes) and what follows it in the file (the next tensors, which
// a resume or --verify reads next): from a file not in the page cache, pread alone would
// wait for each read-ahead window of a few hundred KiB in turn. Each byte is asked for once
// per opening of the file: the range already asked of the file read last is remembered (by
// HDF5's id of the open file, new at each opening, so a file read again after its pages
// were dropped asks again), as a WILLNEED costs ~0.3 ms of page-cache walking per 128 MiB
// even when every page is there (0.07 s of a 0.3 s --verify of 225 MB when every tensor
// asked for its own look-ahead).
void read_ahead(hid_t file, int fd, std::uint64_t at, std::uint64_t bytes) {
  static std::mutex m;
  static struct {
    hid_t file = H5I_INVALID_HID;
    std::uint64_t lo = 0, hi = 0;  // asked for
  } last;
  std::lock_guard lock(m);
  const bool same = file == last.file && at >= last.lo && at <= last.hi;
  if (same && at + bytes + kLookAhead / 2 <= last.hi) return;
  const std::uint64_t from = same ? last.hi : at, to = at + bytes + kLookAhead;
  (void)::posix_fadvise(fd, off_t(from), off_t(to - from), POSIX_FADV_WILLNEED);
  last = {file, same ? last.lo : at, to};
}

// Where a contiguous dataset stored as the memory type (kdtrain's own files since format 1's
// background writer) lies: HDF5's descriptor of the file and the file offset of element 0.
// nullopt when the dataset is not one of those (chunked, filtered, another byte order, or
// shorter than `elements`: HDF5 reads it).
struct Contiguous {
  hid_t file;  // HDF5's id of the open file (read_ahead's key); owned by `file_ref`
  h5::Handle file_ref;
  int fd;
  std::uint64_t base;
};
std::optional<Contiguous> contiguous_of(hid_t ds, DType t, std::uint64_t elements) {
  h5::Handle dcpl(H5Dget_create_plist(ds));
  h5::Handle type(H5Dget_type(ds));
  if (!dcpl.valid() || !type.valid() || H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS ||
      H5Tequal(type.get(), h5::memory_type(t)) <= 0) {
    return std::nullopt;
  }
  const haddr_t at = H5Dget_offset(ds);
  h5::Handle file(H5Iget_file_id(ds));
  h5::Handle fcpl(file.valid() ? H5Fget_create_plist(file.get()) : H5I_INVALID_HID);
  hsize_t userblock = 0;
  void* handle = nullptr;
  h5::Handle fapl(file.valid() ? H5Fget_access_plist(file.get()) : H5I_INVALID_HID);
  if (at == HADDR_UNDEF || !fcpl.valid() || !fapl.valid() || H5Pget_driver(fapl.get()) != H5FD_SEC2 ||
      H5Pget_userblock(fcpl.get(), &userblock) < 0 || H5Fget_vfd_handle(file.get(), H5P_DEFAULT, &handle) < 0 ||
      handle == nullptr || H5Dget_storage_size(ds) < elements * dtype_size(t)) {
    return std::nullopt;
  }
  const hid_t id = file.get();
  return Contiguous{id, std::move(file), *static_cast<int*>(handle), std::uint64_t(at) + userblock};
}

// Elements [begin, end) of a contiguous dataset (contiguous_of), read with pread straight
// into `out`, in pieces across the OpenMP threads: what HDF5 would do, without its
// single-threaded copy. nullopt when the dataset is not one of those. The file's bytes are
// checked by the caller against the manifest.
std::optional<bool> read_contiguous(hid_t ds, DType t, std::uint64_t begin, std::uint64_t end, void* out) {
  const std::optional<Contiguous> c = contiguous_of(ds, t, end);
  if (!c) return std::nullopt;
  const std::uint64_t es = dtype_size(t);
  const std::uint64_t base = c->base + begin * es, bytes = (end - begin) * es;
  read_ahead(c->file, c->fd, base, bytes);
  constexpr std::uint64_t kPiece = std::uint64_t{2} << 20;
  const std::int64_t n = std::int64_t((bytes + kPiece - 1) / kPiece);
  bool good = true;
#pragma omp parallel for schedule(dynamic, 1) reduction(&& : good) if (n > 1)
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint64_t lo = std::uint64_t(i) * kPiece, len = std::min(kPiece, bytes - lo);
    good = read_all_at(c->fd, static_cast<char*>(out) + lo, len, base + lo) && good;
  }
  return good;
}

// This thread's buffer of at least `bytes`, kept for the next call: a whole-file check reads
// each run into one, and a fresh vector per tensor zeroed its few MiB every time.
char* scratch(std::uint64_t bytes) {
  thread_local std::unique_ptr<char[]> buf;
  thread_local std::uint64_t size = 0;
  if (bytes > size) {
    buf.reset(new char[bytes]);
    size = bytes;
  }
  return buf.get();
}

// Blocks [k0, k1) of `e`, a contiguous dataset (contiguous_of), read and checked in runs of
// about 2 MiB across the OpenMP threads, each run's CRCs taken right after its read, from the
// cache (a read of the whole range, then a pass of CRCs over it, ran them one after the
// other from memory, and the disk idled while the CRCs ran). Into `out` (block k at
// out + bounds[k] - bounds[k0]), or when `out` is null through a buffer per thread (a
// whole-file check). nullopt when the dataset is not contiguous; else "" or what is wrong.
std::optional<std::string> read_checked_blocks(hid_t ds, const manifest::Entry& e, DType t, std::size_t k0,
                                               std::size_t k1, char* out) {
  if (k0 >= k1) return std::string();
  const std::vector<std::uint64_t>& bounds = e.bounds;
  const std::optional<Contiguous> c = contiguous_of(ds, t, bounds[k1] / dtype_size(t));
  if (!c) return std::nullopt;
  constexpr std::uint64_t kRun = std::uint64_t{2} << 20;
  std::vector<std::size_t> runs{k0};  // the runs' first blocks, then k1
  for (std::size_t k = k0 + 1; k < k1; ++k) {
    if (bounds[k] - bounds[runs.back()] >= kRun) runs.push_back(k);
  }
  runs.push_back(k1);
  read_ahead(c->file, c->fd, c->base + bounds[k0], bounds[k1] - bounds[k0]);
  const std::int64_t n = std::int64_t(runs.size() - 1);
  // the first bad block (k1: none) and whether it failed to read
  std::size_t bad = k1;
  bool unreadable = false;
  std::uint32_t bad_crc = 0;
  std::mutex m;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (std::int64_t r = 0; r < n; ++r) {
    const std::size_t a = runs[std::size_t(r)], b = runs[std::size_t(r) + 1];
    char* dst = out ? out + (bounds[a] - bounds[k0]) : scratch(bounds[b] - bounds[a]);
    if (!read_all_at(c->fd, dst, bounds[b] - bounds[a], c->base + bounds[a])) {
      std::lock_guard lock(m);
      if (a < bad || (a == bad && !unreadable)) bad = a, unreadable = true;
      continue;
    }
    for (std::size_t k = a; k < b; ++k) {
      const std::uint32_t crc = crc32::of(dst + (bounds[k] - bounds[a]), bounds[k + 1] - bounds[k]);
      if (crc == e.block_crc32[k]) continue;
      std::lock_guard lock(m);
      if (k < bad) bad = k, unreadable = false, bad_crc = crc;
      break;
    }
  }
  if (bad == k1) return std::string();
  if (unreadable) return std::string(kReadFailed);
  return mismatch(bounds[bad], bounds[bad + 1], bad_crc, e.block_crc32[bad]);
}

// The blocks [first, last) of `bounds` that hold bytes of [b0, b1) (b0 < b1).
std::pair<std::size_t, std::size_t> touched(const std::vector<std::uint64_t>& bounds, std::uint64_t b0,
                                            std::uint64_t b1) {
  const std::size_t first = std::size_t(std::upper_bound(bounds.begin(), bounds.end(), b0) - bounds.begin()) - 1;
  const std::size_t last = std::size_t(std::lower_bound(bounds.begin(), bounds.end(), b1) - bounds.begin());
  return {first, last};
}

// Reads block k whole into `buf` and checks it; "" or what is wrong.
std::string read_block(hid_t ds, const manifest::Entry& e, const std::vector<std::uint64_t>& dims, DType t,
                       std::size_t k, std::vector<char>& buf) {
  const std::size_t es = dtype_size(t);
  const std::uint64_t lo = e.bounds[k], hi = e.bounds[k + 1];
  buf.resize(hi - lo);
  if (!read_flat(ds, dims, t, lo / es, hi / es, buf.data())) return kReadFailed;
  const std::uint32_t crc = crc32::of(buf.data(), buf.size());
  return crc == e.block_crc32[k] ? std::string() : mismatch(lo, hi, crc, e.block_crc32[k]);
}

}  // namespace

std::string mismatch(std::uint64_t b0, std::uint64_t b1, std::uint32_t got, std::uint32_t want) {
  return fmt::format("bytes [{}, {}) have CRC-32 {:08x}, the manifest says {:08x}: changed after the file was "
                     "written, or damaged",
                     b0, b1, got, want);
}

bool read_flat(hid_t ds, const std::vector<std::uint64_t>& dims, DType t, std::uint64_t begin, std::uint64_t end,
               void* out) {
  if (begin == end) return true;
  if (const std::optional<bool> direct = read_contiguous(ds, t, begin, end, out)) return *direct;
  if (dims.empty()) return H5Dread(ds, h5::memory_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;  // 0-D: [0, 1)
  // One read per box, its memory space of the box's own shape: HDF5 then copies chunk rows
  // directly (a flat memory space against an N-D selection takes its element-wise path, ~5x slower).
  auto* dst = static_cast<char*>(out);
  for (const layout::Block& b : layout::flat_range_blocks(dims, begin, end)) {
    const std::vector<hsize_t> start(b.start.begin(), b.start.end()), count(b.count.begin(), b.count.end());
    h5::Handle space(H5Dget_space(ds));
    h5::Handle mem(H5Screate_simple(int(count.size()), count.data(), nullptr));
    if (!space.valid() || !mem.valid() ||
        H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
        H5Dread(ds, h5::memory_type(t), mem.get(), space.get(), H5P_DEFAULT, dst) < 0) {
      return false;
    }
    std::uint64_t n = 1;
    for (const hsize_t c : count) n *= c;
    dst += n * dtype_size(t);
  }
  return true;
}

std::string read_range(hid_t ds, const manifest::Entry& e, const std::vector<std::uint64_t>& dims, DType t,
                       std::uint64_t begin, std::uint64_t end, void* out) {
  if (begin == end) return {};
  const std::uint64_t es = dtype_size(t), b0 = begin * es, b1 = end * es;
  const std::vector<std::uint64_t>& bounds = e.bounds;
  auto [first, last] = touched(bounds, b0, b1);
  // the blocks wholly inside the range: [inner0, inner1)
  const std::size_t inner0 = bounds[first] == b0 ? first : first + 1;
  const std::size_t inner1 = bounds[last] == b1 ? last : last - 1;
  char* dst = static_cast<char*>(out);
  if (const std::optional<std::string> fused = read_checked_blocks(ds, e, t, inner0, inner1,
                                                                   dst + (bounds[inner0] - b0))) {
    if (!fused->empty()) return *fused;
  } else if (inner0 < inner1) {
    const std::uint64_t lo = bounds[inner0], hi = bounds[inner1];
    if (!read_flat(ds, dims, t, lo / es, hi / es, dst + (lo - b0))) return kReadFailed;
    // The blocks' checksums, in parallel: CRC-32 runs at a few GB/s per core, near the read's speed.
    const std::int64_t n = std::int64_t(inner1 - inner0);
    std::vector<std::uint32_t> crc(std::size_t(n), 0);
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
    for (std::int64_t i = 0; i < n; ++i) {
      const std::size_t k = inner0 + std::size_t(i);
      crc[std::size_t(i)] = crc32::of(dst + (bounds[k] - b0), bounds[k + 1] - bounds[k]);
    }
    for (std::size_t k = inner0; k < inner1; ++k) {
      if (crc[k - inner0] != e.block_crc32[k]) return mismatch(bounds[k], bounds[k + 1], crc[k - inner0], e.block_crc32[k]);
    }
  }
  std::vector<std::size_t> ends;  // the partial blocks at the range's ends
  if (first < inner0) ends.push_back(first);
  if (last - 1 >= inner1 && (ends.empty() || ends.back() != last - 1)) ends.push_back(last - 1);
  std::vector<char> buf;
  for (const std::size_t k : ends) {
    const std::string problem = read_block(ds, e, dims, t, k, buf);
    if (!problem.empty()) return problem;
    const std::uint64_t lo = std::max(b0, bounds[k]), hi = std::min(b1, bounds[k + 1]);
    std::memcpy(dst + (lo - b0), buf.data() + (lo - bounds[k]), hi - lo);
  }
  return {};
}

std::string check_all(hid_t ds, const manifest::Entry& e, const std::vector<std::uint64_t>& dims, DType t) {
  const std::size_t blocks = e.bounds.empty() ? 0 : e.bounds.size() - 1;
  if (const std::optional<std::string> fused = read_checked_blocks(ds, e, t, 0, blocks, nullptr)) return *fused;
  return visit_blocks(ds, e, dims, t, 0, e.bytes / dtype_size(t), [](std::uint64_t, const char*, std::uint64_t) {});
}

std::string visit_blocks(hid_t ds, const manifest::Entry& e, const std::vector<std::uint64_t>& dims, DType t,
                         std::uint64_t first, std::uint64_t last, const BlockVisitor& visit) {
  if (first == last) return {};
  const std::uint64_t es = dtype_size(t);
  auto [k0, k1] = touched(e.bounds, first * es, last * es);
  std::vector<char> buf;
  for (std::size_t k = k0; k < k1; ++k) {
    const std::string problem = read_block(ds, e, dims, t, k, buf);
    if (!problem.empty()) return problem;
    visit(e.bounds[k] / es, buf.data(), (e.bounds[k + 1] - e.bounds[k]) / es);
  }
  return {};
}

}  // namespace kd::ckpt::checked
