// kdtrain's configuration: one struct per YAML section, each field named once with its
// doc string and range in a visit(). Loading rejects unknown keys, wrong types and
// out-of-range values before any work starts; validate() rejects bad combinations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/config/schema.h"
#include "trainer/distill/distill_spec.h"
#include "trainer/model/model_spec.h"
#include "trainer/prune/prune_config.h"
#include "trainer/quant/quant_config.h"

namespace kd {

template <class V>
void visit(V& v, ModelSpec& s) {
  using namespace config;
  v.field("vocab", s.vocab, "vocabulary size (rows of the embedding and the head)", between(1, 1 << 24));
  v.field("d_model", s.d_model, "hidden size", between(2, 1 << 16));
  v.field("n_layers", s.n_layers, "number of decoder blocks", between(1, 1024));
  v.field("n_heads", s.n_heads, "attention (query) heads", between(1, 1024));
  v.field("n_kv_heads", s.n_kv_heads, "key/value heads (grouped-query attention; divides n_heads)", between(1, 1024));
  v.field("d_ff", s.d_ff, "SwiGLU inner size", between(1, 1 << 20));
  v.field("tie_embeddings", s.tie_embeddings, "the output head reuses the token embedding");
  v.field("rope_theta", s.rope_theta, "RoPE base frequency", above(0));
  v.field("norm_eps", s.norm_eps, "RMSNorm epsilon", above(0));
  v.field("head_dim", s.head_dim_override, "attention head size (0 = d_model / n_heads; set by structured pruning)",
          between(0, 1 << 16));
  v.field("rope_scaling_factor", s.rope_scaling.factor,
          "Llama 3 RoPE scaling (Hugging Face rope_type llama3): long wavelengths stretched by this factor; 0 = none",
          at_least(0));
  v.field("rope_low_freq_factor", s.rope_scaling.low_freq_factor, "Llama 3 RoPE scaling: low_freq_factor", above(0));
  v.field("rope_high_freq_factor", s.rope_scaling.high_freq_factor, "Llama 3 RoPE scaling: high_freq_factor", above(0));
  v.field("rope_original_context", s.rope_scaling.original_context,
          "Llama 3 RoPE scaling: original_max_position_embeddings", above(0));
}

// The frozen teacher: a kdtrain checkpoint (its shape is read from it), or a shape given
// here (randomly initialised: benchmarks, synthetic tasks with teacher_pretrain_steps).
struct TeacherSection {
  std::string checkpoint;
  std::string cache;
  bool bf16 = false;
  ModelSpec spec;
  template <class V>
  void visit(V& v) {
    v.field("checkpoint", checkpoint, "kdtrain checkpoint of a trained teacher (its model shape overrides the keys below)");
    v.field("cache", cache,
            "a teacher cache made by kdtrain cache-teacher: distill reads its top-k logits instead of running a "
            "teacher (forward KL only; no feature loss); with checkpoint also set, the cache must be of that teacher");
    v.field("bf16", bf16,
            "hold the checkpoint teacher's linear weights in bfloat16 (converted to float32 per GEMM tile): about half "
            "its memory; its logits change by the rounding of the weights");
    kd::visit(v, spec);
  }
};

struct FeatureSection {
  double beta = 0.0;
  kern::FeatureLoss kind = kern::FeatureLoss::mse;
  std::vector<std::pair<int, int>> layers;  // [student_hidden, teacher_hidden]
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("beta", beta, "weight of the feature loss (0 = off)", at_least(0));
    v.choice("kind", kind, "distance between student and projected teacher hidden states",
             Choices<kern::FeatureLoss>{{"mse", kern::FeatureLoss::mse}, {"cosine", kern::FeatureLoss::cosine}});
    v.field("layers", layers,
            "layer map: [student_hidden, teacher_hidden] pairs; index k = residual stream after "
            "block k-1, 0 = embeddings (Hugging Face hidden_states numbering)");
  }
};

