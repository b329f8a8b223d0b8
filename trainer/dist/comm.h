// Comm: the only door to other ranks (docs/design.md, "Distributed"). Collectives on a
// group of ranks over host buffers; every rank of the group calls the same collective in
// the same order. Two kinds of collective:
//  * equal-count: every rank passes the same count (the form NCCL has); reduce_scatter and
//    all_gather split a buffer of world_size · shard elements into contiguous shards, rank r
//    owning [r · shard, (r + 1) · shard). Callers pad the buffer to a multiple of the world
//    size (padded_shard below).
//  * uneven-count (_v): counts[r] elements for rank r, for data that cannot be padded.
// Sums are in the element type; same world size and same inputs give the same result run
// after run (the MPI reduction order depends only on the world size and count).
// Failures of the transport throw RuntimeFailure naming the collective (exit 3).
// Watchdog: with a timeout set, a collective (or send/recv) that waits longer makes this
// rank ask the group's other ranks where they are, print which rank is late and in which
// collective, and abort the whole job with exit code 3 (MPI_Abort) — never a hang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace kd::dist {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "MPI world of 2" / "single process"

  // In place: x ← Σ over the group.
  virtual void all_reduce_sum(std::span<float> x) = 0;
  virtual void all_reduce_sum(std::span<double> x) = 0;
  virtual void all_reduce_max(std::span<double> x) = 0;
  // in has size() · out.size() elements; out ← the sum over the group of this rank's shard.
  virtual void reduce_scatter_sum(std::span<const float> in, std::span<float> out) = 0;
  // out has size() · in.size() elements; out's shard r ← rank r's in.
  virtual void all_gather(std::span<const float> in, std::span<float> out) = 0;
  // counts[r]: rank r's elements; in holds Σ counts, out holds counts[rank()].
  virtual void reduce_scatter_sum_v(std::span<const float> in, std::span<float> out,
                                    const std::vector<std::size_t>& counts) = 0;
  // in holds counts[rank()], out holds Σ counts in rank order.
  virtual void all_gather_v(std::span<const float> in, std::span<float> out,
                            const std::vector<std::size_t>& counts) = 0;
  virtual void broadcast(std::span<float> x, int root) = 0;
  virtual void broadcast(std::span<std::int64_t> x, int root) = 0;
  virtual void broadcast(std::span<char> x, int root) = 0;  // bytes: texts a collective write shares
  virtual void send(std::span<const float> x, int to, int tag) = 0;
  virtual void recv(std::span<float> x, int from, int tag) = 0;
  virtual void send(std::span<const std::int32_t> x, int to, int tag) = 0;
  virtual void recv(std::span<std::int32_t> x, int from, int tag) = 0;
  virtual void barrier() = 0;
  // A sub-group of the ranks with the same color, ordered by key (MPI_Comm_split); `name`
  // says what the group is for in watchdog messages ("data-parallel group").
  virtual std::unique_ptr<Comm> split(int color, int key, const std::string& name) = 0;
  // Seconds any one wait may last before the watchdog aborts the job (0 = wait forever,
  // the default). Local to this rank; every rank sets its own (the trainer scales it to
  // the step time).
  virtual void set_timeout(double seconds) = 0;
  // This rank in the world: rank, host and pid, for messages ("world rank 1 on node3, pid 812").
  virtual std::string whoami() const = 0;
  // The Comm that carries host-side traffic of these ranks: itself, or the MPI group an NCCL
  // Comm wraps (what parallel HDF5 is given, trainer/dist/mpi_handle.h).
  virtual const Comm& host_group() const { return *this; }
};

// The elements each rank owns when n elements are split into size() equal shards:
// ceil(n / size), so the padded buffer holds size · shard ≥ n elements.
inline std::size_t padded_shard(std::size_t n, int world) { return (n + std::size_t(world) - 1) / std::size_t(world); }
// ZeRO's shard of the student's flat buffer of n floats: padded_shard rounded up to whole
// pages of floats (1024), so each rank's shard, and its Adam moments with it, starts where
// the buffer's pages do and a checkpoint writes them with O_DIRECT in place
// (trainer/checkpoint/byte_writer.h). One rank: n itself.
inline std::size_t zero_shard(std::size_t n, int world) {
  constexpr std::size_t kPageFloats = 1024;
  return world <= 1 ? n : (padded_shard(n, world) + kPageFloats - 1) / kPageFloats * kPageFloats;
}

// One process, no MPI: every collective is the identity (a copy where buffers differ).
std::unique_ptr<Comm> make_self_comm();

// The process's world: MPI when launched by mpirun / srun (their environment says so),
// otherwise a single process, so kdtrain runs unchanged without a launcher. Initialises
// MPI on first use (MPI_THREAD_FUNNELED: only the main thread communicates) and finalises
// it at exit.
std::unique_ptr<Comm> make_world_comm();
// Whether the environment shows an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK).
bool launched_by_mpi();

}  // namespace kd::dist
