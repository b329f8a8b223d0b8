// The watchdog behind every MPI wait (internal to trainer/dist). Each collective and
// send/recv is started non-blocking and completed here: polled until done or until the
// timeout. On a timeout this rank asks every other rank of the group where it is (a
// query/reply exchange on a duplicate communicator of its own, so no message of the
// computation can be mistaken for one of these); a rank that is itself waiting answers
// from its poll loop, a rank that is computing, hung or stopped does not. The message
// names the collective, its sequence number in the group, and for each other rank either
// where it waits or that it did not answer; then MPI_Abort(MPI_COMM_WORLD, 3) ends the job.
#pragma once

#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kd::dist {

class Watchdog {
 public:
  // Collective over `comm` (gathers world ranks, hosts and pids for messages).
  Watchdog(MPI_Comm comm, std::string group_name);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void set_timeout(double seconds) { timeout_ = seconds; }
  // Completes `req` (started by the caller for operation `op`); `collective` says whether
  // every rank of the group takes part (then it counts in the sequence numbers).
  // Returns MPI's error code of the completed request.
  // peer: the other rank of a send or recv (-1 for a collective).
  int wait(MPI_Request& req, const char* op, bool collective, int peer = -1);
  // "world rank 1 on host, pid 812" of group rank r.
  std::string who(int r) const;

 private:
  struct Status {  // what a rank reports when asked
    std::int64_t seq = -1;     // collectives completed or entered so far
    std::int64_t waiting = 0;  // 1 while inside a wait
    std::int64_t op = -1;      // index into kOps of the one it waits in
  };
  [[noreturn]] void expire(const char* op, double waited, int peer);
  void answer_queries();
  Status mine() const;

  MPI_Comm comm_ = MPI_COMM_NULL;  // the duplicate: queries and replies only
  std::string group_;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_rank_, pid_;
  std::vector<std::string> host_;
  double timeout_ = 0;
  std::int64_t seq_ = 0;
  bool waiting_ = false;
  int op_ = -1;
  std::vector<std::int64_t> reply_buf_;  // kept alive until the abort
};

}  // namespace kd::dist
