// Writes whose failure is never silent (a full disk, a file-size limit, a dead file server):
// each call returns only when every byte reached the kernel, and `sync` when it reached the
// disk; any failure is a RuntimeFailure (exit 3) naming the file and the system's reason.
// An ofstream that is not flushed and checked loses a failed write at its close.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kd {

// A file written from the start and appended to (metrics.jsonl).
class AppendFile {
 public:
  AppendFile() = default;
  ~AppendFile();  // closes (a close error is lost here: call sync() first when it matters)
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  void open_truncated(const std::string& path);
  void write(std::string_view bytes);  // all of them, or RuntimeFailure
  void sync();                         // fsync
  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// path written whole or not at all: `path`.tmp written, fsync'ed and renamed over path, the
// directory fsync'ed. A failure removes the .tmp and leaves path as it was.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Writes all bytes to fd (retrying short writes and EINTR); false with errno set on failure.
bool write_all(int fd, std::string_view bytes);
// The same at file offset `at` (pwrite; the file position is not used, so threads may share fd).
bool write_all_at(int fd, std::string_view bytes, std::uint64_t at);
// Reads exactly `n` bytes at file offset `at` into `out` (pread, retrying short reads and
// EINTR); false on an error (errno set) or when the file ends first.
bool read_all_at(int fd, char* out, std::uint64_t n, std::uint64_t at);
// fsync of a directory, so a rename in it survives a crash; best effort (some file systems refuse it).
void sync_directory(const std::string& dir);

}  // namespace kd