struct DistillSection {
  double alpha = 0.5;
  double temperature = 2.0;
  kern::Divergence divergence = kern::Divergence::forward_kl;
  double jsd_beta = 0.5;
  int logit_chunk_rows = 256;
  std::int64_t teacher_pretrain_steps = 0;
  int top_k = 64;
  std::vector<double> cache_temperatures;
  bool cache_bf16 = false;
  FeatureSection feature;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("alpha", alpha, "weight of CE on the labels; the divergence gets 1 - alpha", between(0, 1));
    v.field("temperature", temperature, "softmax temperature T of both models (loss scaled by T^2)", open_between(0, 100));
    v.choice("divergence", divergence,
             "forward_kl: KL(teacher||student) (Hinton); reverse_kl: KL(student||teacher) (MiniLLM); "
             "jsd: generalized Jensen-Shannon (GKD, DistiLLM)",
             Choices<kern::Divergence>{{"forward_kl", kern::Divergence::forward_kl},
                                       {"reverse_kl", kern::Divergence::reverse_kl},
                                       {"jsd", kern::Divergence::jensen_shannon}});
    v.field("jsd_beta", jsd_beta, "teacher weight in the JSD mixture m = beta p + (1-beta) q", open_between(0, 0.999999));
    v.field("logit_chunk_rows", logit_chunk_rows, "token rows whose logits are held at once (both models)", between(1, 1 << 20));
    v.field("teacher_pretrain_steps", teacher_pretrain_steps,
            "train the teacher from scratch on labels for this many steps before distilling "
            "(synthetic tasks without a trained teacher); 0 = use the teacher as given", at_least(0));
    v.field("top_k", top_k,
            "logits per position a teacher cache keeps (kdtrain cache-teacher; the rest of the vocabulary is "
            "one bucket of the top-k KL); capped at the vocabulary", between(1, 1 << 24));
    v.field("cache_temperatures", cache_temperatures,
            "temperatures kdtrain cache-teacher stores log-sum-exps for (distill then accepts only these); "
            "[] = 1 and distill.temperature", open_between(0, 100));
    v.field("cache_bf16", cache_bf16, "kdtrain cache-teacher stores the top-k values in bfloat16 (half the size)");
    v.section("feature", feature, "hidden-state matching through a learned projection (TinyBERT)");
  }
};

enum class Schedule { constant, cosine, linear };

struct OptimSection {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  std::int64_t warmup_steps = 0;
  Schedule schedule = Schedule::cosine;
  double min_lr_ratio = 0.1;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("lr", lr, "peak learning rate", open_between(0, 10));
    v.field("beta1", beta1, "AdamW first-moment decay", between(0, 0.999999));
    v.field("beta2", beta2, "AdamW second-moment decay", between(0, 0.999999999));
    v.field("eps", eps, "AdamW epsilon", above(0));
    v.field("weight_decay", weight_decay, "decoupled weight decay on tensors flagged decayed", at_least(0));
    v.field("grad_clip", grad_clip, "global gradient-norm clip (0 = off)", at_least(0));
    v.field("warmup_steps", warmup_steps, "linear warmup steps", at_least(0));
    v.choice("schedule", schedule, "decay after warmup, to min_lr_ratio * lr at train.steps",
             Choices<Schedule>{{"constant", Schedule::constant}, {"cosine", Schedule::cosine}, {"linear", Schedule::linear}});
    v.field("min_lr_ratio", min_lr_ratio, "floor of the decay as a fraction of lr", between(0, 1));
  }
};

enum class NanPolicy { stop, skip };

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
    v.field("init_from", init_from, "a checkpoint whose model weights start the run instead of a random init (a "
            "trained model to prune or fine-tune; same model shape); \"\" = random init");
  }
};

enum class DataKind { shards, random, markov, copy };

