#include "trainer/sweep/sweep.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "base/errors.h"
#include "base/files.h"

namespace kd {

namespace fs = std::filesystem;

namespace {

// "file:line:col: " of a node (yaml-cpp marks are 0-based).
std::string at(const std::string& file, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? fmt::format("{}:{}:{}: ", file, m.line + 1, m.column + 1) : file + ": ";
}

// A value as YAML text for --set: a scalar as written, anything else in flow style.
std::string yaml_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e.SetSeqFormat(YAML::Flow);
  e << n;
  return e.c_str();
}

void check_keys(const std::string& file, const YAML::Node& map, const std::string& where,
                const std::set<std::string>& allowed) {
  KD_CHECK_INPUT(map.IsMap(), "{}{} must be a mapping", at(file, map), where);
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw InputError(fmt::format("{}unknown key '{}{}' (allowed: {})", at(file, kv.first),
                                   where.empty() ? "" : where + ".", key, list));
    }
  }
}

// key -> value text of a mapping of config keys to values.
std::vector<std::pair<std::string, std::string>> assignments(const std::string& file, const YAML::Node& map,
                                                             const std::string& where) {
  KD_CHECK_INPUT(map.IsMap(), "{}{} must map config keys (a.b) to values", at(file, map), where);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& kv : map) out.emplace_back(kv.first.Scalar(), yaml_text(kv.second));
  return out;
}

int positive(const std::string& file, const YAML::Node& n, const std::string& key) {
  int v = 0;
  try {
    v = n.as<int>();
  } catch (const YAML::Exception&) {
    throw InputError(fmt::format("{}slurm.{} must be an integer (got '{}')", at(file, n), key, yaml_text(n)));
  }
  KD_CHECK_INPUT(v >= 0, "{}slurm.{} must be >= 0 (got {})", at(file, n), key, v);
  return v;
}

}  // namespace

std::string point_label(const SweepPoint& p) {
  std::string s;
  for (const auto& [k, v] : p.values) s += fmt::format("{}{}={}", s.empty() ? "" : ", ", k, v);
  return s;
}

