// kdtrain bench: times the full KD step (teacher forward, student forward + loss,
// backward, optimizer) with the analytic FLOP count of the PyTorch reference script
// (scripts/torch_kd_ref.py), so that both print comparable tokens/s, GFLOP/s and MFU.
// Under mpirun every rank runs the step data-parallel (the same global batch); rank 0
// prints, with the communication per step: bytes each rank sends in the collectives and
// the time spent waiting in them (which includes waiting for a slower rank).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "data/synthetic.h"
#include "trainer/cli/bench_checkpoint.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/sgemm_peak.h"
#include "trainer/setup/backend.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

namespace kd::cli {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// As in the reference: dense matmul FLOPs, causal mask not halved.
double train_flops(const ModelSpec& s, double tokens, int seq) {
  const double attn_fwd = 4.0 * s.n_layers * seq * double(s.d_model) * tokens;
  return 6.0 * double(s.matmul_params()) * tokens + 3.0 * attn_fwd;
}
double forward_flops(const ModelSpec& s, double tokens, int seq) {
  const double attn_fwd = 4.0 * s.n_layers * seq * double(s.d_model) * tokens;
  return 2.0 * double(s.matmul_params()) * tokens + attn_fwd;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string s;
  std::getline(f, s);
  return s;
}

}  // namespace

