// What `train`, `distill` and `cache-teacher` read and check before anything is written:
// the config (or a resumed run's), the teacher checkpoint, token shards, the tokenizer,
// and the provenance of the data. Bad input throws InputError (exit 2).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/shards/token_shard.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "trainer/config/config.h"
#include "trainer/setup/model_loader.h"
#include "trainer/setup/provenance.h"

namespace kd {

// The command line of `kdtrain train`, `distill` and `cache-teacher`.
struct TrainCommand {
  bool distill = false;  // distill needs a teacher; train refuses one
  std::string config;    // YAML (not needed with resume)
  std::vector<std::string> overrides;
  std::string resume;    // a run directory to continue
  bool overwrite = false;
  // With config: resume its run directory when it holds a checkpoint, else start it afresh
  // (replacing a directory a job left without any checkpoint). For batch jobs that are
  // requeued and for sweeps: the same command line starts and continues the run.
  bool auto_resume = false;
};

struct RunInputs {
  Config cfg;
  std::string run_path;
  bool overwrite = false;  // replace the run directory (--overwrite, or --auto-resume with no checkpoint)
  // The newest checkpoint that opens whole (its manifest, attributes and config checked);
  // the older ones, newest first, are what resume_run falls back to when a read of it finds
  // damage (every read checks its bytes in the same pass: nothing is read twice).
  std::optional<std::string> resume_from;
  std::vector<std::string> resume_fallbacks;
  // the run directory's newest checkpoint when the inputs were read: RunDir::open, under the
  // run's lock, refuses a directory another run has changed since
  std::optional<std::string> newest_checkpoint;
  std::vector<std::string> resume_warnings;  // newer checkpoints skipped as damaged at open, and why
  std::unique_ptr<LoadedModel> teacher;
  std::shared_ptr<const data::TokenShard> train_shard, val_shard;
  std::optional<data::BpeTokenizer> tokenizer;
  Provenance provenance;
  std::unique_ptr<LoadedModel> init;  // train.init_from
};


// run_dir: also check that the run directory can be created (or resumed). world_rank,
// world_size: with parallel.teacher_ranks, a student rank reads the teacher checkpoint's
// config but not its weights.
RunInputs gather_inputs(const TrainCommand& cmd, bool run_dir = true, int world_rank = 0, int world_size = 1);

}  // namespace kd
