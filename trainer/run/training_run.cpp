#include "trainer/run/training_run.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "data/dp_source.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/run/checkpoint_clock.h"
#include "trainer/run/preemption.h"
#include "trainer/run/run_groups.h"
#include "trainer/run/run_recorder.h"
#include "trainer/run/run_resume.h"
#include "trainer/run/run_teacher.h"
#include "trainer/setup/backend.h"
#include "trainer/setup/run_dir.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"
#include "trainer/util/progress.h"

namespace kd {

using json = nlohmann::json;

namespace {

void copy_init_weights(const LoadedModel& from, const ParamTable& table, float* params) {
  for (const auto& t : table.tensors()) {
    if (t.has(kAuxiliary)) continue;  // feature projections, quantizer scales: their own init
    const auto i = from.table.find(t.name);
    KD_CHECK_INPUT(i && from.table[*i].shape == t.shape,
                   "train.init_from: {} has no tensor {} of the configured model's shape {} (its model: d_model {}, "
                   "n_layers {}, d_ff {}, vocab {})", from.path, t.name, ckpt::layout::shape_text(t.shape),
                   from.config.model.d_model, from.config.model.n_layers, from.config.model.d_ff,
                   from.config.model.vocab);
    std::copy_n(from.params.data() + from.table[*i].offset, t.numel, params + t.offset);
  }
}

// A quantized init checkpoint (kdtrain ptq: GPTQ's, AWQ's or round-to-nearest's codes) gives
// QAT its weight scales, held, where the run plans the same format: its dequantized weights
// then start exactly on the method's grid instead of being rounded again onto a calibrator's.
std::string hold_init_scales(const LoadedModel& from, quant::QatState& qat, float* params) {
  std::size_t held = 0, other = 0;
  for (const quant::QuantizedTensor& t : from.quantized->weights) {
    std::vector<std::int32_t> zero = t.zero;
    for (std::int32_t& z : zero) z += quant::storage_shift(t.plan.format);
    const std::string module = t.plan.module;
    if (qat.hold_weight_scales(module, t.plan.format, t.scale, zero, params)) {
      ++held;
    } else {
      ++other;
    }
  }
  std::string note = fmt::format("init: {} is quantized: {} weight tensors keep its scales (held through training)",
                                 from.path, held);
  if (other) note += fmt::format("; {} in another format here get the weight calibrator's", other);
  return note;
}

std::string fields_text(const StepReport& r, bool kd) {
  std::string s = fmt::format("loss {:.4f} ce {:.4f}", r.loss.loss, r.loss.ce);
  if (kd) s += fmt::format(" kd {:.4f}", r.loss.kd);
  if (r.loss.feat != 0) s += fmt::format(" feat {:.4f}", r.loss.feat);
  if (r.loss.on_tokens > 0) {
    s += fmt::format(" | on-policy kd {:.4f} ({} tokens, {:.2f} s)", r.loss.kd_on_sum / double(r.loss.on_tokens),
                     r.loss.on_tokens, r.rollouts.seconds);
  }
  return s + fmt::format(" | lr {:.2e} grad {:.3f}", r.lr, r.grad_norm);
}

// The run's training stream (and depth pruning's calibration stream beside it; on synthetic
// data the trainer makes its own).
std::unique_ptr<data::BatchSource> training_source(const RunInputs& in, Trainer& trainer) {
  const Config& cfg = in.cfg;
  if (cfg.data.kind == DataKind::shards && cfg.has_prune && cfg.prune.criterion == prune::Criterion::layers) {
    // depth pruning's block importance: its own stream of training sequences
    trainer.set_prune_calibration(make_stream(cfg, in.train_shard, Stream::prune_calibration));
  }
  return make_stream(cfg, in.train_shard, Stream::train);
}

// The lines that open the log: the run, its data-parallel split and its teacher ranks.
void print_run_header(const RunInputs& in, const RunGroups& g, Trainer& trainer, int threads, Progress& progress) {
  const Config& cfg = in.cfg;
  const auto& tr = cfg.train;
  progress.line(fmt::format("kdtrain {}: run {} | threads {} | {}", cfg.has_teacher ? "distill" : "train",
                            in.run_path, threads, blas_description()));
  if (g.dp->size() > 1) {
    std::string split;
    for (const int b : data::DataParallelSource::split(tr.batch_size, g.dp->size())) {
      split += fmt::format("{}{}", split.empty() ? "" : "+", b);
    }
    progress.line(fmt::format("data parallel: {} ranks, micro-batch of {} sequences split {}, ZeRO-1 shards of {} "
                              "parameters; watchdog {:.0f} s at least", g.dp->size(), tr.batch_size, split,
                              dist::zero_shard(trainer.student_table().total(), g.dp->size()),
                              cfg.parallel.watchdog_min_s));
  }
  if (g.layout.teachers > 0) {
    progress.line(fmt::format("teacher ranks: {} (world ranks {}..{}) run only the teacher, each serving {} student "
                              "rank(s)", g.layout.teachers, g.layout.students(), g.layout.world - 1,
                              (g.layout.students() + g.layout.teachers - 1) / g.layout.teachers));
  }
  if (trainer.qat()) progress.line(trainer.qat()->summary());
  if (in.init) progress.line(fmt::format("init: weights of {} (step {})", in.init->path, in.init->step));
}

// The loop phase: steps from where the trainer stands to train.steps, with the watchdog's
// limit following the slowest step, evaluations and checkpoints when due, and preemption.
int step_loop(const RunInputs& in, Trainer& trainer, data::BatchSource& source, const RunGroups& g,
              dist::Comm& world, RunRecorder& rec, Progress& progress) {
  const Config& cfg = in.cfg;
  const auto& tr = cfg.train;
  const double tokens_per_step = double(tr.batch_size) * tr.seq_len * tr.grad_accum;
  const bool kd_terms = cfg.has_teacher && cfg.distill.alpha < 1.0;
  double slowest = 0;
  auto due_by_count = [&](std::int64_t step) { return tr.checkpoint_every > 0 && step % tr.checkpoint_every == 0; };
  CheckpointClock clock(tr.checkpoint_minutes, omp_get_wtime());
  bool clock_due_next = false;  // the ranks judged the period to end with the next step
  for (std::int64_t s = trainer.steps_done(); s < tr.steps; ++s) {
    // a checkpoint due after this step (by step count, the last, or, as judged a step ahead,
    // the wall-time period): its update takes the CRC-32s the write needs (one on a signal, or
    // on the period judged wrongly, reads every byte for them)
    if (s + 1 == tr.steps || due_by_count(s + 1) || clock_due_next) {
      trainer.sum_next_update();
    }
    const StepReport r = trainer.step(source);
    // the watchdog's limit follows the slowest step (a checkpoint or an evaluation between
    // steps is waited for under the same limit)
    slowest = std::max(slowest, r.seconds);
    g.set_timeout(world, std::max(cfg.parallel.watchdog_min_s, cfg.parallel.watchdog_step_factor * slowest));
    if (!r.prune_event.empty()) progress.line(r.prune_event);
    rec.add_tokens(std::int64_t(tokens_per_step));
    const std::int64_t step = s + 1;
    const double tps = tokens_per_step / r.seconds;
    json line{{"type", "train"}, {"step", step}, {"tokens", rec.tokens_seen()}, {"time_s", rec.elapsed()},
              {"loss", r.loss.loss}, {"ce", r.loss.ce}, {"kd", r.loss.kd}, {"feat", r.loss.feat}, {"lr", r.lr},
              {"grad_norm", r.grad_norm}, {"tokens_per_s", tps}, {"skipped", r.skipped},
              {"comm_s", r.comm_seconds}};
    if (cfg.distill.on_policy.enabled()) {  // this rank's rollouts; the sampled tokens' divergence (all ranks)
      line["on_policy_sequences"] = r.rollouts.sequences;
      line["on_policy_tokens"] = r.loss.on_tokens;
      line["on_policy_kd"] = r.loss.on_tokens > 0 ? r.loss.kd_on_sum / double(r.loss.on_tokens) : 0.0;
      line["rollout_s"] = r.rollouts.seconds;
    }
    rec.emit(line);
    if (r.skipped) {
      progress.line(fmt::format("step {}: SKIPPED non-finite {} ({} skipped so far)", step, r.nonfinite,
                                trainer.skipped_steps()));
    }
    progress.step(step, fields_text(r, kd_terms), tps, rec.elapsed());
    // IMP: every round's result is evaluated (the sparsity curve), before the next round prunes
    const bool round_end = trainer.pruner() && trainer.pruner()->ends_round(step);
    if (step != tr.steps && ((tr.eval_every > 0 && step % tr.eval_every == 0) || round_end)) rec.evaluate(step);
    rec.poll_checkpoint();  // a background checkpoint completed (or failed: exit 3) at the same step on every rank
    // preemption (SIGTERM, SIGUSR1) and the wall-time period: every student rank acts after
    // the same step (their clocks and signals may differ, so the flags are max-reduced)
    const std::array<double, 2> period = clock.flags(omp_get_wtime(), r.seconds);
    std::array<double, 3> flags{preemption_requested() ? 1.0 : 0.0, period[0], period[1]};
    if (g.dp->size() > 1) g.dp->all_reduce_max(flags);
    if (g.tp_group) g.tp_group->all_reduce_max(flags);
    const bool saved = step != tr.steps && (due_by_count(step) || flags[1] > 0);
    if (saved) {
      rec.save(step, false);  // in the background; the next steps train meanwhile
      clock.saved(omp_get_wtime());
    }
    clock_due_next = !saved && flags[2] > 0;
    if (flags[0] > 0 && step != tr.steps) {
      // the checkpoint of this step complete before exiting (a write in flight first)
      if (saved) rec.finish_checkpoint(); else rec.save(step, true);
      progress.finish();
      if (world.rank() == 0) {
        progress.line(fmt::format("preempted: checkpoint at step {}: {} ({}); exit {} (continue with --resume {})",
                                  step, RunDir::checkpoint_path(in.run_path, step),
                                  preemption_signal() ? preemption_signal() : "another rank's signal", kExitPreempted,
                                  in.run_path));
      }
      return kExitPreempted;
    }
  }
  progress.finish();
  rec.evaluate(tr.steps);
  rec.save(tr.steps, true);
  if (world.rank() == 0) {
    progress.line(fmt::format("done: {} steps, {} skipped, {} tokens in {}; checkpoint {}", tr.steps,
                              trainer.skipped_steps(), rec.tokens_seen(), format_duration(rec.elapsed()),
                              RunDir::checkpoint_path(in.run_path, tr.steps)));
  }
  return 0;
}

// A preemption signal that came while the inputs were read (the handlers are installed
// first thing in main) ends the run before anything is written. Every rank of the world
// (teacher ranks too) takes part: it is also the barrier before the run directory.
bool preempted_before_start(dist::Comm& world) {
  std::array<double, 1> flag{preemption_requested() ? 1.0 : 0.0};
  world.all_reduce_max(flag);
  return flag[0] > 0;
}

}  // namespace

int run_training(RunInputs& in, dist::Comm& world, int threads, const Provenance& prov) {
  // Rank 0 alone writes the run directory and prints; every rank has read the inputs,
  // trains its data-parallel slice and evaluates (the same result on each).
  const Config& cfg = in.cfg;
  const bool leader = world.rank() == 0;
  RunGroups groups = make_run_groups(cfg, world);
  if (groups.teacher_rank) {
    if (preempted_before_start(world)) return kExitPreempted;  // the students' agreement before the run directory
    std::array<std::int64_t, 1> start{0};
    world.broadcast(start, 0);  // the step the students start (or resume) at
    serve_as_teacher(in, world, groups.layout, start[0]);
    return 0;
  }

  std::string comm_note;
  const std::unique_ptr<dist::Comm> nccl = make_trainer_comm(cfg, *groups.dp, &comm_note);  // runtime.comm
  if (leader && !comm_note.empty()) fmt::print("{}\n", comm_note);
  if (leader && nccl) fmt::print("collectives: {}\n", nccl->describe());
  Trainer trainer(cfg, nccl ? nccl.get() : groups.dp, groups.tp_group.get());
  if (in.tokenizer) trainer.set_end_of_text(in.tokenizer->eot_id());  // on-policy samples stop there
  connect_teacher_targets(in, trainer, world, groups);
  const std::unique_ptr<data::BatchSource> source = training_source(in, trainer);
  std::string init_note;
  if (in.init) {
    copy_init_weights(*in.init, trainer.student_table(), trainer.student_params());
    if (in.init->quantized && trainer.qat()) init_note = hold_init_scales(*in.init, *trainer.qat(), trainer.student_params());
  }

  // From here on the run directory exists (every rank has checked the inputs first).
  if (preempted_before_start(world)) {
    if (leader) {
      fmt::print("preempted ({}) before the first step: nothing written; exit {} (run the same command again)\n",
                 preemption_signal() ? preemption_signal() : "another rank's signal", kExitPreempted);
    }
    return kExitPreempted;
  }
  std::optional<RunDir> dir;
  std::vector<std::string> dir_notes;
  if (leader) {
    dir.emplace(RunDir::open(in.run_path, in.resume_from ? RunMode::resume : in.overwrite ? RunMode::overwrite : RunMode::fresh,
                             in.newest_checkpoint, dir_notes));
  }
  Progress progress(cfg.train.steps, cfg.train.log_every, leader ? stdout : nullptr);
  for (const std::string& n : dir_notes) progress.line(n);
  print_run_header(in, groups, trainer, threads, progress);
  if (!init_note.empty()) progress.line(init_note);
  load_teacher(in, trainer, groups, progress);
  ResumedRun resumed = resume_run(in, trainer, *source, groups, prov, progress);
  if (const std::string frozen = trainer.freeze_teacher(); !frozen.empty()) progress.line(frozen);
  RunRecorder rec(in, trainer, *source, groups, prov, leader ? &*dir : nullptr, progress, threads, std::move(resumed));
  if (groups.layout.teachers > 0) {  // the teacher ranks start where the students do
    std::array<std::int64_t, 1> start{trainer.steps_done()};
    world.broadcast(start, 0);
  }
  return step_loop(in, trainer, *source, groups, world, rec, progress);
}

}  // namespace kd
