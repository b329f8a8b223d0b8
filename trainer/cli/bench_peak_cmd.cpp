// kdtrain bench-peak: the MFU denominator, measured with the BLAS build kdtrain links.
#include <fmt/format.h>

#include "trainer/cli/commands.h"
#include "trainer/cli/sgemm_peak.h"
#include "trainer/train/trainer.h"

namespace kd::cli {

int run_bench_peak(const PeakOptions& o) {
  const int threads = set_threads(o.threads, "--threads");
  fmt::print("blas: {}\n", blas_description());
  const double peak = measure_sgemm_peak(o.seconds, true);
  fmt::print("PEAK gflops={:.1f} threads={}\n", peak, threads);
  return 0;
}

}  // namespace kd::cli
