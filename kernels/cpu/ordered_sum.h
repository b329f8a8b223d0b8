// A parallel sum whose rounding does not depend on the thread count or the schedule:
// fixed-size chunks, each summed serially in double, added in chunk order. (OpenMP
// `reduction` clauses combine per-thread partials in arrival order: not bit-stable.)
#pragma once

#include <algorithm>
#include <cstddef>

namespace kd::kern {

template <class F>  // F: double(std::size_t begin, std::size_t end)
double ordered_chunk_sum(std::size_t n, std::size_t chunk, F&& partial) {
  const std::size_t nchunks = (n + chunk - 1) / chunk;
  double total = 0;
#pragma omp parallel for schedule(static, 1) ordered
  for (std::size_t c = 0; c < nchunks; ++c) {
    const double s = partial(c * chunk, std::min(n, (c + 1) * chunk));
#pragma omp ordered
    total += s;
  }
  return total;
}

}  // namespace kd::kern
