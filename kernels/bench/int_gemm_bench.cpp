// Hand-run throughput of the quantized linear kernels against OpenBLAS sgemm on the eval's
// shapes (M = 2048 rows = 8 × 256 tokens). Not a test: numbers depend on the machine.
//   OMP_NUM_THREADS=2 build/kernels/int_gemm_bench [reps]
// Columns: GFLOP/s (2·M·N·K / time, best of reps) and the ratio to sgemm. "int8 pc": W8A8,
// per-token activations × per-channel weights; "int8+q" adds the per-token activation
// quantization the eval pays before each int8 GEMM; g128: groups of 128 along K (= per
// channel at K = 128); w4a8 runs on the int8_quads layout, w4a16 on sgemm tiles.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/int_gemm.h"
#include "kernels/kernels.h"

namespace {

using Clock = std::chrono::steady_clock;

// Best time of each of the variants over reps rounds; the variants take turns within a
// round, so a burst of load from other processes hits them alike.
std::vector<double> best_seconds(int reps, const std::vector<std::function<void()>>& variants) {
  for (const auto& f : variants) f();  // warm-up: page faults, BLAS buffers
  std::vector<double> best(variants.size(), 1e30);
  for (int i = 0; i < reps; ++i)
    for (std::size_t v = 0; v < variants.size(); ++v) {
      const auto t0 = Clock::now();
      variants[v]();
      best[v] = std::min(best[v], std::chrono::duration<double>(Clock::now() - t0).count());
    }
  return best;
}

struct Weights {  // a random quantized weight and its storage
  std::vector<std::int8_t> codes;
  std::vector<std::uint8_t> packed;
  std::vector<float> scale;
  kd::kern::QuantWeight view;
};

Weights make_weight(std::mt19937& rng, int n, int k, int bits, int group) {
  Weights w;
  std::uniform_int_distribution<int> code(bits == 8 ? -127 : -8, bits == 8 ? 127 : 7);
  w.codes.resize(std::size_t(n) * k);
  for (auto& c : w.codes) c = std::int8_t(code(rng));
  w.scale.assign(std::size_t(n) * (k / group), 0.01f);
  if (bits == 4) {
    w.packed.resize(w.codes.size() / 2);
    kd::kern::pack_int4(w.packed.data(), w.codes.data(), w.codes.size());
  }
  w.view = {n, k, bits, group, bits == 8 ? w.codes.data() : nullptr, bits == 4 ? w.packed.data() : nullptr,
            w.scale.data(), nullptr};
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 10;
  const int m = 2048;
  struct Shape {
    const char* what;
    int n, k;
    bool student;  // the realistic student (d = 256, d_ff = 768, vocab 4096): summed below
  };
  const Shape shapes[] = {
      {"d128 qkv", 384, 128, false},    {"d128 o", 128, 128, false},   {"d128 gate-up", 1024, 128, false},
      {"d128 down", 128, 512, false},   {"d256 qkv", 768, 256, true},  {"d256 o", 256, 256, true},
      {"d256 gate-up", 1536, 256, true}, {"d256 down", 256, 768, true}, {"d256 lm-head", 4096, 256, true}};
  std::printf("M = %d, %d threads, best of %d; GFLOP/s (ratio to sgemm)\n", m, omp_get_max_threads(), reps);
  std::printf("%-13s %5s %4s | %7s | %14s %14s %14s %14s | %14s\n", "shape", "N", "K", "sgemm", "int8 pc",
              "int8+q pc", "int8 g128", "w4a8 g128", "w4a16 g128");
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  double sum_sgemm = 0, sum_int8 = 0, sum_int8q = 0, sum_w4a8 = 0;
  for (const Shape& s : shapes) {
    std::vector<float> x(std::size_t(m) * s.k), wf(std::size_t(s.n) * s.k), y(std::size_t(m) * s.n);
    for (auto& v : x) v = nd(rng);
    for (auto& v : wf) v = nd(rng) * 0.05f;
    std::vector<std::int8_t> xq(x.size());
    std::vector<float> xs(m);
    kd::kern::quantize_rows_int8(xq.data(), xs.data(), x.data(), m, s.k);
    const Weights w8 = make_weight(rng, s.n, s.k, 8, s.k), w8g = make_weight(rng, s.n, s.k, 8, 128),
                  w4g = make_weight(rng, s.n, s.k, 4, 128);
    const kd::kern::PreparedWeight p8 = kd::kern::prepare_weight(w8.view), p8g = kd::kern::prepare_weight(w8g.view),
                                   p4g = kd::kern::prepare_weight(w4g.view);
    const double flop = 2.0 * m * s.n * s.k;
    const std::vector<double> secs = best_seconds(reps, {
        [&] { kd::kern::linear_forward<float>(y.data(), x.data(), wf.data(), m, s.n, s.k, false); },
        [&] { kd::kern::linear_int8(y.data(), xq.data(), xs.data(), true, 0, p8, m, false); },
        [&] {
          kd::kern::quantize_rows_int8(xq.data(), xs.data(), x.data(), m, s.k);
          kd::kern::linear_int8(y.data(), xq.data(), xs.data(), true, 0, p8, m, false);
        },
        [&] { kd::kern::linear_int8(y.data(), xq.data(), xs.data(), true, 0, p8g, m, false); },
        [&] { kd::kern::linear_int8(y.data(), xq.data(), xs.data(), true, 0, p4g, m, false); },
        [&] { kd::kern::linear_w4a16(y.data(), x.data(), w4g.view, m, false); },
    });
    const double t_sgemm = secs[0], t_int8 = secs[1], t_int8q = secs[2], t_int8g = secs[3], t_w4a8 = secs[4],
                 t_w4a16 = secs[5];
    auto col = [&](double t) {
      static char buf[32];
      std::snprintf(buf, sizeof buf, "%7.1f (%4.2fx)", flop / t * 1e-9, t_sgemm / t);
      return std::string(buf);
    };
    std::printf("%-13s %5d %4d | %7.1f | %s %s %s %s | %s\n", s.what, s.n, s.k, flop / t_sgemm * 1e-9, col(t_int8).c_str(),
                col(t_int8q).c_str(), col(t_int8g).c_str(), col(t_w4a8).c_str(), col(t_w4a16).c_str());
    if (s.student) {  // one layer's GEMMs plus the lm-head
      sum_sgemm += t_sgemm;
      sum_int8 += t_int8;
      sum_int8q += t_int8q;
      sum_w4a8 += t_w4a8;
    }
  }
  std::printf("d256 qkv+o+gate-up+down+lm-head: sgemm %.2f ms, int8 %.2f ms (%.2fx), int8+q %.2f ms (%.2fx), "
              "w4a8 %.2f ms (%.2fx)\n",
              sum_sgemm * 1e3, sum_int8 * 1e3, sum_sgemm / sum_int8, sum_int8q * 1e3, sum_sgemm / sum_int8q,
              sum_w4a8 * 1e3, sum_sgemm / sum_w4a8);
  return 0;
}
