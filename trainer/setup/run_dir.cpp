#include "trainer/setup/run_dir.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "base/errors.h"
#include "base/file_io.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/setup/run_lock.h"

namespace kd {

namespace fs = std::filesystem;

namespace {
bool holds_run(const fs::path& p) {
  return fs::exists(p / "config.yaml") || fs::exists(p / "metrics.jsonl") || fs::exists(p / "checkpoints");
}

std::vector<std::pair<std::int64_t, fs::path>> checkpoints(const fs::path& dir) {
  std::vector<std::pair<std::int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    // step-<digits>.h5
    if (n.rfind("step-", 0) != 0 || e.path().extension() != ".h5") continue;
    const std::string digits = n.substr(5, n.size() - 5 - 3);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    out.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::string damaged_checkpoint_note(const std::string& path, const std::string& error) {
  const bool named = error.rfind(path + ": ", 0) == 0;
  return fmt::format("checkpoint {} is damaged or incomplete: {}", path, named ? error.substr(path.size() + 2) : error);
}

void RunDir::check(const std::string& path, RunMode mode) {
  RunLock::check_free(path);
  check_mode(path, mode);
}

void RunDir::check_mode(const std::string& path, RunMode mode) {
  const fs::path p(path);
  switch (mode) {
    case RunMode::fresh:
      KD_CHECK_INPUT(!holds_run(p),
                     "{} already holds a run: pass --resume {} to continue it, or --overwrite to replace it",
                     path, path);
      break;
    case RunMode::resume:
      KD_CHECK_INPUT(fs::is_directory(p), "--resume {}: no such run directory", path);
      KD_CHECK_INPUT(!checkpoints(p / "checkpoints").empty(), "--resume {}: the run has no checkpoint to resume from",
                     path);
      break;
    case RunMode::overwrite:
      break;
  }
}

RunDir RunDir::open(const std::string& path, RunMode mode, const std::optional<std::string>& newest,
                    std::vector<std::string>& notes) {
  check(path, mode);
  const fs::path p(path);
  std::error_code ec;
  fs::create_directories(p, ec);  // the lock file's home; nothing in it is touched before the lock
  if (ec) throw RuntimeFailure(fmt::format("cannot create run directory {}: {}", path, ec.message()));
  std::string note;
  std::shared_ptr<RunLock> lock = RunLock::acquire(path, note);
  if (!note.empty()) notes.push_back(note);
  // what this run decided from while reading its inputs may have changed under another run
  check_mode(path, mode);
  const std::optional<std::string> now = latest_checkpoint(path);
  KD_CHECK_INPUT(now == newest, "run directory {} changed while this run read its inputs (newest checkpoint {} then, "
                 "{} now: another run wrote it); run the command again", path, newest.value_or("none"),
                 now.value_or("none"));
  if (mode == RunMode::overwrite) {
    for (const auto& e : fs::directory_iterator(p, ec)) {
      if (e.path().filename() != "lock") fs::remove_all(e.path(), ec);
      if (ec) break;
    }
    if (ec) throw RuntimeFailure(fmt::format("cannot empty run directory {} (--overwrite): {}", path, ec.message()));
  }
  fs::create_directories(p / "checkpoints", ec);
  if (ec) throw RuntimeFailure(fmt::format("cannot create run directory {}: {}", path, ec.message()));
  return RunDir(path, std::move(lock));
}

std::string RunDir::checkpoint_path(const std::string& run_path, std::int64_t step) {
  return fmt::format("{}/checkpoints/step-{:08d}.h5", run_path, step);
}

std::vector<std::string> RunDir::resume_candidates(const std::string& run_path) {
  std::vector<std::string> out;
  const auto list = checkpoints(fs::path(run_path) / "checkpoints");
  for (auto it = list.rbegin(); it != list.rend(); ++it) out.push_back(it->second.string());
  return out;
}

std::optional<std::string> RunDir::latest_checkpoint(const std::string& run_path) {
  const auto c = checkpoints(fs::path(run_path) / "checkpoints");
  if (c.empty()) return std::nullopt;
  return c.back().second.string();
}

void RunDir::prune_checkpoints(int keep) const {
  auto c = checkpoints(checkpoint_dir());
  std::error_code ec;
  for (std::size_t i = 0; i + std::size_t(keep) < c.size(); ++i) fs::remove(c[i].second, ec);
  for (const auto& e : fs::directory_iterator(checkpoint_dir(), ec)) {
    if (e.path().extension() == ".tmp") fs::remove(e.path(), ec);
  }
}

void RunDir::write_text(const std::string& file, const std::string& text) const { write_file_atomic(file, text); }

}  // namespace kd
