#include "trainer/dist/mpi_watchdog.h"  // mpi.h, C API only

#include <cstdlib>
#include <limits>
#include <memory>
#include <numeric>

#include <fmt/format.h>

#include "trainer/dist/comm.h"
#include "trainer/dist/mpi_handle.h"
#include "base/errors.h"

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
  MpiComm(MPI_Comm c, bool owned, const std::string& name) : comm_(c), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // errors come back as codes (then RuntimeFailure), not as an abort inside MPI
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    watchdog_ = std::make_unique<Watchdog>(comm_, name);
  }
  ~MpiComm() override {
    watchdog_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return fmt::format("MPI group of {} (rank {})", size_, rank_); }
  std::string whoami() const override { return watchdog_->who(rank_); }
  void set_timeout(double seconds) override { watchdog_->set_timeout(seconds); }

  // Every operation starts non-blocking and completes under the watchdog.
  void all_reduce_sum(std::span<float> x) override {
    run("all_reduce", [&](MPI_Request* r) {
      return MPI_Iallreduce(MPI_IN_PLACE, x.data(), count_of(x.size(), "all_reduce"), MPI_FLOAT, MPI_SUM, comm_, r);
    });
  }
  void all_reduce_sum(std::span<double> x) override {
    run("all_reduce", [&](MPI_Request* r) {
      return MPI_Iallreduce(MPI_IN_PLACE, x.data(), count_of(x.size(), "all_reduce"), MPI_DOUBLE, MPI_SUM, comm_, r);
    });
  }
  void all_reduce_max(std::span<double> x) override {
    run("all_reduce(max)", [&](MPI_Request* r) {
      return MPI_Iallreduce(MPI_IN_PLACE, x.data(), count_of(x.size(), "all_reduce"), MPI_DOUBLE, MPI_MAX, comm_, r);
    });
  }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out) override {
    KD_ASSERT(in.size() == out.size() * std::size_t(size_), "reduce_scatter: {} in for {} × {} out", in.size(),
              size_, out.size());
    run("reduce_scatter", [&](MPI_Request* r) {
      return MPI_Ireduce_scatter_block(in.data(), out.data(), count_of(out.size(), "reduce_scatter"), MPI_FLOAT,
                                       MPI_SUM, comm_, r);
    });
  }
  void all_gather(std::span<const float> in, std::span<float> out) override {
    KD_ASSERT(out.size() == in.size() * std::size_t(size_), "all_gather: {} out for {} × {} in", out.size(), size_,
              in.size());
    const int n = count_of(in.size(), "all_gather");
    const bool in_place = in.data() == out.data() + std::size_t(rank_) * in.size();
    run("all_gather", [&](MPI_Request* r) {
      return in_place ? MPI_Iallgather(MPI_IN_PLACE, 0, MPI_FLOAT, out.data(), n, MPI_FLOAT, comm_, r)
                      : MPI_Iallgather(in.data(), n, MPI_FLOAT, out.data(), n, MPI_FLOAT, comm_, r);
    });
  }
  void reduce_scatter_sum_v(std::span<const float> in, std::span<float> out,
                            const std::vector<std::size_t>& counts) override {
    check_counts(counts, in.size(), out.size(), "reduce_scatter_v");
    std::vector<int> c(counts.size());
    for (std::size_t r = 0; r < counts.size(); ++r) c[r] = count_of(counts[r], "reduce_scatter_v");
    run("reduce_scatter_v", [&](MPI_Request* r) {
      return MPI_Ireduce_scatter(in.data(), out.data(), c.data(), MPI_FLOAT, MPI_SUM, comm_, r);
    });
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
    run("all_gather_v", [&](MPI_Request* r) {
      return MPI_Iallgatherv(in.data(), c[std::size_t(rank_)], MPI_FLOAT, out.data(), c.data(), displ.data(),
                             MPI_FLOAT, comm_, r);
    });
  }
  void broadcast(std::span<float> x, int root) override {
    run("broadcast", [&](MPI_Request* r) {
      return MPI_Ibcast(x.data(), count_of(x.size(), "broadcast"), MPI_FLOAT, root, comm_, r);
    });
  }
  void broadcast(std::span<std::int64_t> x, int root) override {
    run("broadcast", [&](MPI_Request* r) {
      return MPI_Ibcast(x.data(), count_of(x.size(), "broadcast"), MPI_INT64_T, root, comm_, r);
    });
  }
  void broadcast(std::span<char> x, int root) override {
    run("broadcast", [&](MPI_Request* r) {
      return MPI_Ibcast(x.data(), count_of(x.size(), "broadcast"), MPI_CHAR, root, comm_, r);
    });
  }
  MPI_Comm handle() const { return comm_; }
  void send(std::span<const float> x, int to, int tag) override {
    run("send", [&](MPI_Request* r) {
      return MPI_Isend(x.data(), count_of(x.size(), "send"), MPI_FLOAT, to, tag, comm_, r);
    }, false, to);
  }
  void recv(std::span<float> x, int from, int tag) override {
    run("recv", [&](MPI_Request* r) {
      return MPI_Irecv(x.data(), count_of(x.size(), "recv"), MPI_FLOAT, from, tag, comm_, r);
    }, false, from);
  }
  void send(std::span<const std::int32_t> x, int to, int tag) override {
    run("send", [&](MPI_Request* r) {
      return MPI_Isend(x.data(), count_of(x.size(), "send"), MPI_INT32_T, to, tag, comm_, r);
    }, false, to);
  }
  void recv(std::span<std::int32_t> x, int from, int tag) override {
    run("recv", [&](MPI_Request* r) {
      return MPI_Irecv(x.data(), count_of(x.size(), "recv"), MPI_INT32_T, from, tag, comm_, r);
    }, false, from);
  }
  void barrier() override {
    run("barrier", [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); });
  }
  std::unique_ptr<Comm> split(int color, int key, const std::string& name) override {
    MPI_Comm sub = MPI_COMM_NULL;
    check(MPI_Comm_split(comm_, color, key, &sub), "comm_split");
    return std::make_unique<MpiComm>(sub, true, name);
  }

 private:
  template <class Start>
  void run(const char* op, Start start, bool collective = true, int peer = -1) {
    MPI_Request req = MPI_REQUEST_NULL;
    check(start(&req), op);
    check(watchdog_->wait(req, op, collective, peer), op);
  }
  void check_counts(const std::vector<std::size_t>& counts, std::size_t whole, std::size_t mine,
                    const char* what) const {
    KD_ASSERT(counts.size() == std::size_t(size_), "{}: {} counts for {} ranks", what, counts.size(), size_);
    KD_ASSERT(std::accumulate(counts.begin(), counts.end(), std::size_t(0)) == whole && counts[std::size_t(rank_)] == mine,
              "{}: counts do not match the buffers", what);
  }
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<Watchdog> watchdog_;
};

}  // namespace

MPI_Comm mpi_handle(const Comm& c) {
  const auto* m = dynamic_cast<const MpiComm*>(&c.host_group());
  return m ? m->handle() : MPI_COMM_NULL;
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

std::unique_ptr<Comm> make_world_comm() {
  if (!launched_by_mpi()) return make_self_comm();
  ensure_mpi();
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, false, "world");
}

}  // namespace kd::dist
