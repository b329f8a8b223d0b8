#include "trainer/cli/bench_checkpoint.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/config/config.h"
#include "trainer/dist/comm.h"
#include "trainer/setup/provenance.h"
#include "trainer/run/trainer_state.h"
#include "base/errors.h"
#include "base/file_io.h"
#include "trainer/util/aligned_buffer.h"
#include "trainer/util/core_time.h"

namespace kd::cli {

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// What a window of work added to the machine's core time over the plain steps before it
// (trainer/util/core_time.h): the time the host took from the cores (steal, reported or not)
// and the kernel's, core-seconds.
struct CoreCost {
  double host = 0, kernel = 0;
};

// Seconds `f` takes on the slowest rank (barriers around it).
template <class F>
double timed_on_all(dist::Comm& comm, F&& f) {
  comm.barrier();
  const double t0 = omp_get_wtime();
  f();
  comm.barrier();
  return omp_get_wtime() - t0;
}

// The reference a write is measured against: two plain steps, timed, with the machine's core
// clock read around them; then the write's window (begin() … cost()), whose core time is taken
// beyond the plain steps' rates.
class PlainSteps {
 public:
  PlainSteps(Trainer& trainer, data::BatchSource& source, dist::Comm& comm) {
    a_ = util::read_core_clock();
    p0 = timed_on_all(comm, [&] { trainer.step(source); });
    p1 = timed_on_all(comm, [&] { trainer.step(source); });
    b_ = util::read_core_clock();
  }
  double step_s() const { return (p0 + p1) / 2; }
  void begin() { c_ = util::read_core_clock(); }
  CoreCost cost() const {
    const util::CoreClock d = util::read_core_clock();
    const util::CoreUse extra = util::core_use_beyond(util::core_use(c_, d), d.wall_s - c_.wall_s,
                                                      util::core_use(a_, b_), b_.wall_s - a_.wall_s);
    return {extra.taken(), extra.kernel};
  }

  double p0 = 0, p1 = 0;

 private:
  util::CoreClock a_, b_, c_;
};

// The disk's own share of the stall: the memory the checkpoint writes on this rank (the
// weights' shard, m and v) written by a bare thread into `path` (sequential 8 MiB O_DIRECT
// pwrites straight from it, no CRC, no HDF5, each rank at its own offsets, a new file each
// time, then fdatasync) while the training steps, against as many plain steps: what writing
// these bytes costs the training here, whoever writes them (on this VM the disk's emulation
// runs on the cores the training uses: a dd of 2 GB slowed two spinning threads by ~1 s while
// using 0.3 s of CPU itself). The training changes the memory as it is written: the file is
// thrown away, only its writing counts.
class DiskFloor {
 public:
  DiskFloor(Trainer& trainer, std::string path) : path_(std::move(path)) {
    const Trainer::MomentShard ms = trainer.moment_shard();
    const std::uint64_t n = (ms.end - ms.begin) * sizeof(float);
    regions_ = {{reinterpret_cast<const char*>(trainer.student_params() + ms.begin), n},
                {reinterpret_cast<const char*>(ms.m), n},
                {reinterpret_cast<const char*>(ms.v), n}};
  }
  std::uint64_t bytes() const { return 3 * regions_[0].second; }