Sweep load_sweep(const std::string& file) {
  require_regular_file(file, "the sweep file");  // a FIFO would block the read
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::BadFile&) {
    throw InputError(fmt::format("{}: cannot open the sweep file", file));
  } catch (const YAML::ParserException& e) {
    throw InputError(fmt::format("{}:{}:{}: YAML syntax error: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  check_keys(file, root, "", {"base", "command", "name", "out", "set", "grid", "list", "slurm"});
  Sweep s;
  s.file = file;
  KD_CHECK_INPUT(root["base"] && root["base"].IsScalar(), "{}: the sweep needs 'base: CONFIG' (a path relative to it)",
                 file);
  const fs::path base(root["base"].Scalar());
  s.base = (base.is_absolute() ? base : fs::path(file).parent_path() / base).lexically_normal().string();
  KD_CHECK_INPUT(fs::is_regular_file(s.base), "{}base {}: cannot open the config file", at(file, root["base"]), s.base);
  s.name = root["name"] ? root["name"].Scalar() : fs::path(file).stem().string();
  KD_CHECK_INPUT(!s.name.empty() && s.name.find('/') == std::string::npos, "{}name '{}' must be non-empty, without '/'",
                 at(file, root["name"]), s.name);
  s.dir = (fs::path(root["out"] ? root["out"].Scalar() : std::string("sweeps")) / s.name).string();

  std::vector<std::pair<std::string, std::string>> fixed;
  if (root["set"]) fixed = assignments(file, root["set"], "set");
  // grid axes: key -> values
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;
  if (root["grid"]) {
    KD_CHECK_INPUT(root["grid"].IsMap(), "{}grid must map config keys to lists of values", at(file, root["grid"]));
    for (const auto& kv : root["grid"]) {
      const std::string key = kv.first.Scalar();
      KD_CHECK_INPUT(kv.second.IsSequence() && kv.second.size() > 0, "{}grid.{} must be a non-empty list of values",
                     at(file, kv.second), key);
      std::vector<std::string> values;
      for (const auto& v : kv.second) values.push_back(yaml_text(v));
      grid.emplace_back(key, std::move(values));
      s.axes.push_back(key);
    }
  }
  std::vector<std::vector<std::pair<std::string, std::string>>> list{{}};
  if (root["list"]) {
    KD_CHECK_INPUT(root["list"].IsSequence() && root["list"].size() > 0,
                   "{}list must be a non-empty list of mappings (config key: value)", at(file, root["list"]));
    list.clear();
    for (const auto& item : root["list"]) {
      list.push_back(assignments(file, item, "a list entry"));
      for (const auto& [k, v] : list.back()) {
        if (std::find(s.axes.begin(), s.axes.end(), k) == s.axes.end()) s.axes.push_back(k);
      }
    }
  }
  KD_CHECK_INPUT(!grid.empty() || root["list"], "{}: the sweep has no axes (grid or list)", file);

  if (root["slurm"]) {
    const YAML::Node& sl = root["slurm"];
    check_keys(file, sl, "slurm", {"ntasks", "cpus_per_task", "time", "partition", "max_concurrent", "launcher"});
    if (sl["ntasks"]) s.slurm.ntasks = positive(file, sl["ntasks"], "ntasks");
    if (sl["cpus_per_task"]) s.slurm.cpus_per_task = positive(file, sl["cpus_per_task"], "cpus_per_task");
    if (sl["max_concurrent"]) s.slurm.max_concurrent = positive(file, sl["max_concurrent"], "max_concurrent");
    if (sl["time"]) s.slurm.time = sl["time"].Scalar();
    if (sl["partition"]) s.slurm.partition = sl["partition"].Scalar();
    if (sl["launcher"]) s.slurm.launcher = sl["launcher"].Scalar();
    KD_CHECK_INPUT(s.slurm.ntasks >= 1 && s.slurm.cpus_per_task >= 1, "{}slurm.ntasks and slurm.cpus_per_task must be >= 1",
                   at(file, sl));
    KD_CHECK_INPUT(s.slurm.launcher == "srun" || s.slurm.launcher == "mpirun", "{}slurm.launcher is '{}' (srun or mpirun)",
                   at(file, sl["launcher"]), s.slurm.launcher);
  }

  // Every combination: the grid's first axis varies slowest, then the list.
  std::size_t total = list.size();
  for (const auto& [k, v] : grid) total *= v.size();
  KD_CHECK_INPUT(total <= 100000, "{}: {} points is more than a sweep should submit (100000)", file, total);
  const int digits = std::max<int>(3, int(std::to_string(total - 1).size()));
  for (std::size_t i = 0; i < total; ++i) {
    SweepPoint p;
    p.name = fmt::format("p{:0{}d}", i, digits);
    std::size_t rest = i / list.size();
    std::vector<std::pair<std::string, std::string>> chosen(grid.size());
    for (std::size_t a = grid.size(); a-- > 0;) {
      chosen[a] = {grid[a].first, grid[a].second[rest % grid[a].second.size()]};
      rest /= grid[a].second.size();
    }
    for (const auto& kv : list[i % list.size()]) chosen.push_back(kv);
    p.values = chosen;
    for (const auto& [k, v] : fixed) p.overrides.push_back(k + "=" + v);
    for (const auto& [k, v] : chosen) p.overrides.push_back(k + "=" + v);
    p.overrides.push_back("run.dir=" + (fs::path(s.dir) / "runs").string());
    p.overrides.push_back("run.name=" + p.name);
    try {
      p.cfg = load_config(s.base, p.overrides);
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: point {} ({}) is invalid: {}", file, p.name, point_label(p), e.what()));
    }
    s.points.push_back(std::move(p));
  }
  const bool teacher = s.points.front().cfg.has_teacher;
  s.command = root["command"] ? root["command"].Scalar() : (teacher ? "distill" : "train");
  KD_CHECK_INPUT(s.command == "train" || s.command == "distill", "{}command is '{}' (train or distill)",
                 at(file, root["command"]), s.command);
  for (const SweepPoint& p : s.points) {
    KD_CHECK_INPUT(p.cfg.has_teacher == (s.command == "distill"), "{}: point {} ({}): {} {} a teacher section", file,
                   p.name, point_label(p), s.command, s.command == "distill" ? "needs" : "refuses");
  }
  return s;
}

}  // namespace kd
