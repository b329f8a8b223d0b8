#include "trainer/run/run_resume.h"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <optional>

#include "base/errors.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/run/trainer_state.h"
#include "trainer/setup/run_dir.h"

namespace kd {

namespace {

// The masks and the IMP round of a pruning run; a dense checkpoint starts pruning from its
// weights (not IMP: its rounds count from step 0).
void resume_pruner(const ckpt::CheckpointReader& r, const std::string& path, prune::Pruner& pruner, Progress& progress) {
  if (r.tensor_names("masks").empty()) {
    KD_CHECK_INPUT(!pruner.iterative(), "{}: prune.schedule imp cannot start from a dense checkpoint "
                   "(its rounds, snapshot and LR schedule count from step 0); start a fresh run", path);
    progress.line("prune: the checkpoint has no masks (a dense run): pruning starts from its weights");
    return;
  }
  const std::int64_t step = r.state("step");
  if (pruner.iterative() && r.has_state("imp_round")) {
    const int round = pruner.round_done(step);
    KD_CHECK_INPUT(r.state("imp_round") == round,
                   "{}: the checkpoint is in IMP round {} but the config puts its step {} in round {} "
                   "(prune.rounds, round_steps or rewind_step changed?)", path, r.state("imp_round"), step, round);
  }
  pruner.load_state(r, step);
}

// Everything resume_run restores, from the open checkpoint `r`.
ResumedRun read_checkpoint(const ckpt::CheckpointReader& r, const RunInputs& in, Trainer& trainer,
                           data::BatchSource& source, dist::Comm& dp, Progress& progress) {
  ResumedRun out;
  const Config& cfg = in.cfg;
  const std::string& path = r.path();
  // A float run resumed with a quant section added is QAT fine-tuning: its LSQ scales
  // (absent from the checkpoint) start from the calibrators, their moments from zero.
  const bool fresh_quant = trainer.qat() && !r.has_tensor("quant", "calibrated");
  read_model_and_moments(r, trainer, fresh_quant);  // the whole model, this rank's shard of the moments
  if (cfg.has_teacher && !in.teacher && !trainer.uses_topk_targets()) {
    read_tensors(r, "teacher", trainer.teacher_table(), trainer.teacher_params());
  }
  trainer.optimizer().set_steps_taken(r.state("adam_step"));
  // a dense run resumed with a prune section added prunes the trained model from here
  if (trainer.pruner()) resume_pruner(r, path, *trainer.pruner(), progress);
  if (fresh_quant) {
    progress.line("quant: the checkpoint has no quantizer state (a float run): QAT starts from its weights, "
                  "calibrating afresh");
  } else if (trainer.qat()) {
    trainer.qat()->load_state(r);
  }
  trainer.restore_counters(r.state("step"), r.state("skipped_steps"));
  const int seq_len = cfg.train.seq_len;
  source.seek(r.state("data_cursor"), seq_len);
  // the sampler's state after the seek is the one saved: the same data from here on
  if (const auto saved = r.per_rank("data_rng", r.written_by_ranks() == dp.size() ? dp.rank() : 0)) {
    KD_CHECK_INPUT(saved->size() == 2 && (*saved)[0] == source.position() &&
                       std::uint64_t((*saved)[1]) == source.rng_fingerprint(),
                   "{}: the data sampler does not reproduce the checkpoint's state at sequence {} (fingerprint "
                   "{:016x}, now {:016x}): the data or its seed changed", path, source.position(),
                   saved->size() == 2 ? std::uint64_t((*saved)[1]) : 0, source.rng_fingerprint());
  }
  out.tokens_seen = r.state("tokens_seen");
  out.time_offset = double(r.state("time_ms")) / 1000.0;
  out.metrics = r.metrics_jsonl();
  return out;
}

// What a checkpoint loads into state that a later read of another one does not reset: a
// fallback must hold the same kinds, or it would keep part of the damaged file's.
struct StateKinds {
  bool masks = false, quant = false;
  bool operator==(const StateKinds&) const = default;
};

StateKinds state_kinds(const ckpt::CheckpointReader& r) {
  return {!r.tensor_names("masks").empty(), r.has_tensor("quant", "calibrated")};
}

std::string describe(const StateKinds& k) {
  return fmt::format("{} pruning masks, {} quantizer state", k.masks ? "with" : "without", k.quant ? "with" : "without");
}

// True on every rank when it is true on any student rank.
bool on_any_rank(bool mine, const RunGroups& g) {
  std::array<double, 1> f{mine ? 1.0 : 0.0};
  if (g.dp->size() > 1) g.dp->all_reduce_max(f);
  if (g.tp_group) g.tp_group->all_reduce_max(f);
  return f[0] > 0;
}

}  // namespace

ResumedRun resume_run(const RunInputs& in, Trainer& trainer, data::BatchSource& source, const RunGroups& groups,
                      const Provenance& prov, Progress& progress) {
  if (!in.resume_from) return {};
  for (const auto& w : in.resume_warnings) progress.line("warning: " + w);
  const bool leader = groups.dp->rank() == 0 && (!groups.tp_group || groups.tp_group->rank() == 0);
  std::string path = *in.resume_from;
  std::optional<StateKinds> touched;  // what the damaged checkpoints' reads may have loaded
  for (std::size_t fallback = 0;; ++fallback) {
    std::optional<ResumedRun> out;
    std::optional<StateKinds> kinds;
    std::string damage;
    try {
      std::optional<ckpt::CheckpointReader> r;
      try {
        r.emplace(path);
      } catch (const InputError& e) {  // in the run's own directory: a damaged file
        throw ckpt::DamagedCheckpoint(e.what());
      }
      kinds = state_kinds(*r);
      KD_CHECK_INPUT(!touched || *kinds == *touched,
                     "{} is {}, unlike the damaged checkpoint after it ({}): this process has read part of that one "
                     "and cannot continue from {}; move the damaged checkpoint out of {}/checkpoints and resume again",
                     path, describe(*kinds), describe(*touched), path, in.run_path);
      if (fallback == 0) {
        for (const auto& w : check_provenance(r->provenance(), prov, path)) progress.line("warning: " + w);
      }
      out = read_checkpoint(*r, in, trainer, source, *groups.dp, progress);
    } catch (const ckpt::DamagedCheckpoint& e) {
      damage = e.what();
    }
    // every rank reads a different part (its ZeRO shard): all of them go on, or all fall back
    if (!on_any_rank(!damage.empty(), groups)) {
      progress.line(fmt::format("resumed from {} at step {}", path, trainer.steps_done()));
      return std::move(*out);
    }
    const std::string what = damage.empty() ? "damage found by another rank (its message is on standard error)" : damage;
    if (!damage.empty() && !leader) std::fprintf(stderr, "kdtrain: warning: %s\n", damage.c_str());
    KD_CHECK_INPUT(fallback < in.resume_fallbacks.size(), "--resume {}: no checkpoint can be read; the oldest: {}",
                   in.run_path, damaged_checkpoint_note(path, what));
    if (kinds) touched = kinds;
    progress.line(fmt::format("warning: {}; falling back to {}", damaged_checkpoint_note(path, what),
                              in.resume_fallbacks[fallback]));
    path = in.resume_fallbacks[fallback];
  }
}

}  // namespace kd
