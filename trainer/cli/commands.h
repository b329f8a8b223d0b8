// kdtrain's subcommands. Each returns the process exit code; errors are thrown as
// InputError (exit 2) or RuntimeFailure (exit 3) and reported by main().
#pragma once

#include <string>
#include <vector>

namespace kd::cli {

struct BenchOptions {
  std::string config = "configs/bench-cpu.yaml";
  std::vector<std::string> overrides;
  bool student_only = false;
  int threads = 0;
  double peak_gflops = 0;
};
int run_bench(const BenchOptions& o);

struct PeakOptions {
  double seconds = 3.0;
  int threads = 0;
};
int run_bench_peak(const PeakOptions& o);

struct TrainOptions {
  std::string config;
  std::vector<std::string> overrides;
  int eval_batches = 4;
  std::string loss_log;  // every step's losses at full precision (%.17g), one line each
};
int run_train(const TrainOptions& o);

}  // namespace kd::cli
