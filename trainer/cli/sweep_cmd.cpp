// kdtrain sweep: a sweep file (trainer/sweep/sweep.h) -> one validated config per point, a run
// directory each, and one SLURM array job (or the points one after another with --local);
// --summary collects every run's final metrics into a table (Markdown, CSV) and a plot.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "trainer/cli/commands.h"
#include "trainer/config/config.h"
#include "trainer/sweep/sweep.h"
#include "base/errors.h"

namespace kd::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string quoted(const std::string& s) {  // for /bin/sh
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? sep : std::string()) + parts[i];
  return s;
}

std::string self_path() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("kdtrain") : p.string();
}

// The repository root the scripts come from: $KDTRAIN_ROOT, else the binary's parent's parent
// (build/kdtrain).
std::string repo_root() {
  if (const char* r = std::getenv("KDTRAIN_ROOT"); r && *r) return r;
  return fs::path(self_path()).parent_path().parent_path().string();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw RuntimeFailure(fmt::format("cannot write {}", path.string()));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json sweep_json(const Sweep& s) {
  json points = json::array();
  for (const SweepPoint& p : s.points) {
    json values = json::object();
    for (const auto& [k, v] : p.values) values[k] = v;
    points.push_back({{"name", p.name}, {"values", values}, {"overrides", p.overrides}});
  }
  return {{"name", s.name}, {"file", s.file}, {"base", s.base}, {"command", s.command}, {"axes", s.axes},
          {"points", points}};
}

std::string array_script(const Sweep& s, const fs::path& dir, const std::string& run_sh) {
  std::string sb = fmt::format("#!/usr/bin/env bash\n# written by kdtrain sweep {}: {} points\n", s.file, s.points.size());
  sb += fmt::format("#SBATCH --job-name=kdtrain-sweep-{}\n", s.name);
  sb += fmt::format("#SBATCH --array=0-{}{}\n", s.points.size() - 1,
                    s.slurm.max_concurrent > 0 ? fmt::format("%{}", s.slurm.max_concurrent) : "");
  sb += fmt::format("#SBATCH --ntasks={}\n#SBATCH --cpus-per-task={}\n", s.slurm.ntasks, s.slurm.cpus_per_task);
  if (!s.slurm.time.empty()) sb += fmt::format("#SBATCH --time={}\n", s.slurm.time);
  if (!s.slurm.partition.empty()) sb += fmt::format("#SBATCH --partition={}\n", s.slurm.partition);
  // p%3a: SLURM zero-pads the array index to the points' names (p000.out)
  sb += fmt::format("#SBATCH --output={}/logs/p%{}a.out\n", dir.string(), s.points.front().name.size() - 1);
  sb += "#SBATCH --requeue\n#SBATCH --open-mode=append\n#SBATCH --signal=B:USR1@180\n";
  sb += fmt::format("export KDTRAIN={} KDTRAIN_LAUNCHER={}\n", quoted(self_path()), s.slurm.launcher);
  sb += fmt::format("point=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {})\n", quoted((dir / "points.txt").string()));
  sb += fmt::format("exec {} {} {}/\"$point\".yaml\n", quoted(run_sh), s.command, quoted((dir / "points").string()));
  return sb;
}

int run_local(const Sweep& s, const fs::path& dir) {
  int failed = 0;
  for (const SweepPoint& p : s.points) {
    const fs::path log = dir / "logs" / (p.name + ".out");
    const std::string cmd = fmt::format("{} {} --config {} --auto-resume >>{} 2>&1", quoted(self_path()), s.command,
                                        quoted((dir / "points" / (p.name + ".yaml")).string()), quoted(log.string()));
    fmt::print("point {} ({}): running, log {}\n", p.name, point_label(p), log.string());
    std::fflush(stdout);
    const int status = std::system(cmd.c_str());
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc != 0) {
      ++failed;
      fmt::print("point {}: exit {} (see {})\n", p.name, rc, log.string());
    }
  }
  fmt::print("sweep {}: {} of {} points done{}; kdtrain sweep --summary {}\n", s.name, s.points.size() - failed,
             s.points.size(), failed ? fmt::format(", {} failed", failed) : "", dir.string());
  return failed ? kExitRuntime : 0;
}

// The last line of `type` in a metrics.jsonl text; null when none.
json last_line(const std::string& metrics, const std::string& type) {
  json last;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("type", "") == type) last = j;
  }
  return last;
}

std::string num(const json& j, const char* key, const char* format = "{:.4f}") {
  return j.is_object() && j.contains(key) && j[key].is_number() ? fmt::format(fmt::runtime(format), j[key].get<double>())
                                                                : std::string("-");
}

