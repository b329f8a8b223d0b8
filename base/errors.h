// Two checks and one fatal path (see STYLE.md):
//  * KD_CHECK_INPUT: bad user input (config, data, checkpoint, command line) -> InputError,
//    exit code 2, with a message naming the file, key or tensor and a hint.
//  * KD_ASSERT: an always-on invariant of kdtrain itself -> aborts with file:line.
//  * RuntimeFailure: the run itself failed (NaN policy, I/O) -> exit code 3.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace kd {

inline constexpr int kExitBadInput = 2;
inline constexpr int kExitRuntime = 3;

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RuntimeFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace kd

#define KD_CHECK_INPUT(cond, ...)                                      \
  do {                                                                 \
    if (!(cond)) throw ::kd::InputError(::fmt::format(__VA_ARGS__)); \
  } while (0)

#define KD_ASSERT(cond, ...)                                                          \
  do {                                                                                \
    if (!(cond)) ::kd::assert_fail(#cond, __FILE__, __LINE__, ::fmt::format(__VA_ARGS__)); \
  } while (0)
