#include "trainer/teacher/teacher_ranks.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "data/dp_source.h"
#include "trainer/distill/bf16_teacher.h"
#include "trainer/distill/teacher_cache.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

namespace kd {

namespace {

constexpr int kFloatTag = 7100, kIntTag = 7101;

std::uint64_t tokens_hash(const std::int32_t* tokens, std::size_t n) { return fnv1a(tokens, n * sizeof(std::int32_t)); }

// The last two words of an int32 message: the FNV-1a of the micro-batch's tokens.
void put_tokens_hash(std::vector<std::int32_t>& words, const std::int32_t* tokens, std::size_t m) {
  const std::uint64_t h = tokens_hash(tokens, m);
  std::memcpy(words.data() + words.size() - 2, &h, sizeof(h));
}
bool tokens_hash_matches(const std::vector<std::int32_t>& words, const std::int32_t* tokens, std::size_t m) {
  std::uint64_t h = 0;
  std::memcpy(&h, words.data() + words.size() - 2, sizeof(h));
  return h == tokens_hash(tokens, m);
}

}  // namespace

std::vector<int> TeacherRanks::students_of(int teacher_world_rank) const {
  std::vector<int> s;
  for (int r = 0; r < students(); ++r) {
    if (teacher_of(r) == teacher_world_rank) s.push_back(r);
  }
  return s;
}

TeacherRanks teacher_ranks(const Config& cfg, int world) {
  const int n = cfg.parallel.teacher_ranks;
  KD_CHECK_INPUT(n == 0 || n < world,
                 "parallel.teacher_ranks is {} but the job has {} rank(s): at least one rank must train the student "
                 "(launch more ranks, e.g. mpirun -np {})", n, world, n + 1);
  return TeacherRanks{world, n};
}

int teacher_rank_k(const Config& cfg, int kd_vocab) {
  return cfg.parallel.teacher_sends == TeacherSends::logits ? 0 : std::min(cfg.distill.top_k, kd_vocab);
}

namespace {
// Full logits travel as int32 words holding two bfloat16 values each (Comm sends float and
// int32); an odd count is padded with one value.
std::size_t bf16_words(std::size_t values) { return (values + 1) / 2; }
}  // namespace

RemoteTeacherTargets::RemoteTeacherTargets(dist::Comm& world, int teacher_world_rank, int k, int kd_vocab)
    : world_(world), from_(teacher_world_rank), k_(k), kd_vocab_(kd_vocab) {}

void RemoteTeacherTargets::fetch(std::int64_t first, int batch, int seq, const std::int32_t* tokens,
                                 TopKTargets& out) {
  const std::size_t m = std::size_t(batch) * std::size_t(seq), mk = m * std::size_t(k_);
  auto check_tokens = [&] {
    if (!tokens_hash_matches(ints_, tokens, m)) {
      throw RuntimeFailure(fmt::format("teacher rank {} sent the targets of other tokens than sequences {}..{} "
                                       "(its data stream and this rank's differ)", from_, first, first + batch - 1));
    }
  };
  if (k_ == 0) {  // full logits
    const std::size_t n = m * std::size_t(kd_vocab_);
    ints_.resize(bf16_words(n) + 2);
    world_.recv(ints_, from_, kIntTag);
    check_tokens();
    out.k = 0;
    out.kd_vocab = kd_vocab_;
    out.full_bf16.resize(n);
    std::memcpy(out.full_bf16.data(), ints_.data(), n * sizeof(std::uint16_t));
    return;
  }
  floats_.resize(mk + m);
  ints_.resize(mk + 2);
  world_.recv(floats_, from_, kFloatTag);
  world_.recv(ints_, from_, kIntTag);
  check_tokens();
  out.resize(m, k_);
  out.kd_vocab = kd_vocab_;
  std::copy_n(floats_.data(), mk, out.values.data());
  std::copy_n(floats_.data() + mk, m, out.lse.data());
  std::copy_n(ints_.data(), mk, out.indices.data());
}

std::string RemoteTeacherTargets::describe() const {
  if (k_ == 0) return fmt::format("on its own rank {} (full logits in bfloat16 per position, over MPI)", from_);
  return fmt::format("on its own rank {} (top-{} logits and log-sum-exp per position, over MPI)", from_, k_);
}

void serve_as_teacher(RunInputs& in, dist::Comm& world, const TeacherRanks& layout, std::int64_t start_step) {
  const Config& cfg = in.cfg;
  const auto& tr = cfg.train;
  KD_ASSERT(in.teacher && in.teacher->params.size() > 0, "a teacher rank without the teacher's weights");
  const LlamaLayout& teacher = *in.teacher->layout;
  const int kd_vocab = std::min(cfg.model.vocab, cfg.teacher.spec.vocab);
  const int k = teacher_rank_k(cfg, kd_vocab);
  const int threads = omp_get_max_threads();
  std::unique_ptr<Bf16Teacher> bf16;
  if (cfg.teacher.bf16) {
    bf16 = std::make_unique<Bf16Teacher>(teacher, in.teacher->params.data());
    bf16->release_float_linears(in.teacher->params.data());
  }
  struct Served {
    int student;
    std::unique_ptr<data::BatchSource> inner;
    std::unique_ptr<data::DataParallelSource> slice;
    std::unique_ptr<TeacherTopK> topk;
    std::vector<std::int32_t> tokens, labels, ints;
    std::vector<float> values, lse;
    std::vector<std::uint16_t> logits;  // full-logit messages
  };
  std::vector<Served> served;
  for (const int s : layout.students_of(world.rank())) {
    Served v;
    v.student = s;
    v.inner = make_stream(cfg, in.train_shard, Stream::train);
    v.slice = std::make_unique<data::DataParallelSource>(*v.inner, s, layout.students(), tr.batch_size);
    v.slice->seek(start_step * tr.batch_size * tr.grad_accum, tr.seq_len);
    const int b = v.slice->local_batch();
    v.topk = std::make_unique<TeacherTopK>(teacher, b, tr.seq_len, threads, std::max(k, 1), kd_vocab,
                                           std::vector<double>{cfg.distill.temperature}, cfg.distill.logit_chunk_rows);
    v.topk->set_hook(bf16.get());
    const std::size_t m = std::size_t(b) * tr.seq_len;
    v.tokens.resize(m);
    v.labels.resize(m);
    if (k == 0) {
      v.logits.resize(bf16_words(m * std::size_t(kd_vocab)) * 2, 0);
      v.ints.resize(bf16_words(m * std::size_t(kd_vocab)) + 2);
    } else {
      v.values.resize(m * std::size_t(k) + m);
      v.ints.resize(m * std::size_t(k) + 2);
      v.lse.resize(m);
    }
    served.push_back(std::move(v));
  }
  double slowest = 0;
  for (std::int64_t step = start_step; step < tr.steps; ++step) {
    const double t0 = omp_get_wtime();
    for (int micro = 0; micro < tr.grad_accum; ++micro) {
      for (Served& v : served) {
        const int b = v.slice->local_batch();
        const std::size_t m = std::size_t(b) * tr.seq_len, mk = m * std::size_t(k);
        v.slice->next(v.tokens.data(), v.labels.data(), b, tr.seq_len);
        if (k == 0) {
          v.topk->run_logits(in.teacher->params.data(), v.tokens.data(), v.logits.data());
          const std::size_t words = v.logits.size() / 2;
          std::memcpy(v.ints.data(), v.logits.data(), words * sizeof(std::int32_t));
          put_tokens_hash(v.ints, v.tokens.data(), m);
          world.send(v.ints, v.student, kIntTag);
          continue;
        }
        v.topk->run(in.teacher->params.data(), v.tokens.data(), v.values.data(), v.ints.data(), v.lse.data());
        std::copy_n(v.lse.data(), m, v.values.data() + mk);  // one message: values, then lse
        put_tokens_hash(v.ints, v.tokens.data(), m);
        world.send(v.values, v.student, kFloatTag);
        world.send(v.ints, v.student, kIntTag);
      }
    }
    // a teacher rank waits on its students' steps: its limit follows its own cycle
    slowest = std::max(slowest, omp_get_wtime() - t0);
    world.set_timeout(std::max(cfg.parallel.watchdog_min_s, cfg.parallel.watchdog_step_factor * slowest));
  }
}

}  // namespace kd
