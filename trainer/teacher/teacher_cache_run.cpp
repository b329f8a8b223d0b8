#include "trainer/teacher/teacher_cache_run.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "trainer/dist/comm.h"
#include "trainer/distill/bf16_teacher.h"
#include "trainer/util/progress.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

namespace kd {

namespace fs = std::filesystem;

std::string parameters_hash(const float* params, std::size_t n) {
  return fmt::format("{:016x}", fnv1a(params, n * sizeof(float)));
}

CacheIdentity run_cache_identity(const Config& cfg, const Provenance& inputs, const std::string& teacher_hash,
                                 int kd_vocab) {
  auto get = [&](const char* k) {
    const auto it = inputs.find(k);
    return it == inputs.end() ? std::string() : it->second;
  };
  std::string data = get("train_data_hash");
  if (cfg.data.kind != DataKind::shards) {  // a synthetic stream is its description
    data = fmt::format("synthetic kind {} vocab {} support {}", int(cfg.data.kind), cfg.model.vocab,
                       cfg.data.markov_support);
  }
  return CacheIdentity{teacher_hash, get("tokenizer_hash"), data, cfg.train.seq_len,
                       cfg.data.order_seed(cfg.train.seed), kd_vocab};
}

namespace {

std::vector<double> cache_temperatures(const Config& cfg) {
  std::vector<double> t = cfg.distill.cache_temperatures;
  if (t.empty()) t = {1.0, cfg.distill.temperature};
  std::sort(t.begin(), t.end());
  t.erase(std::unique(t.begin(), t.end()), t.end());
  return t;
}

std::int64_t run_sequences(const Config& cfg) {
  return cfg.train.steps * std::int64_t(cfg.train.batch_size) * cfg.train.grad_accum;
}

}  // namespace

RunCache open_run_cache(const RunInputs& in) {
  const Config& cfg = in.cfg;
  RunCache rc;
  rc.cache = TeacherCache::open(cfg.teacher.cache);
  const TeacherCache& c = *rc.cache;
  const std::string teacher = in.teacher ? parameters_hash(in.teacher->params.data(), in.teacher->params.size())
                                         : c.identity().teacher;
  const int kd_vocab = std::min(cfg.model.vocab, c.identity().kd_vocab);
  const CacheIdentity mine = run_cache_identity(cfg, in.provenance, teacher, kd_vocab);
  const std::string diff = c.identity().difference(mine);
  KD_CHECK_INPUT(diff.empty() && c.stored_hash() == mine.hash(),
                 "teacher.cache {} was made for another run: {} (cache hash {:016x}, this run's {:016x})",
                 cfg.teacher.cache, diff.empty() ? "hash" : diff, c.stored_hash(), mine.hash());
  const auto& temps = c.shape().temperatures;
  const double t = cfg.distill.temperature;
  const auto it = std::find_if(temps.begin(), temps.end(), [t](double x) { return std::abs(x - t) <= 1e-12 * t; });
  std::string listed;
  for (const double x : temps) listed += fmt::format("{}{}", listed.empty() ? "" : ", ", x);
  KD_CHECK_INPUT(it != temps.end(),
                 "distill.temperature {} is not among teacher.cache {}'s temperatures [{}]: remake the cache with "
                 "distill.cache_temperatures listing it", t, cfg.teacher.cache, listed);
  rc.temperature_index = int(it - temps.begin());
  KD_CHECK_INPUT(c.shape().sequences >= run_sequences(cfg),
                 "teacher.cache {} holds {} sequences; this run reads {} (train.steps · batch_size · grad_accum)",
                 cfg.teacher.cache, c.shape().sequences, run_sequences(cfg));
  KD_CHECK_INPUT(c.shape().seq == cfg.train.seq_len, "teacher.cache {} has sequences of {} tokens; train.seq_len is {}",
                 cfg.teacher.cache, c.shape().seq, cfg.train.seq_len);
  return rc;
}

void write_teacher_cache(const RunInputs& in, dist::Comm& world, const std::string& out_dir, int threads) {
  const bool leader = world.rank() == 0;
  const Config& cfg = in.cfg;
  const auto& tr = cfg.train;
  ParamTable ttable;
  const LlamaLayout teacher(cfg.teacher.spec, ttable);
  const int kd_vocab = std::min(cfg.model.vocab, cfg.teacher.spec.vocab);
  CacheShape shape;
  shape.k = std::min(cfg.distill.top_k, kd_vocab);
  shape.seq = tr.seq_len;
  shape.batch = tr.batch_size;
  shape.sequences = run_sequences(cfg);
  shape.temperatures = cache_temperatures(cfg);
  shape.bf16 = cfg.distill.cache_bf16;
  const CacheIdentity id = run_cache_identity(
      cfg, in.provenance, parameters_hash(in.teacher->params.data(), in.teacher->params.size()), kd_vocab);
  TeacherCacheWriter writer(out_dir, world.rank(), world.size(), id, shape, in.teacher->path);

  const std::unique_ptr<data::BatchSource> source = make_stream(cfg, in.train_shard, Stream::train);
  const bool indexed = dynamic_cast<data::IndexedSource*>(source.get()) != nullptr;
  TeacherTopK topk(teacher, tr.batch_size, tr.seq_len, threads, shape.k, kd_vocab, shape.temperatures,
                   cfg.distill.logit_chunk_rows);
  std::unique_ptr<Bf16Teacher> bf16;
  if (cfg.teacher.bf16) {  // the cache then holds the bf16 teacher's logits (its hash: the float weights)
    bf16 = std::make_unique<Bf16Teacher>(teacher, in.teacher->params.data());
    topk.set_hook(bf16.get());
  }
  const std::size_t m = std::size_t(tr.batch_size) * tr.seq_len;
  std::vector<std::int32_t> tokens(m), labels(m), indices(m * std::size_t(shape.k));
  std::vector<float> values(indices.size()), lse(m * shape.temperatures.size());
  const std::int64_t batches = shape.sequences / shape.batch;
  Progress progress(batches, std::max<int>(1, int(batches / 10)), leader ? stdout : nullptr);
  std::string temps;
  for (const double t : shape.temperatures) temps += fmt::format("{}{}", temps.empty() ? "" : ",", t);
  progress.line(fmt::format("cache-teacher: {} ({} parameters) over {} sequences of {} tokens -> {} | top-{} of {} "
                            "logits, {} values, temperatures {} | {} rank(s), {} thread(s) each",
                            in.teacher->path, in.teacher->params.size(), shape.sequences, shape.seq, out_dir, shape.k,
                            kd_vocab, shape.bf16 ? "bf16" : "f32", temps,
                            world.size(), threads));
  const double t0 = omp_get_wtime();
  for (std::int64_t g = 0; g < batches; ++g) {
    const bool mine = g % world.size() == world.rank();
    if (!mine && indexed) continue;  // an indexed source is read at this rank's batches only
    if (indexed) source->seek(g * shape.batch, tr.seq_len);
    source->next(tokens.data(), labels.data(), tr.batch_size, tr.seq_len);
    if (!mine) continue;
    topk.run(in.teacher->params.data(), tokens.data(), values.data(), indices.data(), lse.data());
    writer.write(g, values.data(), indices.data(), lse.data(), tokens.data());
    const double el = omp_get_wtime() - t0;
    progress.step(g + 1, fmt::format("micro-batch {}", g + 1), double(m) * double(g + 1) / el, el);
  }
  writer.finish();
  world.barrier();
  progress.finish();
  if (leader) {
    std::uintmax_t bytes = 0;
    for (const auto& e : fs::directory_iterator(out_dir)) bytes += e.file_size();
    progress.line(fmt::format("done: {} sequences in {} shard(s), {:.1f} MB, in {}; hash {:016x}", shape.sequences,
                              world.size(), double(bytes) / 1e6, format_duration(omp_get_wtime() - t0), id.hash()));
  }
}

}  // namespace kd
