#include "base/schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <vector>

#include "base/errors.h"

namespace kd::config {

std::string YamlLoader::where(const YAML::Node& n, const char* key) const {
  if (key != nullptr && overridden_ != nullptr) {
    const std::string p = key_path(key);
    for (const auto& o : *overridden_) {
      if (o == p) return "--set " + p;
    }
  }
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return file_;
  return fmt::format("{}:{}:{}", file_, m.line + 1, m.column + 1);
}

std::string YamlLoader::key_path(const char* key) const {
  return path_.empty() ? std::string(key) : path_ + "." + key;
}

YAML::Node YamlLoader::get(const char* key) {
  seen_.emplace_back(key);
  return node_[key];
}

void YamlLoader::fail(const YAML::Node& n, const char* key, const std::string& what) const {
  throw InputError(fmt::format("{}: {} {}", where(n.IsDefined() ? n : node_, key), key_path(key), what));
}

void YamlLoader::fail_choice(const char* key, const std::string& got,
                             const std::string& allowed) const {
  throw InputError(fmt::format("{}: {} is '{}'; allowed values: {}", where(node_[key], key),
                               key_path(key), got, allowed));
}

template <class T>
T YamlLoader::scalar(const char* key, const YAML::Node& n, const char* type_name) const {
  if (!n.IsScalar()) fail(n, key, fmt::format("must be {}", type_name));
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail(n, key, fmt::format("must be {} (got '{}')", type_name, n.Scalar()));
  }
}

void YamlLoader::check_range(const char* key, const YAML::Node& n, double x, Range r) const {
  const bool low_ok = r.lo_open ? x > r.lo : x >= r.lo;
  if (!low_ok || x > r.hi || std::isnan(x) || (std::isinf(x) && !r.allow_inf)) {
    std::string bound = fmt::format("{} {}", r.lo_open ? ">" : ">=", r.lo);
    if (std::isfinite(r.hi)) bound += fmt::format(" and <= {}", r.hi);
    if (std::isinf(x) && !r.allow_inf) {
      bound = std::isfinite(r.lo) || std::isfinite(r.hi) ? "finite, " + bound : "finite";
    }
    fail(n, key, fmt::format("= {} is out of range: must be {}", x, bound));
  }
}

void YamlLoader::field(const char* key, int& v, const char*, Range r) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  v = scalar<int>(key, n, "an integer");
  check_range(key, n, v, r);
}

void YamlLoader::field(const char* key, std::int64_t& v, const char*, Range r) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  v = scalar<std::int64_t>(key, n, "an integer");
  check_range(key, n, double(v), r);
}

void YamlLoader::field(const char* key, double& v, const char*, Range r) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  v = scalar<double>(key, n, "a number");
  check_range(key, n, v, r);
}

void YamlLoader::field(const char* key, bool& v, const char*) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  v = scalar<bool>(key, n, "true or false");
}

void YamlLoader::field(const char* key, std::string& v, const char*) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  v = scalar<std::string>(key, n, "a string");
}

void YamlLoader::field(const char* key, std::vector<std::pair<int, int>>& v, const char*) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  if (!n.IsSequence()) fail(n, key, "must be a list of [int, int] pairs");
  v.clear();
  for (const auto& item : n) {
    if (!item.IsSequence() || item.size() != 2) fail(item, key, "entries must be [int, int] pairs");
    v.emplace_back(scalar<int>(key, item[0], "an integer"), scalar<int>(key, item[1], "an integer"));
  }
}

void YamlLoader::field(const char* key, std::vector<std::string>& v, const char*) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  v.clear();
  if (n.IsScalar()) {
    v.push_back(scalar<std::string>(key, n, "a string"));
    return;
  }
  if (!n.IsSequence()) fail(n, key, "must be a list of strings");
  for (const auto& item : n) v.push_back(scalar<std::string>(key, item, "a string"));
}

void YamlLoader::field(const char* key, std::vector<double>& v, const char* doc, Range r) {
  const YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  if (!n.IsScalar() && !n.IsSequence()) fail(n, key, "must be a list of numbers");
  std::vector<double> out;
  for (const auto& item : n.IsScalar() ? std::vector<YAML::Node>{n} : std::vector<YAML::Node>(n.begin(), n.end())) {
    // each element read and range-checked as a scalar field of its own
    YamlLoader one(file_, YAML::Node(YAML::NodeType::Map), path_, overridden_);
    one.node_[key] = item;
    double x = 0;
    one.field(key, x, doc, r);
    out.push_back(x);
  }
  v = std::move(out);
}

namespace {
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}
}  // namespace

void YamlLoader::reject_unknown() const {
  if (!node_.IsMap()) return;
  // yaml-cpp keeps both entries of a repeated key but lookups see only one: name both lines.
  std::vector<std::pair<std::string, YAML::Node>> keys;
  for (const auto& kv : node_) {
    // `? [a, b]` makes a complex key, which no schema names: refused by place, not as a
    // yaml-cpp conversion error without the file
    if (!kv.first.IsScalar()) {
      throw InputError(fmt::format("{}: a key {}is not a plain name (a YAML complex key)", where(kv.first),
                                   path_.empty() ? "" : "of '" + path_ + "' "));
    }
    const std::string k = kv.first.Scalar();
    for (const auto& [prev, prev_node] : keys) {
      if (prev == k) {
        throw InputError(fmt::format("{}: duplicate key '{}' (first given at line {})", where(kv.first),
                                     key_path(k.c_str()), prev_node.Mark().line + 1));
      }
    }
    keys.emplace_back(k, kv.first);
  }
  for (const auto& [k, knode] : keys) {
    if (std::find(seen_.begin(), seen_.end(), k) != seen_.end()) continue;
    std::string best;
    std::size_t best_d = 3;  // suggest only close names
    for (const auto& s : seen_) {
      const std::size_t d = edit_distance(k, s);
      if (d < best_d) {
        best_d = d;
        best = s;
      }
    }
    const std::string hint = best.empty() ? "" : fmt::format(" (did you mean '{}'?)", key_path(best.c_str()));
    throw InputError(fmt::format("{}: unknown key '{}'{}", where(knode), key_path(k.c_str()), hint));
  }
}

void DocPrinter::line(const char* key, const std::string& type, const std::string& def,
                      const char* doc, Range r) {
  const std::string p = path_.empty() ? key : path_ + "." + key;
  std::string range;
  if (std::isfinite(r.lo) || std::isfinite(r.hi)) {
    range = fmt::format(", {} {}", r.lo_open ? ">" : ">=", r.lo);
    if (std::isfinite(r.hi)) range += fmt::format(", <= {}", r.hi);
  }
  out_ += fmt::format("  {} ({}, default {}{}): {}\n", p, type, def, range, doc);
}

std::string DocPrinter::value_text(double v) { return fmt::format("{}", v); }

std::string DocPrinter::value_text(const std::vector<std::pair<int, int>>& v) {
  std::string s = "[";
  for (const auto& [a, b] : v) s += fmt::format("{}[{}, {}]", s.size() > 1 ? ", " : "", a, b);
  return s + "]";
}

std::string DocPrinter::value_text(const std::vector<double>& v) {
  std::string s = "[";
  for (const double x : v) s += fmt::format("{}{}", s.size() > 1 ? ", " : "", value_text(x));
  return s + "]";
}

std::string DocPrinter::value_text(const std::vector<std::string>& v) {
  std::string s = "[";
  for (const auto& x : v) s += fmt::format("{}\"{}\"", s.size() > 1 ? ", " : "", x);
  return s + "]";
}

std::string shortest_double(double x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

}  // namespace kd::config
