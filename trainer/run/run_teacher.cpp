#include "trainer/run/run_teacher.h"

#include <fmt/format.h>

#include <memory>

#include "base/errors.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/distill/teacher_tp.h"
#include "trainer/teacher/teacher_cache_run.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/teacher_pretrain.h"

namespace kd {

void connect_teacher_targets(RunInputs& in, Trainer& trainer, dist::Comm& world, const RunGroups& g) {
  if (!trainer.uses_topk_targets()) return;
  const Config& cfg = in.cfg;
  if (!cfg.teacher.cache.empty()) {
    const RunCache rc = open_run_cache(in);
    trainer.set_targets(std::make_unique<CacheTargets>(rc.cache, rc.temperature_index, cfg.teacher.cache));
    if (in.teacher) in.teacher->params = AlignedBuffer<float>();  // only its hash was needed
    return;
  }
  const int kd_vocab = std::min(cfg.model.vocab, cfg.teacher.spec.vocab);
  trainer.set_targets(std::make_unique<RemoteTeacherTargets>(world, g.layout.teacher_of(g.dp->rank()),
                                                             teacher_rank_k(cfg, kd_vocab), kd_vocab));
}

void load_teacher(RunInputs& in, Trainer& trainer, const RunGroups& g, Progress& progress) {
  const Config& cfg = in.cfg;
  if (trainer.uses_topk_targets()) {
    progress.line("teacher: " + trainer.targets()->describe());
  } else if (in.teacher && g.tp_group) {
    // this rank's rows and columns straight from the file; a quantized teacher (codes in
    // another group) is read whole, dequantized, then cut
    const int tpn = cfg.parallel.tensor_parallel;
    const ckpt::CheckpointReader reader(in.teacher->path);
    const bool quantized = reader.kind() == "quantized";
    if (quantized) in.teacher = load_model(in.teacher->path);
    const TeacherShard shard = quantized
                                   ? shard_teacher(*in.teacher->layout, in.teacher->params.data(), tpn, g.tp_group->rank())
                                   : read_teacher_shard(reader, cfg.teacher.spec, tpn, g.tp_group->rank());
    KD_ASSERT(shard.params.size() == trainer.teacher_table().total(), "teacher shard of {} values for a table of {}",
              shard.params.size(), trainer.teacher_table().total());
    AlignedBuffer<float> mine(shard.params.size());
    std::copy(shard.params.begin(), shard.params.end(), mine.data());
    trainer.adopt_teacher_params(std::move(mine));
    const bool vocab_parallel = cfg.distill.divergence == kern::Divergence::forward_kl &&
                                cfg.teacher.spec.vocab == cfg.model.vocab;
    progress.line(fmt::format("teacher: {} (step {}) tensor-parallel over {} ranks: {} heads, {} KV groups, d_ff {} "
                              "and a vocabulary slice per rank ({} of its {} parameters); {}", in.teacher->path,
                              in.teacher->step, tpn, shard.spec.n_heads, shard.spec.n_kv_heads, shard.spec.d_ff,
                              shard.params.size(), in.teacher->table.total(),
                              vocab_parallel ? "student head and KD loss vocab-parallel"
                                             : "teacher logits gathered per chunk (only forward KL over equal "
                                               "vocabularies runs vocab-parallel)"));
    in.teacher->params = AlignedBuffer<float>();  // the whole teacher is no longer needed here
  } else if (in.teacher) {
    // the loaded weights move to the trainer: one copy of the teacher in memory (a
    // quantized teacher's are already dequantized)
    trainer.adopt_teacher_params(std::move(in.teacher->params));
    progress.line(fmt::format("teacher: {} (step {}, {} parameters)", in.teacher->path, in.teacher->step,
                              trainer.teacher_table().total()));
  } else if (cfg.has_teacher && cfg.distill.teacher_pretrain_steps > 0 && !in.resume_from) {
    const auto source = make_stream(cfg, in.train_shard, Stream::teacher_pretrain);
    const double ce = pretrain_teacher(cfg, cfg.distill.teacher_pretrain_steps, *source, trainer.teacher_params());
    progress.line(fmt::format("teacher: pretrained {} steps on labels, last CE {:.4f}",
                              cfg.distill.teacher_pretrain_steps, ce));
  }
}

}  // namespace kd
