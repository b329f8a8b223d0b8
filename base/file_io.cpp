#include "base/file_io.h"

#include <fcntl.h>
#include <unistd.h>

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

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    bytes.remove_prefix(std::size_t(n));
  }
  return true;
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
