#include "trainer/setup/run_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "base/errors.h"
#include "base/file_io.h"

namespace kd {

namespace {

// "host n1, pid 123, SLURM job 456, started 2025-01-02 03:04:05 UTC"
std::string holder_record() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const char* job = std::getenv("SLURM_JOB_ID");
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  return fmt::format("host {}, pid {}{}, started {:%Y-%m-%d %H:%M:%S} UTC", host, getpid(),
                     job ? fmt::format(", SLURM job {}", job) : "", now);
}

std::string read_record(int fd) {
  char buf[1024];
  const ssize_t n = pread(fd, buf, sizeof buf, 0);
  std::string s = n > 0 ? std::string(buf, std::size_t(n)) : std::string();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

[[noreturn]] void refuse(const std::string& dir, const std::string& path, const std::string& holder) {
  throw InputError(fmt::format("run directory {} is in use by another kdtrain run ({}); wait for it to end or stop "
                               "it (lock file {})",
                               dir, holder.empty() ? "it has not written its record yet" : holder, path));
}

}  // namespace

void RunLock::check_free(const std::string& dir) {
  const std::string path = dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // no lock file: no run has held the directory (or it cannot be read: acquire() will say)
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  const bool held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  const std::string holder = held ? read_record(fd) : std::string();
  ::close(fd);
  if (held) refuse(dir, path, holder);
}

std::unique_ptr<RunLock> RunLock::acquire(const std::string& dir, std::string& note) {
  const std::string path = dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw RuntimeFailure(fmt::format("cannot open the run lock {}: {}", path, std::strerror(errno)));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file; l_pid must be 0 for OFD locks
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    const int err = errno;
    if (err == EAGAIN || err == EACCES) {
      const std::string holder = read_record(fd);
      ::close(fd);
      refuse(dir, path, holder);
    }
    // ENOLCK, EINVAL, EOPNOTSUPP: the file system keeps no locks (NFS without lockd, ...)
    note = fmt::format("warning: cannot lock {} ({}): nothing stops a second run on this directory (docs/slurm.md)",
                       path, std::strerror(err));
  }
  const std::string previous = read_record(fd);
  if (!previous.empty() && note.empty()) {
    note = fmt::format("run directory {}: previous holder ({}) is gone: taking over", dir, previous);
  }
  const std::string record = holder_record() + "\n";
  if (ftruncate(fd, 0) != 0 || !write_all(fd, record) || fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw RuntimeFailure(fmt::format("cannot write the run lock {}: {}", path, std::strerror(err)));
  }
  return std::unique_ptr<RunLock>(new RunLock(fd, path));
}

RunLock::~RunLock() {
  if (ftruncate(fd_, 0) == 0) fsync(fd_);
  ::close(fd_);
}

}  // namespace kd
