#include "trainer/util/progress.h"

#include <unistd.h>

#include <fmt/format.h>

#include "trainer/dist/comm.h"

namespace kd {

Progress::Progress(std::int64_t total, int every, std::FILE* out)
    // mpirun gives ranks a pseudo-terminal whatever the job's output is (a file, a SLURM
    // log): under a launcher, plain lines
    : total_(total),
      every_(every),
      out_(out),
      tty_(out != nullptr && isatty(fileno(out)) != 0 && !dist::launched_by_mpi()) {}

std::string format_duration(double s) {
  const long t = long(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

void Progress::step(std::int64_t step, const std::string& fields, double tokens_per_s, double elapsed_s) {
  const bool last = step == total_;
  if (out_ == nullptr) return;
  if (!tty_ && step % every_ != 0 && !last) return;
  const double eta = step > 0 ? elapsed_s / double(step) * double(total_ - step) : 0.0;
  const std::string text = fmt::format("step {:>{}}/{} | {} | {:.0f} tok/s | ETA {}", step,
                                       std::to_string(total_).size(), total_, fields, tokens_per_s,
                                       format_duration(eta));
  if (tty_) {
    fmt::print(out_, "\r\033[K{}", text);
    dirty_ = true;
    if (last) finish();
  } else {
    fmt::print(out_, "{}\n", text);
  }
  std::fflush(out_);
}

void Progress::line(const std::string& text) {
  if (out_ == nullptr) return;
  if (tty_ && dirty_) fmt::print(out_, "\r\033[K");
  fmt::print(out_, "{}\n", text);
  dirty_ = false;
  std::fflush(out_);
}

void Progress::finish() {
  if (out_ == nullptr) return;
  if (tty_ && dirty_) fmt::print(out_, "\n");
  dirty_ = false;
  std::fflush(out_);
}

}  // namespace kd
