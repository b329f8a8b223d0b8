#include "trainer/run/run_dir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "trainer/util/errors.h"

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

void RunDir::check(const std::string& path, RunMode mode) {
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

RunDir RunDir::open(const std::string& path, RunMode mode) {
  check(path, mode);
  const fs::path p(path);
  std::error_code ec;
  if (mode == RunMode::overwrite && fs::exists(p)) fs::remove_all(p, ec);
  fs::create_directories(p / "checkpoints", ec);
  if (ec) throw RuntimeFailure(fmt::format("cannot create run directory {}: {}", path, ec.message()));
  return RunDir(path);
}

std::string RunDir::checkpoint_path(std::int64_t step) const {
  return fmt::format("{}/step-{:08d}.h5", checkpoint_dir(), step);
}

std::optional<std::string> RunDir::latest_checkpoint(const std::string& run_path) {
  const auto c = checkpoints(fs::path(run_path) / "checkpoints");
  if (c.empty()) return std::nullopt;
  return c.back().second.string();
}

void RunDir::prune_checkpoints(int keep) const {
  auto c = checkpoints(checkpoint_dir());
  for (std::size_t i = 0; i + std::size_t(keep) < c.size(); ++i) fs::remove(c[i].second);
}

void RunDir::write_text(const std::string& file, const std::string& text) const {
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw RuntimeFailure(fmt::format("cannot write {}", tmp));
  }
  fs::rename(tmp, file);
}

}  // namespace kd
