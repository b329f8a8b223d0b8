#include "trainer/run/training_run.h"
#include "trainer/run/backend.h"

#include <omp.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "data/token_dataset.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/eval/evaluator.h"
#include "trainer/run/model_loader.h"
#include "trainer/run/preemption.h"
#include "trainer/run/progress.h"
#include "trainer/run/provenance.h"
#include "trainer/run/run_dir.h"
#include "trainer/run/run_inputs.h"
#include "trainer/run/teacher_cache_run.h"
#include "trainer/run/teacher_ranks.h"
#include "trainer/run/trainer_state.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/teacher_pretrain.h"
#include "trainer/train/trainer.h"
#include "trainer/util/errors.h"

namespace kd {

namespace fs = std::filesystem;
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

std::string fields_text(const StepReport& r, bool kd) {
  std::string s = fmt::format("loss {:.4f} ce {:.4f}", r.loss.loss, r.loss.ce);
  if (kd) s += fmt::format(" kd {:.4f}", r.loss.kd);
  if (r.loss.feat != 0) s += fmt::format(" feat {:.4f}", r.loss.feat);
  return s + fmt::format(" | lr {:.2e} grad {:.3f}", r.lr, r.grad_norm);
}

}  // namespace

int run_training(const TrainCommand& cmd) {
  // Launched by mpirun / srun: every rank runs this function. Rank 0 alone writes the run
  // directory and prints; every rank reads the inputs, trains its data-parallel slice and
  // evaluates (the same result on each).
  install_preemption_handlers();
  const std::unique_ptr<dist::Comm> world = dist::make_world_comm();
  const bool leader = world->rank() == 0;
  RunInputs in = gather_inputs(cmd, true, world->rank(), world->size());
  Config& cfg = in.cfg;
  const auto& tr = cfg.train;
  const std::string backend = start_backend(cfg, node_local_rank());  // before any work
  if (leader && !backend.empty()) fmt::print("{}\n", backend);
  world->set_timeout(cfg.parallel.watchdog_min_s);
  const int threads = set_threads(tr.threads);
  Provenance prov = runtime_provenance(threads);
  prov.insert(in.provenance.begin(), in.provenance.end());
  prov["world_size"] = std::to_string(world->size());
  if (in.teacher) prov["teacher_checkpoint"] = in.teacher->path;

  // Groups: with teacher ranks, the students are a data-parallel group of their own.
  const TeacherRanks layout = teacher_ranks(cfg, world->size());
  const int tpn = cfg.parallel.tensor_parallel;
  KD_CHECK_INPUT(layout.students() % tpn == 0, "parallel.tensor_parallel {} does not divide the job's {} ranks", tpn,
                 layout.students());
  KD_CHECK_INPUT(tr.batch_size >= layout.students() / tpn,
                 "train.batch_size ({}) is smaller than the {} data-parallel ranks: every rank needs at least one "
                 "sequence of each micro-batch", tr.batch_size, layout.students() / tpn);
  std::unique_ptr<dist::Comm> student_group;
  dist::Comm* dp = world.get();
  if (layout.teachers > 0) {
    const bool teacher_rank = layout.is_teacher(world->rank());
    student_group = world->split(teacher_rank ? 1 : 0, world->rank(), teacher_rank ? "teacher group" : "data-parallel group");
    student_group->set_timeout(cfg.parallel.watchdog_min_s);
    if (teacher_rank) {
      world->barrier();  // the students' barrier before the run directory
      std::array<std::int64_t, 1> start{0};
      world->broadcast(start, 0);  // the step the students start (or resume) at
      serve_as_teacher(in, *world, layout, start[0]);
      return 0;
    }
    dp = student_group.get();
  }
  // Tensor parallel: groups of consecutive ranks share a teacher (and a micro-batch); the
  // ranks with the same place in their groups form the data-parallel groups.
  std::unique_ptr<dist::Comm> tp_group, dp_across;
  if (tpn > 1) {
    tp_group = world->split(world->rank() / tpn, world->rank(), "tensor-parallel group");
    dp_across = world->split(world->rank() % tpn, world->rank(), "data-parallel group");
    tp_group->set_timeout(cfg.parallel.watchdog_min_s);
    dp_across->set_timeout(cfg.parallel.watchdog_min_s);
    dp = dp_across.get();
  }

  std::string comm_note;
  const std::unique_ptr<dist::Comm> nccl = make_trainer_comm(cfg, *dp, &comm_note);  // runtime.comm
  if (leader && !comm_note.empty()) fmt::print("{}\n", comm_note);
  if (leader && nccl) fmt::print("collectives: {}\n", nccl->describe());
  Trainer trainer(cfg, nccl ? nccl.get() : dp, tp_group.get());
  const int kd_vocab = cfg.has_teacher ? std::min(cfg.model.vocab, cfg.teacher.spec.vocab) : 0;
  if (trainer.uses_topk_targets() && !cfg.teacher.cache.empty()) {
    const RunCache rc = open_run_cache(in);
    trainer.set_targets(std::make_unique<CacheTargets>(rc.cache, rc.temperature_index, cfg.teacher.cache));
    if (in.teacher) in.teacher->params = AlignedBuffer<float>();  // only its hash was needed
  } else if (trainer.uses_topk_targets()) {
    trainer.set_targets(std::make_unique<RemoteTeacherTargets>(*world, layout.teacher_of(dp->rank()),
                                                               teacher_rank_k(cfg, kd_vocab), kd_vocab));
  }
  std::unique_ptr<data::BatchSource> source;
  if (cfg.data.kind == DataKind::shards) {
    source = std::make_unique<data::TokenDataset>(in.train_shard, cfg.model.vocab, tr.seq_len, std::uint64_t(tr.seed));
    if (cfg.has_prune && cfg.prune.criterion == prune::Criterion::layers) {
      // depth pruning's block importance: its own stream of training sequences
      trainer.set_prune_calibration(std::make_unique<data::TokenDataset>(in.train_shard, cfg.model.vocab, tr.seq_len,
                                                                         std::uint64_t(tr.seed) + 5));
    }
  } else {
    source = make_synthetic(cfg, Stream::train);
  }

  if (in.init) copy_init_weights(*in.init, trainer.student_table(), trainer.student_params());

  // From here on the run directory exists (every rank has checked the inputs first).
  world->barrier();
  std::optional<RunDir> dir;
  if (leader) {
    dir.emplace(RunDir::open(in.run_path, in.resume_from ? RunMode::resume : in.overwrite ? RunMode::overwrite : RunMode::fresh));
  }
  Progress progress(tr.steps, tr.log_every, leader ? stdout : nullptr);
  progress.line(fmt::format("kdtrain {}: run {} | threads {} | {}", cmd.distill ? "distill" : "train", in.run_path,
                            threads, blas_description()));
  if (dp->size() > 1) {
    std::string split;
    for (const int b : data::DataParallelSource::split(tr.batch_size, dp->size())) {
      split += fmt::format("{}{}", split.empty() ? "" : "+", b);
    }
    progress.line(fmt::format("data parallel: {} ranks, micro-batch of {} sequences split {}, ZeRO-1 shards of {} "
                              "parameters; watchdog {:.0f} s at least", dp->size(), tr.batch_size, split,
                              dist::padded_shard(trainer.student_table().total(), dp->size()),
                              cfg.parallel.watchdog_min_s));
  }
  if (layout.teachers > 0) {
    progress.line(fmt::format("teacher ranks: {} (world ranks {}..{}) run only the teacher, each serving {} student "
                              "rank(s)", layout.teachers, layout.students(), layout.world - 1,
                              (layout.students() + layout.teachers - 1) / layout.teachers));
  }

  if (trainer.qat()) progress.line(trainer.qat()->summary());
  if (in.init) progress.line(fmt::format("init: weights of {} (step {})", in.init->path, in.init->step));
  if (trainer.uses_topk_targets()) {
    progress.line("teacher: " + trainer.targets()->describe());
  } else if (in.teacher && tp_group) {
    // this rank's rows and columns straight from the file; a quantized teacher (codes in
    // another group) is read whole, dequantized, then cut
    const ckpt::CheckpointReader reader(in.teacher->path);
    const bool quantized = reader.kind() == "quantized";
    if (quantized) in.teacher = load_model(in.teacher->path);
    const TeacherShard shard = quantized
                                   ? shard_teacher(*in.teacher->layout, in.teacher->params.data(), tpn, tp_group->rank())
                                   : read_teacher_shard(reader, cfg.teacher.spec, tpn, tp_group->rank());
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
    auto tsrc = cfg.data.kind == DataKind::shards
                    ? std::unique_ptr<data::BatchSource>(std::make_unique<data::TokenDataset>(
                          in.train_shard, cfg.model.vocab, tr.seq_len, std::uint64_t(tr.seed) + 3))
                    : std::unique_ptr<data::BatchSource>(make_synthetic(cfg, Stream::teacher_pretrain));
    const double ce = pretrain_teacher(cfg, cfg.distill.teacher_pretrain_steps, *tsrc, trainer.teacher_params());
    progress.line(fmt::format("teacher: pretrained {} steps on labels, last CE {:.4f}", cfg.distill.teacher_pretrain_steps, ce));
  }

  std::string metrics;  // the whole metrics.jsonl, also stored in each checkpoint
  std::int64_t tokens_seen = 0;
  double time_offset = 0;
  if (in.resume_from) {
    ckpt::CheckpointReader r(*in.resume_from);
    for (const auto& w : in.resume_warnings) progress.line("warning: " + w);
    for (const auto& w : check_provenance(r.provenance(), prov, *in.resume_from)) progress.line("warning: " + w);
    // A float run resumed with a quant section added is QAT fine-tuning: its LSQ scales
    // (absent from the checkpoint) start from the calibrators, their moments from zero.
    const bool fresh_quant = trainer.qat() && !r.has_tensor("quant", "calibrated");
    read_model_and_moments(r, trainer, fresh_quant);  // the whole model, this rank's shard of the moments
    if (cfg.has_teacher && !in.teacher && !trainer.uses_topk_targets()) {
      read_tensors(r, "teacher", trainer.teacher_table(), trainer.teacher_params());
    }
    trainer.optimizer().set_steps_taken(r.state("adam_step"));
    if (trainer.pruner()) {
      // a dense run resumed with a prune section added prunes the trained model from here
      if (!r.tensor_names("masks").empty()) {
        const std::int64_t step = r.state("step");
        if (trainer.pruner()->iterative() && r.has_state("imp_round")) {
          const int round = trainer.pruner()->round_done(step);
          KD_CHECK_INPUT(r.state("imp_round") == round,
                         "{}: the checkpoint is in IMP round {} but the config puts its step {} in round {} "
                         "(prune.rounds, round_steps or rewind_step changed?)", *in.resume_from,
                         r.state("imp_round"), step, round);
        }
        trainer.pruner()->load_state(r, step);
      } else {
        KD_CHECK_INPUT(!trainer.pruner()->iterative(), "{}: prune.schedule imp cannot start from a dense checkpoint "
                       "(its rounds, snapshot and LR schedule count from step 0); start a fresh run", *in.resume_from);
        progress.line("prune: the checkpoint has no masks (a dense run): pruning starts from its weights");
      }
    }
    if (fresh_quant) {
      progress.line("quant: the checkpoint has no quantizer state (a float run): QAT starts from its weights, "
                    "calibrating afresh");
    } else if (trainer.qat()) {
      trainer.qat()->load_state(r);
    }
    trainer.restore_counters(r.state("step"), r.state("skipped_steps"));
    source->seek(r.state("data_cursor"), tr.seq_len);
    // the sampler's state after the seek is the one saved: the same data from here on
    if (const auto saved = r.per_rank("data_rng", r.written_by_ranks() == dp->size() ? dp->rank() : 0)) {
      KD_CHECK_INPUT(saved->size() == 2 && (*saved)[0] == source->position() &&
                         std::uint64_t((*saved)[1]) == source->rng_fingerprint(),
                     "{}: the data sampler does not reproduce the checkpoint's state at sequence {} (fingerprint "
                     "{:016x}, now {:016x}): the data or its seed changed", *in.resume_from, source->position(),
                     saved->size() == 2 ? std::uint64_t((*saved)[1]) : 0, source->rng_fingerprint());
    }
    tokens_seen = r.state("tokens_seen");
    time_offset = double(r.state("time_ms")) / 1000.0;
    metrics = r.metrics_jsonl();
    progress.line(fmt::format("resumed from {} at step {}", *in.resume_from, trainer.steps_done()));
  }
  std::ofstream metrics_out;
  if (leader) {
    dir->write_text(dir->config_path(), config_to_yaml(cfg));
    metrics_out.open(dir->metrics_path(), std::ios::trunc);
    metrics_out << metrics;
  }
  auto emit = [&](const json& j) {
    if (!leader) return;
    const std::string line = j.dump() + "\n";
    metrics += line;
    metrics_out << line;
    metrics_out.flush();
  };

  if (const std::string frozen = trainer.freeze_teacher(); !frozen.empty()) progress.line(frozen);
  std::unique_ptr<Evaluator> evaluator;
  if (in.val_shard) {
    // a tensor-parallel teacher is a shard here: validation without teacher metrics
    evaluator = std::make_unique<Evaluator>(trainer.student(), tp_group ? nullptr : trainer.teacher(), tr.batch_size,
                                            tr.seq_len, threads, trainer.qat());
    evaluator->set_teacher_hook(trainer.teacher_hook());
  }
  const double t_start = omp_get_wtime() - time_offset;
  auto evaluate = [&](std::int64_t step) {
    json j{{"type", "eval"}, {"step", step}, {"tokens", tokens_seen}, {"time_s", omp_get_wtime() - t_start}};
    if (trainer.pruner()) {
      j["sparsity"] = trainer.pruner()->sparsity();
      if (trainer.pruner()->iterative()) j["imp_round"] = trainer.pruner()->round_done(step);
    }
    std::string text;
    if (evaluator) {
      // a QAT run is evaluated as it will run: with its quantizers
      const float* params = trainer.qat() ? trainer.qat()->begin_eval(trainer.student_params()) : trainer.student_params();
      const EvalResult e = evaluator->run(params, trainer.teacher_params(), *in.val_shard, tr.eval_tokens);
      if (trainer.qat()) trainer.qat()->end_eval();
      j["val_loss"] = e.loss;
      j["val_ppl"] = e.ppl;
      j["val_tokens"] = e.tokens;
      if (std::isfinite(e.bpb)) j["val_bpb"] = e.bpb;
      if (std::isfinite(e.agreement)) {
        j["agreement"] = e.agreement;
        j["val_kl"] = e.kl;
      }
      text = fmt::format("eval @ step {}: val loss {:.4f} ppl {:.2f} bpb {:.4f}", step, e.loss, e.ppl, e.bpb);
      if (std::isfinite(e.agreement)) text += fmt::format(" agreement {:.3f} KL {:.4f}", e.agreement, e.kl);
    } else if (cfg.data.kind != DataKind::shards) {
      auto val = make_synthetic(cfg, Stream::validation);
      const double loss = trainer.evaluate(*val, int(cfg.data.synthetic_eval_batches));
      j["val_loss"] = loss;
      j["val_ppl"] = std::exp(loss);
      text = fmt::format("eval @ step {}: val loss {:.4f} ppl {:.2f}", step, loss, std::exp(loss));
    } else {
      return;
    }
    emit(j);
    progress.line(text);
  };
  // Collective over the data-parallel ranks, each writing its ZeRO shard (in a tensor-parallel
  // job the group of tensor-parallel rank 0: the others hold the same student).
  auto save = [&](std::int64_t step) {
    if (tp_group && tp_group->rank() != 0) return;
    ckpt::CheckpointContents c;
    if (leader) {  // the texts and counters are rank 0's
      c.kind = "train";
      c.config_yaml = config_to_yaml(cfg);
      if (in.tokenizer) c.tokenizer_json = in.tokenizer->to_json_text();
      c.metrics_jsonl = metrics;
      c.provenance = prov;
      c.state = {{"step", step},
                 {"skipped_steps", trainer.skipped_steps()},
                 {"adam_step", trainer.optimizer().steps_taken()},
                 {"data_cursor", source->position()},
                 {"tokens_seen", tokens_seen},
                 {"time_ms", std::int64_t((omp_get_wtime() - t_start) * 1000)}};
      // IMP: the round that produced these weights (the round also follows from the step; a
      // resume checks the two agree, so an edited schedule cannot silently shift the rounds)
      if (trainer.pruner() && trainer.pruner()->iterative()) {
        c.state["imp_round"] = trainer.pruner()->round_done(step);
      }
    }
    add_trainer_tensors(trainer, cfg.has_teacher && !in.teacher && !trainer.uses_topk_targets(), c);
    c.per_rank["data_rng"] = {source->position(), std::int64_t(source->rng_fingerprint())};
    ckpt::write_checkpoint(RunDir::checkpoint_path(in.run_path, step), c, dp);
    if (leader) dir->prune_checkpoints(tr.keep_checkpoints);
  };

  const double tokens_per_step = double(tr.batch_size) * tr.seq_len * tr.grad_accum;
  const bool kd_terms = cfg.has_teacher && cfg.distill.alpha < 1.0;
  if (layout.teachers > 0) {  // the teacher ranks start where the students do
    std::array<std::int64_t, 1> start{trainer.steps_done()};
    world->broadcast(start, 0);
  }
  double slowest = 0;
  double last_save = omp_get_wtime();
  for (std::int64_t s = trainer.steps_done(); s < tr.steps; ++s) {
    const StepReport r = trainer.step(*source);
    // the watchdog's limit follows the slowest step (a checkpoint or an evaluation between
    // steps is waited for under the same limit)
    slowest = std::max(slowest, r.seconds);
    const double limit = std::max(cfg.parallel.watchdog_min_s, cfg.parallel.watchdog_step_factor * slowest);
    world->set_timeout(limit);
    dp->set_timeout(limit);
    if (tp_group) tp_group->set_timeout(limit);
    if (!r.prune_event.empty()) progress.line(r.prune_event);
    tokens_seen += std::int64_t(tokens_per_step);
    const std::int64_t step = s + 1;
    const double tps = tokens_per_step / r.seconds;
    emit(json{{"type", "train"}, {"step", step}, {"tokens", tokens_seen}, {"time_s", omp_get_wtime() - t_start},
              {"loss", r.loss.loss}, {"ce", r.loss.ce}, {"kd", r.loss.kd}, {"feat", r.loss.feat}, {"lr", r.lr},
              {"grad_norm", r.grad_norm}, {"tokens_per_s", tps}, {"skipped", r.skipped},
              {"comm_s", r.comm_seconds}});
    if (r.skipped) {
      progress.line(fmt::format("step {}: SKIPPED non-finite {} ({} skipped so far)", step, r.nonfinite,
                                trainer.skipped_steps()));
    }
    progress.step(step, fields_text(r, kd_terms), tps, omp_get_wtime() - t_start);
    // IMP: every round's result is evaluated (the sparsity curve), before the next round prunes
    const bool round_end = trainer.pruner() && trainer.pruner()->ends_round(step);
    if (step != tr.steps && ((tr.eval_every > 0 && step % tr.eval_every == 0) || round_end)) evaluate(step);
    // preemption (SIGTERM, SIGUSR1) and the wall-time period: every student rank acts after
    // the same step (their clocks and signals may differ, so the flags are max-reduced)
    std::array<double, 2> flags{preemption_requested() ? 1.0 : 0.0,
                                tr.checkpoint_minutes > 0 && omp_get_wtime() - last_save >= 60 * tr.checkpoint_minutes
                                    ? 1.0
                                    : 0.0};
    if (dp->size() > 1) dp->all_reduce_max(flags);
    if (tp_group) tp_group->all_reduce_max(flags);
    const bool saved = step != tr.steps && ((tr.checkpoint_every > 0 && step % tr.checkpoint_every == 0) || flags[1] > 0);
    if (saved) {
      save(step);
      last_save = omp_get_wtime();
    }
    if (flags[0] > 0 && step != tr.steps) {
      if (!saved) save(step);
      progress.finish();
      if (leader) {
        progress.line(fmt::format("preempted: checkpoint at step {}: {} ({}); exit {} (continue with --resume {})",
                                  step, dir->checkpoint_path(step),
                                  preemption_signal() ? preemption_signal() : "another rank's signal", kExitPreempted,
                                  in.run_path));
      }
      return kExitPreempted;
    }
  }
  progress.finish();
  evaluate(tr.steps);
  save(tr.steps);
  if (leader) {
    progress.line(fmt::format("done: {} steps, {} skipped, {} tokens in {}; checkpoint {}", tr.steps,
                              trainer.skipped_steps(), tokens_seen, format_duration(omp_get_wtime() - t_start),
                              dir->checkpoint_path(tr.steps)));
  }
  return 0;
}

}  // namespace kd
