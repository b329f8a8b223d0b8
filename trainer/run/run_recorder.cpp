#include "trainer/run/run_recorder.h"

#include <omp.h>

#include <cmath>

#include <fmt/format.h>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/run/trainer_state.h"
#include "trainer/train/batch_sources.h"

namespace kd {

using json = nlohmann::json;

RunRecorder::RunRecorder(const RunInputs& in, Trainer& trainer, data::BatchSource& source, const RunGroups& groups,
                         const Provenance& prov, const RunDir* dir, Progress& progress, int threads,
                         ResumedRun resumed)
    : in_(in), trainer_(trainer), source_(source), groups_(groups), prov_(prov), dir_(dir), progress_(progress),
      metrics_(std::move(resumed.metrics)), writes_(!groups.tp_group || groups.tp_group->rank() == 0),
      writer_(groups.dp, checkpoint_state_copy(in.cfg.train.checkpoint_copy)), tokens_seen_(resumed.tokens_seen) {
  if (writes_) trainer.set_state_gate([this] { writer_.release_state(); });
  const Config& cfg = in.cfg;
  if (dir_ != nullptr) {
    dir_->write_text(dir_->config_path(), config_to_yaml(cfg));
    metrics_out_.open_truncated(dir_->metrics_path());
    metrics_out_.write(metrics_);
  }
  if (in.val_shard) {
    // a tensor-parallel teacher is a shard here: validation without teacher metrics
    evaluator_ = std::make_unique<Evaluator>(trainer.student(), groups.tp_group ? nullptr : trainer.teacher(),
                                             cfg.train.batch_size, cfg.train.seq_len, threads, trainer.qat());
    evaluator_->set_teacher_hook(trainer.teacher_hook());
    if (in.tokenizer) evaluator_->set_tokenizer(*in.tokenizer);  // bits per byte from the scored tokens' bytes
    if (cfg.distill.sample_prompts > 0 && trainer.teacher() != nullptr && !groups.tp_group) {
      const auto& d = cfg.distill;
      const SampleMetricsSpec spec = fit_sample_spec(d.sample_prompts, d.on_policy.prompt_tokens,
                                                     d.on_policy.max_new_tokens, cfg.train.seq_len);
      samples_ = std::make_unique<SampleMetrics>(trainer.student(), *trainer.teacher(), *in.val_shard, spec,
                                                 in.tokenizer ? in.tokenizer->eot_id() : -1, threads);
    }
  }
  t_start_ = omp_get_wtime() - resumed.time_offset;
}

RunRecorder::~RunRecorder() {
  if (writes_) trainer_.set_state_gate(nullptr);
}

double RunRecorder::elapsed() const { return omp_get_wtime() - t_start_; }

void RunRecorder::emit(const json& j) {
  if (dir_ == nullptr) return;
  const std::string line = j.dump() + "\n";
  metrics_ += line;
  metrics_out_.write(line);
}

void RunRecorder::evaluate(std::int64_t step) {
  const Config& cfg = in_.cfg;
  json j{{"type", "eval"}, {"step", step}, {"tokens", tokens_seen_}, {"time_s", elapsed()}};
  if (trainer_.pruner()) {
    j["sparsity"] = trainer_.pruner()->sparsity();
    if (trainer_.pruner()->iterative()) j["imp_round"] = trainer_.pruner()->round_done(step);
  }
  std::string text;
  if (evaluator_) {
    // a QAT run is evaluated as it will run: with its quantizers
    const float* params =
        trainer_.qat() ? trainer_.qat()->begin_eval(trainer_.student_params()) : trainer_.student_params();
    const EvalResult e = evaluator_->run(params, trainer_.teacher_params(), *in_.val_shard, cfg.train.eval_tokens);
    SampleQuality sq;
    if (samples_) sq = samples_->run(params, trainer_.qat(), trainer_.teacher_params(), trainer_.teacher_hook());
    if (trainer_.qat()) trainer_.qat()->end_eval();
    if (sq.tokens > 0) {
      j["sample_teacher_nll"] = sq.teacher_nll;
      j["sample_entropy"] = sq.entropy;
      if (std::isfinite(sq.distinct2)) j["sample_distinct2"] = sq.distinct2;
    }
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
    if (sq.tokens > 0) {
      text += fmt::format(" | samples: teacher NLL {:.3f} entropy {:.3f} distinct-2 {:.3f}", sq.teacher_nll, sq.entropy,
                          sq.distinct2);
    }
  } else if (cfg.data.kind != DataKind::shards) {
    auto val = make_synthetic(cfg, Stream::validation);
    const double loss = trainer_.evaluate(*val, int(cfg.data.synthetic_eval_batches));
    j["val_loss"] = loss;
    j["val_ppl"] = std::exp(loss);
    text = fmt::format("eval @ step {}: val loss {:.4f} ppl {:.2f}", step, loss, std::exp(loss));
  } else {
    return;
  }
  emit(j);
  progress_.line(text);
}

// Collective over the data-parallel ranks, each writing its ZeRO shard (in a tensor-parallel
// job the group of tensor-parallel rank 0: the others hold the same student).
void RunRecorder::save(std::int64_t step, bool wait) {
  if (!writes_) return;
  // the one in flight first: kept checkpoints are counted complete, and the views built below
  // may reuse memory it still reads (QatState::state_tensors rebuilds its flag and observer rows)
  finish_checkpoint();
  const Config& cfg = in_.cfg;
  ckpt::CheckpointContents c;
  if (dir_ != nullptr) {  // the texts and counters are rank 0's
    metrics_out_.sync();
    c.kind = "train";
    c.config_yaml = config_to_yaml(cfg);
    if (in_.tokenizer) c.tokenizer_json = in_.tokenizer->to_json_text();
    c.metrics_jsonl = metrics_;
    c.provenance = prov_;
    c.state = {{"step", step},
               {"skipped_steps", trainer_.skipped_steps()},
               {"adam_step", trainer_.optimizer().steps_taken()},
               {"data_cursor", source_.position()},
               {"tokens_seen", tokens_seen_},
               {"time_ms", std::int64_t(elapsed() * 1000)}};
    // IMP: the round that produced these weights (the round also follows from the step; a
    // resume checks the two agree, so an edited schedule cannot silently shift the rounds)
    if (trainer_.pruner() && trainer_.pruner()->iterative()) c.state["imp_round"] = trainer_.pruner()->round_done(step);
  }
  add_trainer_tensors(trainer_, cfg.has_teacher && !in_.teacher && !trainer_.uses_topk_targets(), c);
  c.per_rank["data_rng"] = {source_.position(), std::int64_t(source_.rng_fingerprint())};
  writer_.start(RunDir::checkpoint_path(in_.run_path, step), c);
  if (wait) finish_checkpoint();
}

void RunRecorder::poll_checkpoint() {
  if (writes_ && writer_.poll()) completed();
}

void RunRecorder::finish_checkpoint() {
  if (!writes_ || !writer_.in_flight()) return;
  writer_.finish();
  completed();
}

void RunRecorder::completed() {
  if (dir_ != nullptr) dir_->prune_checkpoints(in_.cfg.train.keep_checkpoints);
}

}  // namespace kd
