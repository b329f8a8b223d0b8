// runs/<name>/: the effective config, metrics.jsonl, checkpoints/, plots. A fresh run
// refuses to take over a directory that already holds a run unless told to resume it or
// to overwrite it. Created only after every input has been validated, so bad input never
// leaves a half-made run directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kd {

enum class RunMode { fresh, resume, overwrite };

class RunDir {
 public:
  // fresh: the directory must not hold a run; overwrite: its contents are removed;
  // resume: it must hold a run with at least one checkpoint.
  static RunDir open(const std::string& path, RunMode mode);
  // Checks (without creating anything) that open(path, mode) would succeed.
  static void check(const std::string& path, RunMode mode);

  const std::string& path() const { return path_; }
  std::string config_path() const { return path_ + "/config.yaml"; }
  std::string metrics_path() const { return path_ + "/metrics.jsonl"; }
  std::string checkpoint_dir() const { return path_ + "/checkpoints"; }
  std::string checkpoint_path(std::int64_t step) const { return checkpoint_path(path_, step); }
  static std::string checkpoint_path(const std::string& run_path, std::int64_t step);
  // The newest complete checkpoint (highest step), if any.
  std::optional<std::string> latest_checkpoint() const { return latest_checkpoint(path_); }
  // The same for a run directory given by path, without opening (creating) anything.
  static std::optional<std::string> latest_checkpoint(const std::string& run_path);
  // The newest checkpoint that passes CheckpointReader::verify(); each newer one that does
  // not is skipped with a line in `warnings` saying why and what is used instead. InputError
  // when none passes.
  static std::string verified_checkpoint(const std::string& run_path, std::vector<std::string>& warnings);
  // Deletes all but the newest `keep` checkpoints, and any .tmp a killed write left behind.
  void prune_checkpoints(int keep) const;
  // Writes a text file atomically (tmp + rename).
  void write_text(const std::string& file, const std::string& text) const;

 private:
  explicit RunDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

}  // namespace kd
