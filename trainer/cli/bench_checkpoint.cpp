#include "trainer/cli/bench_checkpoint.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/config/config.h"
#include "trainer/dist/comm.h"
#include "trainer/setup/provenance.h"
#include "trainer/run/trainer_state.h"
#include "base/errors.h"

namespace kd::cli {

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds `f` takes on the slowest rank (barriers around it).
template <class F>
double timed_on_all(dist::Comm& comm, F&& f) {
  comm.barrier();
  const double t0 = omp_get_wtime();
  f();
  comm.barrier();
  return omp_get_wtime() - t0;
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

}  // namespace

void bench_checkpoint(Trainer& trainer, const Config& cfg, data::BatchSource& source, double median_step,
                      const std::string& dir, std::FILE* out) {
  dist::Comm& comm = trainer.comm();
  bool made = false;
  const std::string where = shared_dir(comm, dir, made);
  ckpt::CheckpointContents c;
  if (comm.rank() == 0) {
    c.kind = "train";
    c.config_yaml = config_to_yaml(cfg);
    c.provenance = runtime_provenance(omp_get_max_threads());
    c.state = {{"step", trainer.steps_done()}, {"adam_step", trainer.optimizer().steps_taken()}};
  }
  add_trainer_tensors(trainer, false, c);
  const double values = double(trainer.student_table().total()) * 3;  // model, m, v
  const int writes = kBenchCheckpointWrites;
  std::vector<double> write_s;
  std::string path;
  for (int i = 0; i < writes; ++i) {
    path = fmt::format("{}/step-{:08d}.h5", where, i);
    write_s.push_back(timed_on_all(comm, [&] { ckpt::write_checkpoint(path, c, &comm); }));
  }
  const double bytes = double(std::filesystem::file_size(path));
  std::string problem;
  const double verify_s = timed_on_all(comm, [&] { problem = ckpt::CheckpointReader(path).verify(); });
  KD_ASSERT(problem.empty(), "the benchmark's own checkpoint does not verify: {}", problem);
  // a resume's read: open (manifest, attributes checked), the whole model and this rank's
  // moment shard, every chunk checked as read, into the live trainer (the same values it
  // holds, so the timing below continues unchanged); median of 3
  std::vector<double> reads;
  for (int i = 0; i < 3; ++i) {
    reads.push_back(timed_on_all(comm, [&] { read_model_and_moments(ckpt::CheckpointReader(path), trainer, false); }));
  }
  const double read_s = median_of(reads);

  // The stall: steps with a checkpoint written after each, against the plain step.
  std::vector<double> with_ckpt;
  for (int i = 0; i < writes; ++i) {
    with_ckpt.push_back(timed_on_all(comm, [&] {
      trainer.step(source);
      ckpt::CheckpointContents ci = c;
      ci.tensors.clear();
      add_trainer_tensors(trainer, false, ci);
      ckpt::write_checkpoint(fmt::format("{}/stall-{}.h5", where, i), ci, &comm);
    }));
  }
  const double stall = std::max(0.0, median_of(with_ckpt) - median_step);
  // what a background writer would still stall for: copying the state to a snapshot
  const Trainer::MomentShard ms = trainer.moment_shard();
  std::vector<float> snap(trainer.student_table().total() + 2 * (ms.end - ms.begin));
  const double snapshot_s = timed_on_all(comm, [&] {
    std::memcpy(snap.data(), trainer.student_params(), trainer.student_table().total() * sizeof(float));
    std::memcpy(snap.data() + trainer.student_table().total(), ms.m, (ms.end - ms.begin) * sizeof(float));
    std::memcpy(snap.data() + trainer.student_table().total() + (ms.end - ms.begin), ms.v,
                (ms.end - ms.begin) * sizeof(float));
  });
  const double write = median_of(write_s);
  if (out) {
    fmt::print(out, "checkpoint: {:.2f}M values (student + AdamW m, v), file {:.1f} MB, written by {} rank(s){}\n",
               values / 1e6, bytes / 1e6, comm.size(), comm.size() > 1 ? " collectively (MPI-IO)" : "");
    fmt::print(out, "checkpoint write: median {:.3f} s of {} (min {:.3f}, max {:.3f}): {:.0f} MB/s, fsync and rename "
               "included\n", write, writes, *std::min_element(write_s.begin(), write_s.end()),
               *std::max_element(write_s.begin(), write_s.end()), bytes / 1e6 / write);
    fmt::print(out, "checkpoint read: a resume's (model + moment shard, every chunk's CRC-32 checked as read) median "
               "{:.3f} s of 3; inspect --verify of the whole file {:.3f} s\n", read_s, verify_s);
    fmt::print(out, "checkpoint stall: step + write {:.3f} s against a step of {:.3f} s: {:.3f} s per checkpoint "
               "({:.2f} steps); at checkpoint_every=100 that is {:.2f}% of training time\n", median_of(with_ckpt),
               median_step, stall, stall / median_step, 100.0 * stall / (100 * median_step + stall));
    fmt::print(out, "checkpoint written between steps (Debian's HDF5 is not thread-safe and a collective MPI-IO write "
               "from a second thread needs MPI_THREAD_MULTIPLE); a background write from a snapshot would stall "
               "for the copy alone: {:.3f} s\n", snapshot_s);
    fmt::print(out, "RESULT impl=kdtrain checkpoint_mb={:.1f} write_s={:.3f} write_mb_s={:.0f} verify_s={:.3f} "
               "read_s={:.3f} stall_s={:.3f} stall_steps={:.2f} snapshot_s={:.3f} ranks={}\n", bytes / 1e6, write,
               bytes / 1e6 / write, verify_s, read_s, stall, stall / median_step, snapshot_s, comm.size());
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
      }
    }
  }
}

}  // namespace kd::cli
