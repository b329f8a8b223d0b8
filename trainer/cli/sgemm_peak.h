// The sgemm peak of the linked BLAS: square N in {1024, 2048, 4096}, best GFLOP/s of
// repeated calls for >= `seconds` per size (as ../shared/bench/peak_sgemm.c measures).
#pragma once

namespace kd::cli {

// Prints one line per size when `verbose`. Returns the best GFLOP/s.
double measure_sgemm_peak(double seconds, bool verbose);
// The same, in a forked child, so its 200 MB of matrices never count in this process's
// peak RSS. Call before any OpenMP region has started. Returns 0 if the child failed.
double measure_sgemm_peak_in_child(double seconds);

}  // namespace kd::cli