  // One bare write while the training steps: the time the steps lost, and what the write
  // added to the machine's core time.
  double stall_once(Trainer& trainer, data::BatchSource& source, dist::Comm& comm, CoreCost& cost) {
    constexpr std::uint64_t kWrite = std::uint64_t{8} << 20, kAlign = 4096;
    PlainSteps plain(trainer, source, comm);
    if (comm.rank() == 0) {  // a new file each time, as each checkpoint is
      std::error_code ec;
      std::filesystem::remove(path_, ec);
    }
    comm.barrier();
    bool aligned = true;  // O_DIRECT takes page-aligned memory (a buffer under 1 MiB may not be)
    for (const auto& [base, n] : regions_) aligned = aligned && reinterpret_cast<std::uintptr_t>(base) % kAlign == 0;
    int fd = aligned ? ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_DIRECT, 0644) : -1;
    if (fd < 0) fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);  // no direct I/O here
    if (fd < 0) throw RuntimeFailure(fmt::format("cannot open {}: {}", path_, std::strerror(errno)));
    std::atomic<bool> done{false};
    bool good = true;
    int err = 0, steps = 0;
    const std::uint64_t first = std::uint64_t(comm.rank()) * ((bytes() + kWrite - 1) / kWrite * kWrite);
    plain.begin();
    const double t = timed_on_all(comm, [&] {
      std::thread writer([&] {
        std::uint64_t at = first;
        for (const auto& [base, n] : regions_) {
          for (std::uint64_t k = 0; good && k + kAlign <= n; k += kWrite) {  // the last < 4 KiB left out
            const std::uint64_t len = std::min(kWrite, (n - k) / kAlign * kAlign);
            good = write_all_at(fd, {base + k, len}, at);
            at += len;
          }
        }
        good = good && ::fdatasync(fd) == 0;
        if (!good) err = errno;
        done = true;
      });
      do {
        trainer.step(source);
        ++steps;
      } while (!done.load());
      writer.join();
    });
    cost = plain.cost();
    ::close(fd);
    if (!good) throw RuntimeFailure(fmt::format("writing {}: {}", path_, std::strerror(err)));
    return std::max(0.0, t - steps * plain.step_s());
  }

 private:
  std::string path_;
  std::vector<std::pair<const char*, std::uint64_t>> regions_;
};

// A checkpoint's stall to the training, medians of kBenchCheckpointWrites background writes.
struct Stall {
  double stall = 0;   // all the time the steps lost against as many plain steps
  double block = 0;   // the part the training thread waited in the checkpoint's calls
  double start = 0, held = 0, finish = 0, steps = 0, writer_cpu = 0;
  double taken_back_mb = 0;  // copied at the update (StateCopy::at_update): what the disk had not reached
  double plain_step = 0;  // the median of the plain steps timed between the writes
  double floor = 0;       // the same bytes written by a bare thread (DiskFloor), timed after each write
  double over_floor = 0;  // each write's stall less its bare write's: what kdtrain adds to the disk's cost
  CoreCost cost, floor_cost;  // what the write and the bare write added to the machine's core time
};

// `contents` gives the state to write (its views read in place). Each write's steps are
// measured against the two plain steps timed just before it: this VM's step time drifts by a
// few percent over a minute, as much as the stall of a small checkpoint. `floor` (when not
// null) times a bare write of the same bytes after each checkpoint, so that the two medians
// come from the same minutes (this VM's disk changes speed within them).
template <class Contents>
Stall measure_stall(Trainer& trainer, data::BatchSource& source, dist::Comm& comm, const std::string& where,
                    const char* name, ckpt::StateCopy copy, Contents&& contents, DiskFloor* floor = nullptr) {
  ckpt::BackgroundCheckpoint bg(&comm, copy);
  trainer.set_state_gate([&] { bg.release_state(); });
  std::vector<double> stall_s, block_s, start_s, wait_s, finish_s, steps_n, cpu_s, plain_s, taken_mb, floor_s, over_s;
  std::vector<double> host_s, kernel_s, floor_host_s, floor_kernel_s;
  for (int i = 0; i < kBenchCheckpointWrites; ++i) {
    ckpt::CheckpointContents ci = contents();
    PlainSteps plain(trainer, source, comm);
    plain_s.insert(plain_s.end(), {plain.p0, plain.p1});
    int steps = 0;
    plain.begin();
    const double t = timed_on_all(comm, [&] {
      // the step before the checkpoint, as a run's: its update takes the CRC-32s of what it
      // leaves (Trainer::sum_next_update), a cost of the checkpoint, so timed with it
      trainer.sum_next_update();
      trainer.step(source);
      add_state_sums(trainer, ci);
      bg.start(fmt::format("{}/{}-{}.h5", where, name, i), ci);
      do {
        trainer.step(source);
        ++steps;
      } while (!bg.poll());
    });
    const CoreCost cost = plain.cost();
    host_s.push_back(cost.host);
    kernel_s.push_back(cost.kernel);
    stall_s.push_back(std::max(0.0, t - (steps + 1) * plain.step_s()));
    block_s.push_back(bg.stats().start_s + bg.stats().release_wait_s + bg.stats().finish_s);
    start_s.push_back(bg.stats().start_s);
    wait_s.push_back(bg.stats().release_wait_s);
    finish_s.push_back(bg.stats().finish_s);
    steps_n.push_back(steps);
    cpu_s.push_back(bg.stats().writer_cpu_s);
    taken_mb.push_back(double(bg.stats().taken_back_bytes) / 1e6);
    if (floor) {
      CoreCost floor_cost;
      floor_s.push_back(floor->stall_once(trainer, source, comm, floor_cost));
      over_s.push_back(stall_s.back() - floor_s.back());
      floor_host_s.push_back(floor_cost.host);
      floor_kernel_s.push_back(floor_cost.kernel);
    }
  }
  trainer.set_state_gate(nullptr);
  auto median_or_0 = [](const std::vector<double>& v) { return v.empty() ? 0.0 : median_of(v); };
  return {median_of(stall_s), median_of(block_s), median_of(start_s), median_of(wait_s),
          median_of(finish_s), median_of(steps_n), median_of(cpu_s), median_of(taken_mb), median_of(plain_s),
          median_or_0(floor_s), median_or_0(over_s), {median_of(host_s), median_of(kernel_s)},
          {median_or_0(floor_host_s), median_or_0(floor_kernel_s)}};
}

