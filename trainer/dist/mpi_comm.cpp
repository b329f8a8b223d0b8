// the C API only: no C++ bindings (deprecated, and a library of their own to link)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdlib>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "trainer/dist/comm.h"
#include "trainer/util/errors.h"

namespace kd::dist {

namespace {

// MPI_Finalize at exit, once, for a process that initialised MPI here.
void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void ensure_mpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw RuntimeFailure("MPI_Init_thread failed");
  }
  std::atexit(finalize_at_exit);
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw RuntimeFailure(fmt::format("MPI {} failed: {}", what, std::string(text, std::size_t(len))));
}

// MPI counts are int: a buffer beyond 2^31 - 1 elements is refused rather than truncated.
int count_of(std::size_t n, const char* what) {
  KD_ASSERT(n <= std::size_t(std::numeric_limits<int>::max()), "{}: {} elements exceed MPI's int count", what, n);
  return int(n);
}

class MpiComm final : public Comm {
 public:
  explicit MpiComm(MPI_Comm c, bool owned) : comm_(c), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // errors come back as codes (then RuntimeFailure), not as an abort inside MPI
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return fmt::format("MPI group of {} (rank {})", size_, rank_); }

  void all_reduce_sum(std::span<float> x) override {
    check(MPI_Allreduce(MPI_IN_PLACE, x.data(), count_of(x.size(), "all_reduce"), MPI_FLOAT, MPI_SUM, comm_),
          "all_reduce");
  }
  void all_reduce_sum(std::span<double> x) override {
    check(MPI_Allreduce(MPI_IN_PLACE, x.data(), count_of(x.size(), "all_reduce"), MPI_DOUBLE, MPI_SUM, comm_),
          "all_reduce");
  }
  void all_reduce_max(std::span<double> x) override {
    check(MPI_Allreduce(MPI_IN_PLACE, x.data(), count_of(x.size(), "all_reduce"), MPI_DOUBLE, MPI_MAX, comm_),
          "all_reduce(max)");
  }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out) override {
    KD_ASSERT(in.size() == out.size() * std::size_t(size_), "reduce_scatter: {} in for {} × {} out", in.size(),
              size_, out.size());
    check(MPI_Reduce_scatter_block(in.data(), out.data(), count_of(out.size(), "reduce_scatter"), MPI_FLOAT, MPI_SUM,
                                   comm_),
          "reduce_scatter");
  }
  void all_gather(std::span<const float> in, std::span<float> out) override {
    KD_ASSERT(out.size() == in.size() * std::size_t(size_), "all_gather: {} out for {} × {} in", out.size(), size_,
              in.size());
    const int n = count_of(in.size(), "all_gather");
    if (in.data() == out.data() + std::size_t(rank_) * in.size()) {
      check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_FLOAT, out.data(), n, MPI_FLOAT, comm_), "all_gather");
    } else {
      check(MPI_Allgather(in.data(), n, MPI_FLOAT, out.data(), n, MPI_FLOAT, comm_), "all_gather");
    }
  }
  void reduce_scatter_sum_v(std::span<const float> in, std::span<float> out,
                            const std::vector<std::size_t>& counts) override {
    check_counts(counts, in.size(), out.size(), "reduce_scatter_v");
    std::vector<int> c(counts.size());
    for (std::size_t r = 0; r < counts.size(); ++r) c[r] = count_of(counts[r], "reduce_scatter_v");
    check(MPI_Reduce_scatter(in.data(), out.data(), c.data(), MPI_FLOAT, MPI_SUM, comm_), "reduce_scatter_v");
  }
  void all_gather_v(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>& counts) override {
    check_counts(counts, out.size(), in.size(), "all_gather_v");
    std::vector<int> c(counts.size()), displ(counts.size());
    std::size_t offset = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      c[r] = count_of(counts[r], "all_gather_v");
      displ[r] = count_of(offset, "all_gather_v");
      offset += counts[r];
    }
    check(MPI_Allgatherv(in.data(), c[std::size_t(rank_)], MPI_FLOAT, out.data(), c.data(), displ.data(), MPI_FLOAT,
                         comm_),
          "all_gather_v");
  }
  void broadcast(std::span<float> x, int root) override {
    check(MPI_Bcast(x.data(), count_of(x.size(), "broadcast"), MPI_FLOAT, root, comm_), "broadcast");
  }
  void broadcast(std::span<std::int64_t> x, int root) override {
    check(MPI_Bcast(x.data(), count_of(x.size(), "broadcast"), MPI_INT64_T, root, comm_), "broadcast");
  }
  void send(std::span<const float> x, int to, int tag) override {
    check(MPI_Send(x.data(), count_of(x.size(), "send"), MPI_FLOAT, to, tag, comm_), "send");
  }
  void recv(std::span<float> x, int from, int tag) override {
    check(MPI_Recv(x.data(), count_of(x.size(), "recv"), MPI_FLOAT, from, tag, comm_, MPI_STATUS_IGNORE), "recv");
  }
  void barrier() override { check(MPI_Barrier(comm_), "barrier"); }
  std::unique_ptr<Comm> split(int color, int key) override {
    MPI_Comm sub = MPI_COMM_NULL;
    check(MPI_Comm_split(comm_, color, key, &sub), "comm_split");
    return std::make_unique<MpiComm>(sub, true);
  }

 private:
  void check_counts(const std::vector<std::size_t>& counts, std::size_t whole, std::size_t mine,
                    const char* what) const {
    KD_ASSERT(counts.size() == std::size_t(size_), "{}: {} counts for {} ranks", what, counts.size(), size_);
    KD_ASSERT(std::accumulate(counts.begin(), counts.end(), std::size_t(0)) == whole && counts[std::size_t(rank_)] == mine,
              "{}: counts do not match the buffers", what);
  }
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

std::unique_ptr<Comm> make_world_comm() {
  if (!launched_by_mpi()) return make_self_comm();
  ensure_mpi();
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, false);
}

}  // namespace kd::dist
