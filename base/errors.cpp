#include "base/errors.h"

#include <cstdio>
#include <cstdlib>

namespace kd {

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "kdtrain: internal error: %s failed at %s:%d: %s\n", expr, file, line,
               msg.c_str());
  std::abort();
}

}  // namespace kd
