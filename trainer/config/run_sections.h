// The sections of a config that set up the run itself rather than a domain's method: the
// step loop (`train`), the run directory (`run`), `kdtrain bench` and the compute backend
// (`runtime`). The domains' sections live with their code (config.h lists them).
#pragma once

#include <cstdint>
#include <string>

#include "base/schema.h"

namespace kd {

enum class NanPolicy { stop, skip };
// how a background checkpoint keeps the weights and moments it writes (ckpt::StateCopy)
enum class CheckpointCopy { at_update, first, none };

struct TrainSection {
  std::int64_t steps = 100;
  int batch_size = 8;
  int seq_len = 256;
  int grad_accum = 1;
  std::int64_t seed = 1234;
  int threads = 0;
  NanPolicy nan_policy = NanPolicy::stop;
  int log_every = 10;
  double init_std = 0.02;
  std::int64_t eval_every = 0;
  std::int64_t eval_tokens = 0;
  std::int64_t checkpoint_every = 0;
  double checkpoint_minutes = 0;
  int keep_checkpoints = 2;
  CheckpointCopy checkpoint_copy = CheckpointCopy::at_update;
  std::string init_from;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("steps", steps, "optimizer steps", at_least(1));
    v.field("batch_size", batch_size,
            "sequences per micro-batch, over all data-parallel ranks (each takes its slice; the global batch is "
            "batch_size · grad_accum whatever the number of ranks)", between(1, 1 << 20));
    v.field("seq_len", seq_len, "tokens per sequence", between(1, 1 << 20));
    v.field("grad_accum", grad_accum, "micro-batches accumulated per optimizer step", between(1, 1 << 20));
    v.field("seed", seed, "seed of initialisation and data order", at_least(0));
    v.field("threads", threads, "OpenMP/BLAS threads (0 = OMP_NUM_THREADS or all cores)", between(0, 4096));
    v.choice("nan_policy", nan_policy,
             "on a non-finite loss or gradient: stop (exit 3 naming the step and tensor) or skip the step",
             Choices<NanPolicy>{{"stop", NanPolicy::stop}, {"skip", NanPolicy::skip}});
    v.field("log_every", log_every, "steps between progress lines", between(1, 1 << 30));
    v.field("init_std", init_std, "std of the normal initialisation of matrices", above(0));
    v.field("eval_every", eval_every, "steps between validation evaluations (0 = only at the end)", at_least(0));
    v.field("eval_tokens", eval_tokens, "validation tokens per evaluation (0 = the whole validation shard)", at_least(0));
    v.field("checkpoint_every", checkpoint_every, "steps between checkpoints (0 = only at the end)", at_least(0));
    v.field("checkpoint_minutes", checkpoint_minutes,
            "also checkpoint once this many minutes of wall time have passed since the last checkpoint (or the "
            "start), whatever checkpoint_every says; 0 = off", at_least(0));
    v.field("keep_checkpoints", keep_checkpoints, "how many of the newest checkpoints to keep", between(1, 1000));
    v.choice("checkpoint_copy", checkpoint_copy,
             "how a checkpoint written while training goes on keeps the weights and optimizer state it writes: "
             "at_update = written in place, and the next update first copies what is not yet written (the least "
             "CPU); first = the writer copies them all, then writes the copy (the update waits only for the copy; "
             "takes a core meanwhile); none = written in place, the update waits for the disk. at_update and "
             "first may take as much host memory again as this rank's share of the state",
             Choices<CheckpointCopy>{{"at_update", CheckpointCopy::at_update},
                                     {"first", CheckpointCopy::first},
                                     {"none", CheckpointCopy::none}});
    v.field("init_from", init_from, "a checkpoint whose model weights start the run instead of a random init (a "
            "trained model to prune or fine-tune; same model shape); \"\" = random init");
  }
};


struct RunSection {
  std::string dir = "runs";
  std::string name;
  template <class V>
  void visit(V& v) {
    v.field("dir", dir, "parent folder of run directories");
    v.field("name", name, "run name: the run lives in <dir>/<name> (default: the config file's stem)");
  }
};


enum class Backend { cpu, cuda };
enum class GemmMath { fp32, tf32, bf16 };
enum class CommKind { automatic, mpi, nccl };

struct RuntimeSection {
  Backend backend = Backend::cpu;
  GemmMath cuda_math = GemmMath::fp32;
  CommKind comm = CommKind::automatic;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.choice("backend", backend,
             "where the training step runs: cpu (OpenBLAS + OpenMP) or cuda (one GPU per rank: rank i uses GPU "
             "i mod the GPUs visible; the step's micro-batches on the GPU, the optimizer, quantizer state and "
             "masks on the host; docs/gpu.md). A cuda run on a machine without a usable GPU stops before any work "
             "(exit 3)",
             Choices<Backend>{{"cpu", Backend::cpu}, {"cuda", Backend::cuda}});
    v.choice("cuda_math", cuda_math,
             "the CUDA backend's GEMMs: fp32 (IEEE float), tf32 (tensor cores, 10-bit mantissa inputs) or bf16 "
             "(inputs rounded to bfloat16, float sums); master weights stay float32. The teacher's GEMMs run in bf16 "
             "with teacher.bf16, else in this mode",
             Choices<GemmMath>{{"fp32", GemmMath::fp32}, {"tf32", GemmMath::tf32}, {"bf16", GemmMath::bf16}});
    v.choice("comm", comm,
             "the data-parallel collectives: auto (NCCL with the cuda backend and several ranks, else MPI; "
             "falls back to MPI, saying so, when NCCL cannot start), mpi, or nccl (needs backend: cuda; a run "
             "where NCCL cannot start stops before any work, exit 3)",
             Choices<CommKind>{{"auto", CommKind::automatic}, {"mpi", CommKind::mpi}, {"nccl", CommKind::nccl}});
  }
};


struct BenchSection {
  int steps = 6;
  int warmup = 2;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("steps", steps, "timed steps", between(1, 100000));
    v.field("warmup", warmup, "untimed steps first", between(0, 100000));
  }
};

}  // namespace kd
