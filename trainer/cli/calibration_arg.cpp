#include "trainer/cli/calibration_arg.h"

#include <filesystem>

#include <fmt/format.h>

#include "base/errors.h"
#include "data/token_dataset.h"
#include "trainer/cli/output_path.h"

namespace kd::cli {

CalibrationShard open_calibration(const std::string& flag, const LoadedModel& model, const std::string& checkpoint,
                                  const std::string& command, const std::string& out, const std::string& role) {
  CalibrationShard c;
  const Config& cfg = model.config;
  if (!flag.empty()) {
    c.path = flag;
    c.key = "--data";
  } else if (cfg.data.kind == DataKind::shards && !cfg.data.train.empty()) {
    c.path = cfg.data.train;
    c.key = fmt::format("data.train of {}'s config", checkpoint);
  } else {
    return c;
  }
  refuse_input_as_output(command, out, {c.path});
  std::error_code ec;
  KD_CHECK_INPUT(std::filesystem::exists(c.path, ec), "{}: {}: no such file (the {} data)", c.key, c.path, role);
  try {
    c.shard = std::make_shared<const data::TokenShard>(data::TokenShard::open(c.path));
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", c.key, e.what()));
  }
  if (model.tokenizer) {
    data::check_shard_tokenizer(*c.shard, role, model.tokenizer->hash(), "checkpoint " + checkpoint);
  }
  return c;
}

void check_calibration_length(const CalibrationShard& c, int seq, const std::string& seq_key) {
  KD_CHECK_INPUT(c.shard->size() > std::size_t(seq),
                 "{}: {} holds {} tokens, fewer than one calibration sequence of {} + 1 = {} ({})", c.key, c.path,
                 c.shard->size(), seq, seq + 1, seq_key);
}

}  // namespace kd::cli