int run_bench(const BenchOptions& o) {
  // --checkpoint-dir: bench writes and then deletes files of its own names there, so never
  // over files it did not make (a run's checkpoints/, say). Every rank checks the same directory.
  for (int i = 0; o.checkpoint && !o.checkpoint_dir.empty() && i < kBenchCheckpointWrites; ++i) {
    for (const std::string& f : {fmt::format("{}/step-{:08d}.h5", o.checkpoint_dir, i),
                                 fmt::format("{}/stall-{}.h5", o.checkpoint_dir, i),
                                 fmt::format("{}/spare-{}.h5", o.checkpoint_dir, i),
                                 fmt::format("{}/{}", o.checkpoint_dir, kBenchFloorFile)}) {
      KD_CHECK_INPUT(!std::filesystem::exists(f), "bench --checkpoint-dir {}: {} exists, and bench would write over "
                     "it and then delete it: give an empty or new directory", o.checkpoint_dir, f);
    }
  }
  const std::unique_ptr<dist::Comm> world = dist::make_world_comm();
  // ranks other than 0 print nothing
  std::FILE* out = world->rank() == 0 ? stdout : std::fopen("/dev/null", "w");
  std::vector<std::string> ov = o.overrides;
  if (o.threads > 0) ov.push_back(fmt::format("train.threads={}", o.threads));
  Config cfg = load_config(o.config, ov);
  if (o.student_only) cfg.has_teacher = false;
  KD_CHECK_INPUT(cfg.parallel.teacher_ranks == 0 && cfg.parallel.tensor_parallel == 1 &&
                     (!cfg.has_teacher || cfg.teacher.cache.empty()),
                 "bench times the data-parallel step with the teacher in every rank; parallel.teacher_ranks, "
                 "parallel.tensor_parallel and teacher.cache are for distill");
  const std::string backend = start_backend(cfg, node_local_rank());  // before any work
  const int threads = set_threads(cfg.train.threads, "train.threads");
  double peak = o.peak_gflops;
  if (peak <= 0 && world->size() == 1) {
    fmt::print("measuring the sgemm peak (no --peak-gflops given)...\n");
    peak = measure_sgemm_peak_in_child(1.0);
  }
  world->set_timeout(cfg.parallel.watchdog_min_s);
  std::string comm_note;
  const std::unique_ptr<dist::Comm> nccl = make_trainer_comm(cfg, *world, &comm_note);  // runtime.comm
  if (!comm_note.empty()) fmt::print(out, "{}\n", comm_note);
  Trainer trainer(cfg, nccl ? nccl.get() : world.get());
  const auto& tr = cfg.train;
  const double tokens = double(tr.batch_size) * tr.seq_len * tr.grad_accum;
  const double f_s = train_flops(cfg.model, tokens, tr.seq_len);
  const double f_t = cfg.has_teacher ? forward_flops(cfg.teacher.spec, tokens, tr.seq_len) : 0.0;
  const double f_total = f_s + f_t;
  const std::string variant = cfg.has_teacher ? "kd" : "student-only";

  fmt::print(out, "kdtrain bench: variant={} config={} ranks={} threads={} B={} T={} V={} accum={}\n", variant,
             o.config, world->size(), threads, tr.batch_size, tr.seq_len, cfg.model.vocab, tr.grad_accum);
  fmt::print(out, "blas: {}\n", blas_description());
  if (!backend.empty()) fmt::print(out, "{}; collectives: {}\n", backend, trainer.comm().describe());
  fmt::print(out, "student N_matmul={:.3f}M  teacher N_matmul={:.3f}M\n",
             cfg.model.matmul_params() / 1e6,
             cfg.has_teacher ? cfg.teacher.spec.matmul_params() / 1e6 : 0.0);
  fmt::print(out, "FLOPs/step: student train {:.2f} G + teacher fwd {:.2f} G = {:.2f} G\n", f_s / 1e9,
             f_t / 1e9, f_total / 1e9);
  fmt::print(out, "activation arena: {:.1f} MiB\n", trainer.arena_bytes() / 1048576.0);
  fmt::print(out, "loadavg before: {}\n", loadavg());

  // Random tokens, four batches cycled, as the reference does.
  data::SyntheticTokens source(data::SyntheticKind::random, cfg.model.vocab, 1,
                               std::uint64_t(tr.seed), std::uint64_t(tr.seed));
  std::vector<double> times, tf, sf, ls, bw, op, comm;
  double comm_bytes = 0;
  long faults_timed = 0;
  for (int i = 0; i < cfg.bench.warmup + cfg.bench.steps; ++i) {
    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    const StepReport r = trainer.step(source);
    rusage after{};
    getrusage(RUSAGE_SELF, &after);
    const bool timed = i >= cfg.bench.warmup;
    fmt::print(out, "{} {}: loss {:.4f} {:.0f} ms\n", timed ? "step" : "warmup",
               timed ? i - cfg.bench.warmup : i, r.loss.loss, r.seconds * 1e3);
    std::fflush(out);
    if (!timed) continue;
    faults_timed += after.ru_minflt - before.ru_minflt;
    times.push_back(r.seconds);
    tf.push_back(r.phases.teacher_fwd);
    sf.push_back(r.phases.student_fwd);
    ls.push_back(r.phases.loss);
    bw.push_back(r.phases.backward);
    op.push_back(r.optim_seconds);
    comm.push_back(r.comm_seconds);
    comm_bytes = r.comm_bytes;
  }
  const double med = median(times);
  const double tps = tokens / med;
  const double gfs = f_total / med / 1e9;
  const double mfu = peak > 0 ? gfs / peak : std::numeric_limits<double>::quiet_NaN();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  fmt::print(out,
      "phase medians (ms): teacher_fwd={:.0f} student_fwd={:.0f} loss(heads+CE+KD+head bwd)={:.0f} "
      "backward={:.0f} optim={:.0f}\n",
      median(tf) * 1e3, median(sf) * 1e3, median(ls) * 1e3, median(bw) * 1e3, median(op) * 1e3);
  fmt::print(out, "median step {:.1f} ms (min {:.1f}, max {:.1f}); tokens/s {:.1f}; achieved {:.1f} GFLOP/s\n",
             med * 1e3, *std::min_element(times.begin(), times.end()) * 1e3,
             *std::max_element(times.begin(), times.end()) * 1e3, tps, gfs);
  fmt::print(out, "MFU {:.3f} of sgemm peak {:.1f} GFLOP/s\n", mfu, peak);
  fmt::print(out, "peak RSS {} KiB (rank 0); minor page faults in the timed steps: {}\n", ru.ru_maxrss, faults_timed);
  if (world->size() > 1) {
    fmt::print(out, "communication per step: {:.2f} MB sent per rank (ring estimate: reduce-scatter + all-gather of "
               "{} floats), median {:.1f} ms in collectives\n", comm_bytes / 1e6,
               dist::zero_shard(trainer.student_table().total(), world->size()) * world->size(), median(comm) * 1e3);
  }
  fmt::print(out,
      "RESULT impl=kdtrain variant={} step_ms={:.1f} tokens_per_s={:.1f} gflop_per_step={:.2f} "
      "gflops={:.1f} mfu={:.3f} peak_rss_kib={} threads={} ranks={} comm_mb={:.2f} comm_ms={:.1f}\n",
      variant, med * 1e3, tps, f_total / 1e9, gfs, mfu, ru.ru_maxrss, threads, world->size(), comm_bytes / 1e6,
      median(comm) * 1e3);
  std::fflush(out);
  if (o.checkpoint) {
    bench_checkpoint(trainer, cfg, source, o.checkpoint_dir, world->rank() == 0 ? out : nullptr);
    std::fflush(out);
  }
  if (out != stdout) std::fclose(out);
  return 0;
}

}  // namespace kd::cli
