// The evaluate/save phase of a training run: metrics.jsonl (one JSON object per step and
// per evaluation, also stored in every checkpoint), validation, and the collective
// checkpoints. Rank 0 alone writes files and prints; every rank evaluates (the same result
// on each) and writes its ZeRO shard of each checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/file_io.h"
#include "trainer/checkpoint/checkpoint.h"
#include "data/batch_source.h"
#include "trainer/eval/evaluator.h"
#include "trainer/eval/sample_metrics.h"
#include "trainer/run/run_groups.h"
#include "trainer/run/run_resume.h"
#include "trainer/setup/provenance.h"
#include "trainer/setup/run_dir.h"
#include "trainer/setup/run_inputs.h"
#include "trainer/train/trainer.h"
#include "trainer/util/progress.h"

namespace kd {

class RunRecorder {
 public:
  // `dir`: the run directory on rank 0, null on the others. Writes the effective config and
  // the metrics so far (a resumed run's) into it, and starts the run's clock where the
  // resumed run stopped it.
  RunRecorder(const RunInputs& in, Trainer& trainer, data::BatchSource& source, const RunGroups& groups,
              const Provenance& prov, const RunDir* dir, Progress& progress, int threads, ResumedRun resumed);
  // A checkpoint still in flight is abandoned (its .tmp removed: the run failed before it
  // could be completed), and the trainer's state gate released.
  ~RunRecorder();
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  // A line of metrics.jsonl (rank 0); a failed write is a RuntimeFailure naming the file (a
  // full disk must not leave a run that reports success with its metrics cut short).
  void emit(const nlohmann::json& j);
  // Validation on the run's val shard (or a synthetic stream), as a metrics line and a log line.
  void evaluate(std::int64_t step);
  // A checkpoint of step, collective over the data-parallel ranks, written in the background
  // (ckpt::BackgroundCheckpoint: the training goes on while its bytes are written; the
  // trainer's state gate holds the next update until the writer is done reading the weights
  // and moments in place). metrics.jsonl is fsync'ed first: on disk as far as the checkpoint.
  // A checkpoint still in flight is completed first. `wait`: return only once it is complete.
  void save(std::int64_t step, bool wait);
  // After each step (collective): completes the checkpoint in flight once every rank's bytes
  // are written; a failed write is a RuntimeFailure (exit 3) here, at the step after it.
  // Completing one keeps the newest train.keep_checkpoints.
  void poll_checkpoint();
  // Waits for the checkpoint in flight and completes it (the end of the run, preemption).
  void finish_checkpoint();

  double elapsed() const;  // seconds of the run, across resumes
  std::int64_t tokens_seen() const { return tokens_seen_; }
  void add_tokens(std::int64_t n) { tokens_seen_ += n; }

 private:
  const RunInputs& in_;
  Trainer& trainer_;
  data::BatchSource& source_;
  const RunGroups& groups_;
  const Provenance& prov_;
  const RunDir* dir_;
  Progress& progress_;
  std::string metrics_;  // the whole metrics.jsonl
  AppendFile metrics_out_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<SampleMetrics> samples_;
  bool writes_ = false;                // this rank takes part in checkpoints
  ckpt::BackgroundCheckpoint writer_;  // the checkpoint in flight
  void completed();                    // after a checkpoint's rename: keep the newest N  // the student's samples scored by the teacher (distill.sample_prompts)
  std::int64_t tokens_seen_ = 0;
  double t_start_ = 0;
};

}  // namespace kd