int summarize(const std::string& dir_arg) {
  const fs::path dir(dir_arg);
  KD_CHECK_INPUT(fs::exists(dir / "sweep.json"), "--summary {}: not a sweep directory (no sweep.json)", dir_arg);
  const json sw = json::parse(read_file(dir / "sweep.json"), nullptr, false);
  KD_CHECK_INPUT(!sw.is_discarded() && sw.contains("points"), "--summary {}: sweep.json is not readable", dir_arg);
  std::vector<std::string> axes = sw["axes"].get<std::vector<std::string>>();
  std::vector<std::string> head = {"point"};
  head.insert(head.end(), axes.begin(), axes.end());
  for (const char* h : {"steps", "loss", "ce", "kd", "val_loss", "val_ppl", "agreement", "val_kl"}) head.emplace_back(h);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> run_dirs, labels;
  for (const json& p : sw["points"]) {
    const std::string name = p["name"];
    std::vector<std::string> row = {name};
    for (const std::string& a : axes) row.push_back(p["values"].value(a, std::string("-")));
    const fs::path run = dir / "runs" / name;
    const std::string metrics = fs::exists(run / "metrics.jsonl") ? read_file(run / "metrics.jsonl") : std::string();
    const json tr = last_line(metrics, "train"), ev = last_line(metrics, "eval");
    std::string steps = "not started";
    if (tr.is_object()) {
      const Config cfg = load_config((dir / "points" / (name + ".yaml")).string());
      steps = fmt::format("{}/{}", tr.value("step", 0), cfg.train.steps);
      run_dirs.push_back(run.string());
      labels.push_back(name);
    }
    row.push_back(steps);
    for (const char* k : {"loss", "ce", "kd"}) row.push_back(num(tr, k));
    row.push_back(num(ev, "val_loss"));
    row.push_back(num(ev, "val_ppl", "{:.2f}"));
    row.push_back(num(ev, "agreement", "{:.3f}"));
    row.push_back(num(ev, "val_kl"));
    rows.push_back(std::move(row));
  }
  auto md_line = [](const std::vector<std::string>& cells) { return "| " + join(cells, " | ") + " |\n"; };
  std::string md = md_line(head) + md_line(std::vector<std::string>(head.size(), "---"));
  for (const auto& r : rows) md += md_line(r);
  std::string csv = join(head, ",") + "\n";
  for (const auto& r : rows) csv += join(r, ",") + "\n";
  write_file(dir / "summary.md", md);
  write_file(dir / "summary.csv", csv);
  fmt::print("sweep {} ({} points)\n\n{}\nwritten: {}, {}\n", sw.value("name", ""), rows.size(), md,
             (dir / "summary.md").string(), (dir / "summary.csv").string());
  // the curves of every started point in one figure (matplotlib, Debian's python3-matplotlib)
  const fs::path plot = fs::path(repo_root()) / "scripts" / "plot.py";
  if (run_dirs.empty()) return 0;
  if (!fs::exists(plot) || !fs::exists("/usr/bin/python3")) {
    fmt::print("plot: skipped ({} or /usr/bin/python3 not found)\n", plot.string());
    return 0;
  }
  std::string cmd = fmt::format("/usr/bin/python3 {} --out {} --labels {}", quoted(plot.string()),
                                quoted((dir / "summary.png").string()), quoted(join(labels, ",")));
  for (const std::string& r : run_dirs) cmd += fmt::format(" {}", quoted(r));
  cmd += " >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  fmt::print("plot: {}\n", rc == 0 ? (dir / "summary.png").string() : std::string("skipped (scripts/plot.py failed; needs python3-matplotlib)"));
  return 0;
}

}  // namespace

int run_sweep(const SweepOptions& o) {
  if (!o.summary.empty()) return summarize(o.summary);
  KD_CHECK_INPUT(!o.file.empty(), "sweep: give a sweep FILE (or --summary DIR)");
  const Sweep s = load_sweep(o.file);  // every point validated before anything is written
  const fs::path dir(s.dir);
  const std::string run_sh = (fs::path(repo_root()) / "scripts" / "slurm" / "run.sh").string();
  if (!o.local) {
    KD_CHECK_INPUT(fs::exists(run_sh), "sweep: {} not found (set KDTRAIN_ROOT to the kdtrain repository)", run_sh);
  }
  const std::string expanded = sweep_json(s).dump(1);
  if (fs::exists(dir / "sweep.json")) {
    KD_CHECK_INPUT(read_file(dir / "sweep.json") == expanded,
                   "sweep: {} holds another sweep (its sweep.json differs): choose another name or out, or remove it",
                   dir.string());
  }
  std::error_code ec;
  fs::create_directories(dir / "points", ec);
  fs::create_directories(dir / "logs", ec);
  if (ec) throw RuntimeFailure(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  std::string names;
  for (const SweepPoint& p : s.points) {
    write_file(dir / "points" / (p.name + ".yaml"), config_to_yaml(p.cfg));
    names += p.name + "\n";
  }
  write_file(dir / "points.txt", names);
  write_file(dir / "sweep.json", expanded);
  write_file(dir / "sweep.sbatch", array_script(s, dir, run_sh));
  fmt::print("sweep {}: {} points of {} ({} axes: {}), each validated; configs in {}\n", s.name, s.points.size(),
             s.base, s.axes.size(), join(s.axes, ", "), (dir / "points").string());
  if (o.local) return run_local(s, dir);
  if (o.no_submit) {
    fmt::print("not submitted: sbatch {}\n", (dir / "sweep.sbatch").string());
    return 0;
  }
  std::FILE* p = ::popen(fmt::format("sbatch --parsable {} 2>&1", quoted((dir / "sweep.sbatch").string())).c_str(), "r");
  if (!p) throw RuntimeFailure("sweep: cannot run sbatch");
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (status != 0) {
    throw RuntimeFailure(fmt::format("sweep: sbatch {} failed: {} (no SLURM here? run the points with --local)",
                                     (dir / "sweep.sbatch").string(), out));
  }
  write_file(dir / "job_id", out + "\n");
  fmt::print("submitted array job {}: {} tasks{}, logs {}/logs; when done: kdtrain sweep --summary {}\n", out,
             s.points.size(), s.slurm.max_concurrent > 0 ? fmt::format(", at most {} at a time", s.slurm.max_concurrent) : "",
             dir.string(), dir.string());
  return 0;
}

}  // namespace kd::cli