struct DataSection {
  DataKind kind = DataKind::markov;
  std::string train;
  std::string val;
  std::string format = "auto";
  std::string tokenizer;
  std::int64_t synthetic_eval_batches = 8;
  int markov_support = 4;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.choice("kind", kind,
             "shards: token shards from `kdtrain prepare` (or nanoGPT / llm.c); synthetic: random "
             "(uniform), markov (a fixed random chain), copy (second half repeats the first)",
             Choices<DataKind>{{"shards", DataKind::shards}, {"random", DataKind::random},
                               {"markov", DataKind::markov}, {"copy", DataKind::copy}});
    v.field("train", train, "training token shard (kind: shards)");
    v.field("val", val, "validation token shard (kind: shards)");
    v.field("format", format, "shard format: auto, kdtrain, nanogpt, llmc");
    v.field("tokenizer", tokenizer, "tokenizer.json (default: the one beside data.train, if any)");
    v.field("synthetic_eval_batches", synthetic_eval_batches, "validation batches of a synthetic stream", at_least(1));
    v.field("markov_support", markov_support, "next-token choices per state of the markov chain", between(1, 1 << 20));
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

enum class TeacherSends { topk, logits };

struct ParallelSection {
  int tensor_parallel = 1;
  int teacher_ranks = 0;
  TeacherSends teacher_sends = TeacherSends::topk;
  double watchdog_min_s = 300;
  double watchdog_step_factor = 20;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("tensor_parallel", tensor_parallel,
            "distill: ranks per tensor-parallel teacher group (consecutive ranks; the teacher's KV groups and FFN "
            "neurons split across them, logits vocab-parallel); the student is replicated inside a group and data "
            "parallel across groups; 1 = off", between(1, 1 << 16));
    v.field("teacher_ranks", teacher_ranks,
            "distill: the last N MPI ranks run only the teacher and send each student rank, per micro-batch, the "
            "teacher's top-k logits (distill.top_k) and log-sum-exp; the student ranks never load the teacher "
            "(forward KL only, no feature loss); 0 = every rank runs its own teacher", between(0, 1 << 20));
    v.choice("teacher_sends", teacher_sends,
             "what teacher ranks send per micro-batch: topk (distill.top_k logits + log-sum-exp; forward KL only) or "
             "logits (the full logits in bfloat16, 2 bytes per position and vocabulary entry: any divergence; for "
             "small vocabularies)",
             Choices<TeacherSends>{{"topk", TeacherSends::topk}, {"logits", TeacherSends::logits}});
    v.field("watchdog_min_s", watchdog_min_s,
            "seconds any collective may wait at least before the watchdog aborts the job (exit 3, naming the "
            "collective and the late rank); also the limit before the first step's time is known", above(0));
    v.field("watchdog_step_factor", watchdog_step_factor,
            "the limit is this many times the slowest step so far, when that is above watchdog_min_s", above(0));
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

struct Config {
  bool has_teacher = false;
  TeacherSection teacher;
  ModelSpec model;
  DistillSection distill;
  OptimSection optim;
  TrainSection train;
  DataSection data;
  RunSection run;
  BenchSection bench;
  ParallelSection parallel;
  RuntimeSection runtime;
  bool has_quant = false;
  QuantSection quant;
  bool has_prune = false;
  PruneSection prune;
  template <class V>
  void visit(V& v) {
    v.section("model", model, "the model being trained (for distill: the student)");
    v.optional_section("teacher", has_teacher, teacher, "the frozen teacher (absent: the model trains on labels only)");
    v.section("distill", distill, "the distillation loss");
    v.section("optim", optim, "AdamW, clipping and the learning-rate schedule");
    v.section("train", train, "steps, batch shape, seed, threads, NaN policy");
    v.section("data", data, "training and validation data");
    v.section("run", run, "where the run directory goes");
    v.section("bench", bench, "kdtrain bench");
    v.section("parallel", parallel, "MPI ranks (mpirun / srun): data parallelism and the watchdog");
    v.section("runtime", runtime, "the compute backend (CPU or CUDA) and its math");
    v.optional_section("quant", has_quant, quant,
                       "quantization-aware training (absent: full precision); also kdtrain ptq's defaults");
    v.optional_section("prune", has_prune, prune, "pruning of the model being trained (absent: dense)");
  }

  // Cross-field checks (after loading). Throws InputError naming the keys.
  void validate() const;
  DistillSpec distill_spec() const;
};

// Loads a YAML file, applies `--set a.b=value` overrides, validates. Throws InputError.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
Config load_config_text(const std::string& text, const std::string& name,
                        const std::vector<std::string>& overrides = {});
std::string config_doc();
std::string config_to_yaml(const Config& c);

}  // namespace kd
