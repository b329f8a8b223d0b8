// kdtrain bench-peak: the MFU denominator, measured with the BLAS build kdtrain links:
// square cblas_sgemm, N in {1024, 2048, 4096}, best of >= `seconds` per size
// (as ../shared/bench/peak_sgemm.c measures it).
#include <omp.h>

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "kernels/kernels.h"
#include "trainer/cli/commands.h"
#include "trainer/train/trainer.h"
#include "trainer/util/aligned_buffer.h"

namespace kd::cli {

int run_bench_peak(const PeakOptions& o) {
  const int threads = set_threads(o.threads);
  fmt::print("blas: {}\n", blas_description());
  double peak = 0;
  for (int n : {1024, 2048, 4096}) {
    const std::size_t nn = std::size_t(n) * n;
    AlignedBuffer<float> a(nn), b(nn), c(nn);
    for (std::size_t i = 0; i < nn; ++i) {
      a[i] = float(int(i * 7 % 13) - 6) / 13.0f;
      b[i] = float(int(i * 5 % 11) - 5) / 11.0f;
    }
    kern::gemm<float>(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    std::vector<double> t;
    const double start = omp_get_wtime();
    while (omp_get_wtime() - start < o.seconds || t.size() < 3) {
      const double t0 = omp_get_wtime();
      kern::gemm<float>(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
      t.push_back(omp_get_wtime() - t0);
    }
    std::sort(t.begin(), t.end());
    const double fl = 2.0 * n * double(n) * n;
    const double best = fl / t.front() / 1e9;
    fmt::print("sgemm N={} reps={} best={:.1f} GFLOP/s median={:.1f} GFLOP/s\n", n, t.size(), best,
               fl / t[t.size() / 2] / 1e9);
    peak = std::max(peak, best);
  }
  fmt::print("PEAK gflops={:.1f} threads={}\n", peak, threads);
  return 0;
}

}  // namespace kd::cli
