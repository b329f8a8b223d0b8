#include "base/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "base/errors.h"

namespace kd {

namespace {
[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw RuntimeFailure(fmt::format("cannot {} {}: {}", what, path, std::strerror(errno)));
}
}  // namespace

namespace {

// Calls io(p, count, at) until `n` bytes are moved, retrying short transfers and EINTR (at most
// 1 GiB a call); false on an error or a transfer of nothing (errno EIO then, unless set).
template <class Io>
bool transfer_all(char* p, std::uint64_t n, std::uint64_t at, Io io) {
  while (n > 0) {
    const ssize_t r = io(p, std::size_t(std::min<std::uint64_t>(n, std::uint64_t{1} << 30)), at);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EIO;
      return false;
    }
    p += r;
    n -= std::uint64_t(r);
    at += std::uint64_t(r);
  }
  return true;
}

}  // namespace

bool write_all(int fd, std::string_view bytes) {
  return transfer_all(const_cast<char*>(bytes.data()), bytes.size(), 0,
                      [fd](char* p, std::size_t n, std::uint64_t) { return ::write(fd, p, n); });
}

bool write_all_at(int fd, std::string_view bytes, std::uint64_t at) {
  return transfer_all(const_cast<char*>(bytes.data()), bytes.size(), at,
                      [fd](char* p, std::size_t n, std::uint64_t o) { return ::pwrite(fd, p, n, off_t(o)); });
}

bool read_all_at(int fd, char* out, std::uint64_t n, std::uint64_t at) {
  return transfer_all(out, n, at, [fd](char* p, std::size_t k, std::uint64_t o) { return ::pread(fd, p, k, off_t(o)); });
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::open_truncated(const std::string& path) {
  if (fd_ >= 0) ::close(fd_);
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("open", path);
}

void AppendFile::write(std::string_view bytes) {
  if (!write_all(fd_, bytes)) fail("write", path_);
}

void AppendFile::sync() {
  if (::fsync(fd_) != 0 && errno != EINVAL) fail("sync", path_);  // EINVAL: a device (/dev/null) cannot sync
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("create", tmp);
  bool ok = write_all(fd, bytes) && ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) {  // NFS reports some write errors only here
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    errno = err;
    fail("write", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    errno = e;
    fail(fmt::format("rename {} over", tmp), path);
  }
  sync_directory(std::filesystem::path(path).parent_path().string());
}

}  // namespace kd
