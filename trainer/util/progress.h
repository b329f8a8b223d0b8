// The progress display: on a terminal one line rewritten in place (step/total, loss and
// its parts, lr, tokens/s, ETA); elsewhere (SLURM logs, pipes) plain lines every N steps.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace kd {

class Progress {
 public:
  // out = nullptr: silent (data-parallel ranks other than 0).
  Progress(std::int64_t total_steps, int every, std::FILE* out = stdout);
  // Called after each step; prints when due.
  void step(std::int64_t step, const std::string& fields, double tokens_per_s, double elapsed_s);
  // A line that must stay (eval results, warnings): clears the in-place line first.
  void line(const std::string& text);
  void finish();

 private:
  std::int64_t total_;
  int every_;
  std::FILE* out_;
  bool tty_;
  bool dirty_ = false;
};

std::string format_duration(double seconds);

}  // namespace kd
