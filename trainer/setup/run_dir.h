// runs/<name>/: the effective config, metrics.jsonl, checkpoints/, plots, and `lock` (the
// one-run-per-directory lock, trainer/setup/run_lock.h). A fresh run refuses to take over a
// directory that already holds a run unless told to resume it or to overwrite it. Created
// only after every input has been validated, so bad input never leaves a half-made run
// directory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kd {

class RunLock;

// "checkpoint PATH is damaged or incomplete: WHY", from a reader's error (which starts with
// the path): the line a resume prints when it passes a checkpoint by.
std::string damaged_checkpoint_note(const std::string& path, const std::string& error);

enum class RunMode { fresh, resume, overwrite };

class RunDir {
 public:
  // fresh: the directory must not hold a run; overwrite: its contents are removed;
  // resume: it must hold a run with at least one checkpoint. The run's lock is taken first,
  // before anything in the directory is written or removed, and held while a copy of the
  // RunDir lives; then `mode` is checked again, and `newest` (the newest checkpoint when the
  // inputs were read) must still be the newest: another run may have ended in between.
  // `notes`: lines to print (a dead holder's lock taken over).
  static RunDir open(const std::string& path, RunMode mode, const std::optional<std::string>& newest,
                     std::vector<std::string>& notes);
  // Checks (without creating anything) that open(path, mode) would succeed, and that no live
  // run holds the directory (RunLock::check_free): called before its files are read.
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
  // The run's checkpoints, newest first: what a resume tries in turn (the first that reads
  // whole is used; every read checks what it reads, trainer/run/run_resume.h).
  static std::vector<std::string> resume_candidates(const std::string& run_path);
  // Deletes all but the newest `keep` checkpoints, and any .tmp a killed write left behind.
  void prune_checkpoints(int keep) const;
  // Writes a text file atomically (tmp + fsync + rename); RuntimeFailure naming it if it cannot.
  void write_text(const std::string& file, const std::string& text) const;

 private:
  static void check_mode(const std::string& path, RunMode mode);
  RunDir(std::string p, std::shared_ptr<RunLock> lock) : path_(std::move(p)), lock_(std::move(lock)) {}
  std::string path_;
  std::shared_ptr<RunLock> lock_;
};

}  // namespace kd
