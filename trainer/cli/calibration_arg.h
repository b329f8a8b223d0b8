// The calibration data of `ptq` and `prune`: --data, else the checkpoint's own data.train
// (the training split: calibration never sees validation tokens). Every error names the
// option or key the path came from.
#pragma once

#include <memory>
#include <string>

#include "data/shards/token_shard.h"
#include "trainer/setup/model_loader.h"

namespace kd::cli {

struct CalibrationShard {
  std::string path;  // "" when neither gives one
  std::string key;   // "--data", or "data.train of CKPT's config"
  std::shared_ptr<const data::TokenShard> shard;
};

// Opens the shard; InputError naming the key: no such file, not a shard, another tokenizer's
// ids than the model's. `command` and `out`: the output that must not be the shard. role:
// what the shard is for, in messages ("calibration", "prompt").
CalibrationShard open_calibration(const std::string& flag, const LoadedModel& model, const std::string& checkpoint,
                                  const std::string& command, const std::string& out,
                                  const std::string& role = "calibration");

// InputError naming the key when the shard holds fewer than one window of seq + 1 tokens.
void check_calibration_length(const CalibrationShard& c, int seq, const std::string& seq_key);

}  // namespace kd::cli