// A directory all ranks see: rank 0 makes it (or takes `dir`), the others get its name.
std::string shared_dir(dist::Comm& comm, const std::string& dir, bool& made) {
  std::string path = dir;
  made = false;
  if (comm.rank() == 0) {
    if (path.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "kdtrain_bench_ckpt_XXXXXX").string();
      if (mkdtemp(tmpl.data()) == nullptr) throw RuntimeFailure(fmt::format("cannot make a directory {}: {}", tmpl, std::strerror(errno)));
      path = tmpl;
      made = true;
    } else {
      std::error_code ec;
      std::filesystem::create_directories(path, ec);
      if (ec) throw RuntimeFailure(fmt::format("cannot make directory {}: {}", path, ec.message()));
    }
  }
  std::array<std::int64_t, 1> n{std::int64_t(path.size())};
  comm.broadcast(n, 0);
  path.resize(std::size_t(n[0]));
  comm.broadcast(std::span<char>(path.data(), path.size()), 0);
  return path;
}

// The file's pages out of the page cache (written back first), so that the next read comes
// from the disk, as a resume's does in a new job.
void drop_cached(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw RuntimeFailure(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  (void)::fdatasync(fd);
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace

void bench_checkpoint(Trainer& trainer, const Config& cfg, data::BatchSource& source, const std::string& dir,
                      std::FILE* out) {
  dist::Comm& comm = trainer.comm();
  bool made = false;
  const std::string where = shared_dir(comm, dir, made);
  auto contents = [&] {
    ckpt::CheckpointContents c;
    if (comm.rank() == 0) {
      c.kind = "train";
      c.config_yaml = config_to_yaml(cfg);
      c.provenance = runtime_provenance(omp_get_max_threads());
      c.state = {{"step", trainer.steps_done()}, {"adam_step", trainer.optimizer().steps_taken()}};
    }
    add_trainer_tensors(trainer, false, c);
    return c;
  };
  const ckpt::CheckpointContents c = contents();
  const double values = double(trainer.student_table().total()) * 3;  // model, m, v
  const int writes = kBenchCheckpointWrites;
  std::vector<double> write_s;
  std::string path;
  for (int i = 0; i < writes; ++i) {
    path = fmt::format("{}/step-{:08d}.h5", where, i);
    write_s.push_back(timed_on_all(comm, [&] { ckpt::write_checkpoint(path, c, &comm); }));
  }
  const double bytes = double(std::filesystem::file_size(path));
  // a resume's read: open (manifest, attributes checked), the whole model and this rank's
  // moment shard, every byte checked against the manifest as read, into the live trainer
  // (the same values it holds, so the timing below continues unchanged); medians, from the
  // disk (the file's pages dropped first) and from the page cache
  auto resume_read = [&] { read_model_and_moments(ckpt::CheckpointReader(path), trainer, false); };
  std::vector<double> disk, cached;
  for (int i = 0; i < kBenchDiskReads; ++i) {
    drop_cached(path);
    disk.push_back(timed_on_all(comm, resume_read));
  }
  for (int i = 0; i < 3; ++i) cached.push_back(timed_on_all(comm, resume_read));
  std::string problem;
  const double verify_s = timed_on_all(comm, [&] { problem = ckpt::CheckpointReader(path).verify(); });
  KD_ASSERT(problem.empty(), "the benchmark's own checkpoint does not verify: {}", problem);
  const double read_s = median_of(cached), read_disk_s = median_of(disk);

  // The stall: a checkpoint written in the background (as a run writes them) while the
  // training goes on, from start() until poll() says it is complete, against as many plain
  // steps; the weights and moments kept as train.checkpoint_copy says (at_update: written in
  // place, the next update's state gate copying what the disk has not reached).
  const ckpt::StateCopy copy = checkpoint_state_copy(cfg.train.checkpoint_copy);
  const int threads = omp_get_max_threads();
  DiskFloor floor_writer(trainer, fmt::format("{}/{}", where, kBenchFloorFile));
  const Stall all = measure_stall(trainer, source, comm, where, "stall", copy, contents, &floor_writer);
  // the same with a core left to the writer (the training on one thread fewer), as on a node
  // whose training leaves cores free (a GPU node, or threads set below the cores): what the
  // write costs the training beyond the cores it takes
  Stall spare;
  if (threads > 1) {
    set_threads(threads - 1);
    trainer.step(source);  // the first step at a new thread count warms its buffers
    spare = measure_stall(trainer, source, comm, where, "spare", copy, contents);
    set_threads(threads);
  }
  const std::uint64_t rank_bytes = floor_writer.bytes();
  const double write = median_of(write_s), stall = all.stall, block = all.block;
  const util::CoreClock clock = util::read_core_clock();
  const int cores = clock.cores;
  // the host's take as a stall: the cores' time it took, spread over the machine's cores (a
  // training on every core, as bench.sh's, loses that much wall time to it at least)
  const double host_frac = all.cost.host / cores / write, floor_host_frac = all.floor_cost.host / cores / write;
  if (out) {
    fmt::print(out, "checkpoint: {:.2f}M values (student + AdamW m, v), file {:.1f} MB, written by {} rank(s){}\n",
               values / 1e6, bytes / 1e6, comm.size(), comm.size() > 1 ? " into one file" : "");
    fmt::print(out, "checkpoint write: median {:.3f} s of {} (min {:.3f}, max {:.3f}): {:.0f} MB/s, CRC-32s, fsync "
               "and rename included\n", write, writes, *std::min_element(write_s.begin(), write_s.end()),
               *std::max_element(write_s.begin(), write_s.end()), bytes / 1e6 / write);
    fmt::print(out, "checkpoint read: a resume's (model + moment shard, every byte's CRC-32 checked) median {:.3f} s "
               "from disk (of {}), {:.3f} s from the page cache (of 3); inspect --verify of the whole file {:.3f} s\n",
               read_disk_s, kBenchDiskReads, read_s, verify_s);
    fmt::print(out, "checkpoint stall: written in the background over {} step(s) of {:.3f} s: {:.3f} s more than the "
               "plain steps ({:.2f} steps, {:.1f}% of the write time); of it, waiting in the checkpoint's calls "
               "{:.3f} s ({:.1f}%): start {:.3f} s (layout, copies of the small state), update held {:.3f} s "
               "(copying {:.0f} MB not yet written, or waiting for the writer), completion {:.3f} s; the rest is "
               "the write's load on the cores training uses: its thread's CPU time {:.3f} s (copy, CRCs, system "
               "calls) (medians of {})\n", all.steps, all.plain_step, stall, stall / all.plain_step,
               100.0 * stall / write, block, 100.0 * block / write, all.start, all.held, all.taken_back_mb,
               all.finish, all.writer_cpu, writes);
    fmt::print(out, "checkpoint stall floor: the same {:.0f} MB written by a bare thread (8 MiB O_DIRECT writes from "
               "the trainer's memory, no CRC, no HDF5; one after each checkpoint above) while training: {:.3f} s more "
               "than the plain steps ({:.1f}% of the write time), what the disk costs the training here whoever "
               "writes; each checkpoint's stall less its bare write's: {:.3f} s ({:.1f}%), what kdtrain adds\n",
               double(rank_bytes) / 1e6, all.floor, 100.0 * all.floor / write, all.over_floor,
               100.0 * all.over_floor / write);
    fmt::print(out, "checkpoint core time: what a write added to the machine's core time over the plain steps "
               "before it (/proc/stat, {} cores, in ticks of {:.3f} s per core, medians): taken from the cores by the host (steal, reported or "
               "not: wall time x cores less every field) {:.3f} s, the kernel's {:.3f} s; the bare write: {:.3f} s "
               "and {:.3f} s. The host's take over the cores is {:.1f}% of the write time ({:.1f}% for the bare "
               "write): a stall no writer in the machine can avoid\n",
               cores, clock.tick_s, all.cost.host, all.cost.kernel, all.floor_cost.host, all.floor_cost.kernel, 100.0 * host_frac,
               100.0 * floor_host_frac);
    if (threads > 1) {
      fmt::print(out, "checkpoint stall with a core left to the writer (training on {} thread(s), steps of {:.3f} s): "
                 "{:.3f} s more than the plain steps ({:.1f}% of the write time), waiting in its calls {:.3f} s\n",
                 threads - 1, spare.plain_step, spare.stall, 100.0 * spare.stall / write, spare.block);
    }
    fmt::print(out, "RESULT impl=kdtrain checkpoint_mb={:.1f} write_s={:.3f} write_mb_s={:.0f} verify_s={:.3f} "
               "read_s={:.3f} read_disk_s={:.3f} stall_s={:.3f} stall_steps={:.2f} stall_frac={:.3f} "
               "block_s={:.3f} block_frac={:.3f} start_s={:.3f} held_s={:.3f} taken_back_mb={:.0f} writer_cpu_s={:.3f} "
               "spare_stall_frac={} stall_floor_s={:.3f} stall_floor_frac={:.3f} stall_over_floor_frac={:.3f} "
               "stall_host_s={:.3f} stall_kernel_s={:.3f} stall_host_frac={:.3f} floor_host_s={:.3f} "
               "floor_kernel_s={:.3f} floor_host_frac={:.3f} cores={} ranks={}\n", bytes / 1e6, write, bytes / 1e6 / write, verify_s, read_s,
               read_disk_s, stall, stall / all.plain_step, stall / write, block, block / write, all.start, all.held,
               all.taken_back_mb, all.writer_cpu, threads > 1 ? fmt::format("{:.3f}", spare.stall / write) : "none", all.floor,
               all.floor / write, all.over_floor / write, all.cost.host, all.cost.kernel, host_frac,
               all.floor_cost.host, all.floor_cost.kernel, floor_host_frac, cores, comm.size());
  }
  comm.barrier();
  if (comm.rank() == 0) {
    std::error_code ec;
    if (made) {
      std::filesystem::remove_all(where, ec);
    } else {
      for (int i = 0; i < writes; ++i) {
        std::filesystem::remove(fmt::format("{}/step-{:08d}.h5", where, i), ec);
        std::filesystem::remove(fmt::format("{}/stall-{}.h5", where, i), ec);
        std::filesystem::remove(fmt::format("{}/spare-{}.h5", where, i), ec);
      }
      std::filesystem::remove(fmt::format("{}/{}", where, kBenchFloorFile), ec);
    }
  }
}

}  // namespace kd::cli
