#include "trainer/dist/mpi_watchdog.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>

#include <fmt/format.h>

namespace kd::dist {

namespace {

constexpr int kQuery = 1, kReply = 2;
// Operations by index: a status message carries the index, not the text.
constexpr std::array<const char*, 10> kOps = {"all_reduce",       "all_reduce(max)", "reduce_scatter", "all_gather",
                                              "reduce_scatter_v", "all_gather_v",    "broadcast",      "send",
                                              "recv",             "barrier"};

int op_index(const char* op) {
  for (std::size_t i = 0; i < kOps.size(); ++i) {
    if (std::strcmp(kOps[i], op) == 0) return int(i);
  }
  return -1;
}

const char* op_name(std::int64_t i) { return i >= 0 && i < std::int64_t(kOps.size()) ? kOps[std::size_t(i)] : "?"; }

// Replies must stay allocated until MPI has sent them; queries are rare (a job is about
// to abort), so they are simply kept.
std::deque<std::array<std::int64_t, 3>>& reply_buffers() {
  static std::deque<std::array<std::int64_t, 3>> b;
  return b;
}

}  // namespace

Watchdog::Watchdog(MPI_Comm comm, std::string group_name) : group_(std::move(group_name)) {
  MPI_Comm_dup(comm, &comm_);
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  int world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world);
  std::array<int, 2> me{world, int(getpid())};
  std::vector<int> all(2 * std::size_t(size_));
  MPI_Allgather(me.data(), 2, MPI_INT, all.data(), 2, MPI_INT, comm_);
  std::vector<char> name(MPI_MAX_PROCESSOR_NAME, '\0'), names(std::size_t(size_) * MPI_MAX_PROCESSOR_NAME);
  int len = 0;
  MPI_Get_processor_name(name.data(), &len);
  MPI_Allgather(name.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR, comm_);
  for (int r = 0; r < size_; ++r) {
    world_rank_.push_back(all[2 * std::size_t(r)]);
    pid_.push_back(all[2 * std::size_t(r) + 1]);
    const char* h = names.data() + std::size_t(r) * MPI_MAX_PROCESSOR_NAME;
    host_.emplace_back(h, strnlen(h, MPI_MAX_PROCESSOR_NAME));
  }
}

Watchdog::~Watchdog() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::string Watchdog::who(int r) const {
  return fmt::format("world rank {} on {}, pid {}", world_rank_[std::size_t(r)], host_[std::size_t(r)],
                     pid_[std::size_t(r)]);
}

Watchdog::Status Watchdog::mine() const { return {seq_, waiting_ ? 1 : 0, op_}; }

int Watchdog::wait(MPI_Request& req, const char* op, bool collective, int peer) {
  if (collective) ++seq_;
  waiting_ = true;
  op_ = op_index(op);
  const double t0 = MPI_Wtime();
  int done = 0, rc = MPI_SUCCESS;
  for (std::uint64_t i = 0;; ++i) {
    rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || done) break;
    // Checking the clock and the query channel costs more than a test: every 64 polls.
    // Yielding keeps an oversubscribed core (ranks × threads > cores) usable by the
    // rank that is still computing.
    if ((i & 63) == 63) {
      if (size_ > 1) answer_queries();
      const double waited = MPI_Wtime() - t0;
      if (timeout_ > 0 && waited > timeout_) expire(op, waited, peer);
      sched_yield();
    }
  }
  waiting_ = false;
  return rc;
}

void Watchdog::answer_queries() {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kQuery, comm_, &flag, &st) != MPI_SUCCESS || !flag) return;
    std::array<std::int64_t, 3> q{};
    MPI_Recv(q.data(), 3, MPI_INT64_T, st.MPI_SOURCE, kQuery, comm_, MPI_STATUS_IGNORE);
    const Status s = mine();
    reply_buffers().push_back({s.seq, s.waiting, s.op});
    MPI_Request r;
    MPI_Isend(reply_buffers().back().data(), 3, MPI_INT64_T, st.MPI_SOURCE, kReply, comm_, &r);
    MPI_Request_free(&r);
  }
}

void Watchdog::expire(const char* op, double waited, int peer) {
  const Status me = mine();
  // Ask every other rank; answer theirs meanwhile (they may be timing out too).
  reply_buffers().push_back({me.seq, me.waiting, me.op});
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    MPI_Request r;
    MPI_Isend(reply_buffers().back().data(), 3, MPI_INT64_T, p, kQuery, comm_, &r);
    MPI_Request_free(&r);
  }
  const double grace = std::clamp(timeout_ / 4, 1.0, 10.0);
  std::vector<Status> got(static_cast<std::size_t>(size_));
  std::vector<bool> answered(std::size_t(size_), false);
  answered[std::size_t(rank_)] = true;
  const double t0 = MPI_Wtime();
  while (MPI_Wtime() - t0 < grace && std::count(answered.begin(), answered.end(), false) > 0) {
    answer_queries();
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kReply, comm_, &flag, &st) == MPI_SUCCESS && flag) {
      std::array<std::int64_t, 3> a{};
      MPI_Recv(a.data(), 3, MPI_INT64_T, st.MPI_SOURCE, kReply, comm_, MPI_STATUS_IGNORE);
      got[std::size_t(st.MPI_SOURCE)] = {a[0], a[1], a[2]};
      answered[std::size_t(st.MPI_SOURCE)] = true;
    } else {
      usleep(1000);
    }
  }
  const std::string what = peer >= 0 ? fmt::format("{} {} rank {} (after collective #{})", op,
                                                    std::string(op) == "send" ? "to" : "from", peer, me.seq)
                                    : fmt::format("{} #{}", op, me.seq);
  std::string text = fmt::format("kdtrain: watchdog: {} in the {} ({} ranks) waited {:.1f} s (timeout {:.1f} s) on rank {} ({})\n",
                                 what, group_, size_, waited, timeout_, rank_, who(rank_));
  int late = 0;
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    const auto& s = got[std::size_t(p)];
    std::string where;
    if (!answered[std::size_t(p)]) {
      where = fmt::format("LATE: did not answer within {:.1f} s (hung, stopped, or still computing)", grace);
      ++late;
    } else if (s.waiting && s.seq == me.seq) {
      where = fmt::format("arrived: waiting in {} #{}", op_name(s.op), s.seq);
    } else if (s.waiting) {
      where = fmt::format("LATE: waiting in another operation, {} #{}", op_name(s.op), s.seq);
      ++late;
    } else {
      where = fmt::format("LATE: not in a collective (after #{})", s.seq);
      ++late;
    }
    text += fmt::format("  rank {} ({}): {}\n", p, who(p), where);
  }
  if (late == 0) text += "  every rank arrived: the transport itself is stuck\n";
  text += "kdtrain: aborting the job (exit 3)\n";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  std::fflush(stdout);
  MPI_Abort(MPI_COMM_WORLD, 3);
  std::_Exit(3);
}

}  // namespace kd::dist
