#include "trainer/cli/sgemm_peak.h"

#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "kernels/kernels.h"
#include "trainer/util/aligned_buffer.h"

namespace kd::cli {

double measure_sgemm_peak(double seconds, bool verbose) {
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
    while (omp_get_wtime() - start < seconds || t.size() < 3) {
      const double t0 = omp_get_wtime();
      kern::gemm<float>(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
      t.push_back(omp_get_wtime() - t0);
    }
    std::sort(t.begin(), t.end());
    const double fl = 2.0 * n * double(n) * n;
    const double best = fl / t.front() / 1e9;
    if (verbose) {
      fmt::print("sgemm N={} reps={} best={:.1f} GFLOP/s median={:.1f} GFLOP/s\n", n, t.size(), best,
                 fl / t[t.size() / 2] / 1e9);
    }
    peak = std::max(peak, best);
  }
  return peak;
}

double measure_sgemm_peak_in_child(double seconds) {
  int fd[2];
  if (pipe(fd) != 0) return 0;
  const pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    close(fd[0]);
    const double p = measure_sgemm_peak(seconds, false);
    const ssize_t w = write(fd[1], &p, sizeof p);
    _exit(w == sizeof p ? 0 : 1);
  }
  close(fd[1]);
  double p = 0;
  const ssize_t r = read(fd[0], &p, sizeof p);
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return r == sizeof p && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? p : 0;
}

}  // namespace kd::cli
