#include "base/files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "base/errors.h"

namespace kd {

std::string_view file_kind(unsigned mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISREG(mode)) return "a regular file";
  return "not a file";
}

void require_regular_file(const std::string& path, std::string_view what) {
  struct stat st {};
  KD_CHECK_INPUT(::stat(path.c_str(), &st) == 0, "{}: cannot open {} ({})", path, what, std::strerror(errno));
  KD_CHECK_INPUT(S_ISREG(st.st_mode), "{}: not a regular file ({}); {} must be a file", path, file_kind(st.st_mode),
                 what);
}

}  // namespace kd
