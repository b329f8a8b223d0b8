// The config schema machinery: each section is a struct with a `visit(V&)` member (or a
// free `visit(V&, S&)`) that names every field once, with its doc string and range.
// The same visit drives loading (YamlLoader), documentation (DocPrinter) and writing the
// effective config (YamlEmitter), so the three can never disagree.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace kd::config {

template <class E>
using Choices = std::vector<std::pair<const char*, E>>;

// A value's range. NaN is always refused, and so is +-inf unless `allow_inf` says the
// field gives inf a meaning: `> 0` means a finite number above 0.
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;    // lo < x instead of lo <= x
  bool allow_inf = false;  // +-inf accepted (within lo, hi)
};
inline Range at_least(double lo) { return {lo, std::numeric_limits<double>::infinity(), false}; }
inline Range above(double lo) { return {lo, std::numeric_limits<double>::infinity(), true}; }
inline Range between(double lo, double hi) { return {lo, hi, false}; }
inline Range open_between(double lo, double hi) { return {lo, hi, true}; }
inline constexpr Range kAny{};

// Reads a YAML tree into a config struct. Unknown keys, wrong types and values out of
// range throw InputError naming file:line:column and the key path.
class YamlLoader {
 public:
  // `overridden`: key paths set on the command line (--set), named as such in errors.
  YamlLoader(std::string file, YAML::Node node, std::string path = "",
             const std::vector<std::string>* overridden = nullptr)
      : file_(std::move(file)), node_(std::move(node)), path_(std::move(path)),
        overridden_(overridden) {}

  void field(const char* key, int& v, const char* doc, Range r = kAny);
  void field(const char* key, std::int64_t& v, const char* doc, Range r = kAny);
  void field(const char* key, double& v, const char* doc, Range r = kAny);
  void field(const char* key, bool& v, const char* doc);
  void field(const char* key, std::string& v, const char* doc);
  void field(const char* key, std::vector<std::pair<int, int>>& v, const char* doc);
  // a list of strings; a single string is read as a list of one
  void field(const char* key, std::vector<std::string>& v, const char* doc);
  // a list of numbers, each in r; a single number is read as a list of one
  void field(const char* key, std::vector<double>& v, const char* doc, Range r = kAny);
  template <class E>
  void choice(const char* key, E& v, const char* doc, const Choices<E>& choices) {
    std::string s;
    for (const auto& [name, value] : choices) {
      if (value == v) s = name;
    }
    field(key, s, doc);
    for (const auto& [name, value] : choices) {
      if (s == name) {
        v = value;
        return;
      }
    }
    fail_choice(key, s, names(choices));
  }
  template <class S>
  void section(const char* key, S& s, const char* doc);
  // A section that may be absent; `present` tells whether it was given.
  template <class S>
  void optional_section(const char* key, bool& present, S& s, const char* doc);
  // A mapping of user-chosen names (e.g. tensor-name patterns) to sections, kept in file order.
  template <class S>
  void map_section(const char* key, std::vector<std::pair<std::string, S>>& v, const char* doc);
  // After visiting: any key the schema did not name is an error.
  void reject_unknown() const;

 private:
  template <class E>
  static std::string names(const Choices<E>& c) {
    std::string out;
    for (const auto& [n, v] : c) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
  }
  [[noreturn]] void fail(const YAML::Node& n, const char* key, const std::string& what) const;
  [[noreturn]] void fail_choice(const char* key, const std::string& got,
                                const std::string& allowed) const;
  YAML::Node get(const char* key);
  std::string where(const YAML::Node& n, const char* key = nullptr) const;
  std::string key_path(const char* key) const;
  void check_range(const char* key, const YAML::Node& n, double x, Range r) const;
  template <class T>
  T scalar(const char* key, const YAML::Node& n, const char* type_name) const;

  std::string file_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::string> seen_;
  const std::vector<std::string>* overridden_ = nullptr;
};

// Prints every field: key path, type, default and doc (`kdtrain config --doc`).
class DocPrinter {
 public:
  explicit DocPrinter(std::string& out, std::string path = "") : out_(out), path_(std::move(path)) {}
  template <class T>
  void field(const char* key, const T& v, const char* doc, Range r = kAny) {
    line(key, type_name(v), value_text(v), doc, r);
  }
  template <class E>
  void choice(const char* key, const E& v, const char* doc, const Choices<E>& choices) {
    std::string def, all;
    for (const auto& [n, e] : choices) {
      if (e == v) def = n;
      if (!all.empty()) all += '|';
      all += n;
    }
    line(key, all, def, doc, kAny);
  }
  template <class S>
  void section(const char* key, S& s, const char* doc);
  template <class S>
  void optional_section(const char* key, bool&, S& s, const char* doc) {
    section(key, s, doc);
  }
  template <class S>
  void map_section(const char* key, std::vector<std::pair<std::string, S>>&, const char* doc) {
    S proto{};
    section((std::string(key) + ".<name>").c_str(), proto, doc);
  }

 private:
  void line(const char* key, const std::string& type, const std::string& def, const char* doc,
            Range r);
  static std::string type_name(int) { return "int"; }
  static std::string type_name(std::int64_t) { return "int"; }
  static std::string type_name(double) { return "float"; }
  static std::string type_name(bool) { return "bool"; }
  static std::string type_name(const std::string&) { return "string"; }
  static std::string type_name(const std::vector<std::pair<int, int>>&) { return "[[int, int], ...]"; }
  static std::string type_name(const std::vector<std::string>&) { return "[string, ...]"; }
  static std::string type_name(const std::vector<double>&) { return "[float, ...]"; }
  static std::string value_text(int v) { return std::to_string(v); }
  static std::string value_text(std::int64_t v) { return std::to_string(v); }
  static std::string value_text(double v);
  static std::string value_text(bool v) { return v ? "true" : "false"; }
  static std::string value_text(const std::string& v) { return "\"" + v + "\""; }
  static std::string value_text(const std::vector<std::pair<int, int>>& v);
  static std::string value_text(const std::vector<std::string>& v);
  static std::string value_text(const std::vector<double>& v);
  std::string& out_;
  std::string path_;
};

// Writes the effective config as YAML (stored in run directories and checkpoints).
// The shortest decimal text that parses back to exactly `x` (std::to_chars), in YAML's
// spelling for the non-finite values (.inf, -.inf, .nan).
std::string shortest_double(double x);

class YamlEmitter {
 public:
  explicit YamlEmitter(YAML::Emitter& e) : e_(e) {}
  template <class T>
  void field(const char* key, const T& v, const char*, Range = kAny) {
    e_ << YAML::Key << key << YAML::Value << v;
  }
  // Doubles in their shortest form that reads back exactly (0.9, not 0.90000000000000002).
  void field(const char* key, const double& v, const char*, Range = kAny) {
    e_ << YAML::Key << key << YAML::Value << shortest_double(v);
  }
  void field(const char* key, const std::vector<std::pair<int, int>>& v, const char*) {
    e_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& [a, b] : v) e_ << YAML::Flow << YAML::BeginSeq << a << b << YAML::EndSeq;
    e_ << YAML::EndSeq;
  }
  void field(const char* key, const std::vector<std::string>& v, const char*) {
    e_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& s : v) e_ << s;
    e_ << YAML::EndSeq;
  }
  void field(const char* key, const std::vector<double>& v, const char*, Range = kAny) {
    e_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const double x : v) e_ << shortest_double(x);
    e_ << YAML::EndSeq;
  }
  template <class E>
  void choice(const char* key, const E& v, const char*, const Choices<E>& choices) {
    for (const auto& [n, e] : choices) {
      if (e == v) e_ << YAML::Key << key << YAML::Value << n;
    }
  }
  template <class S>
  void section(const char* key, S& s, const char*) {
    e_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    YamlEmitter sub(e_);
    visit_section(sub, s);
    e_ << YAML::EndMap;
  }
  template <class S>
  void optional_section(const char* key, bool& present, S& s, const char* doc) {
    if (present) section(key, s, doc);
  }
  template <class S>
  void map_section(const char* key, std::vector<std::pair<std::string, S>>& v, const char* doc) {
    e_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    for (auto& [name, s] : v) section(name.c_str(), s, doc);
    e_ << YAML::EndMap;
  }

 private:
  YAML::Emitter& e_;
};

// Sections either have a member visit or a free visit found by ADL.
template <class V, class S>
void visit_section(V& v, S& s) {
  if constexpr (requires { s.visit(v); }) {
    s.visit(v);
  } else {
    visit(v, s);
  }
}

template <class S>
void YamlLoader::section(const char* key, S& s, const char*) {
  YAML::Node n = get(key);
  YamlLoader sub(file_, n.IsDefined() && !n.IsNull() ? n : YAML::Node(YAML::NodeType::Map),
                 key_path(key), overridden_);
  if (n.IsDefined() && !n.IsNull() && !n.IsMap()) fail(n, key, "must be a mapping of keys");
  visit_section(sub, s);
  sub.reject_unknown();
}

template <class S>
void YamlLoader::optional_section(const char* key, bool& present, S& s, const char* doc) {
  present = node_[key].IsDefined() && !node_[key].IsNull();
  if (present) {
    section(key, s, doc);
  } else {
    seen_.emplace_back(key);
  }
}

template <class S>
void YamlLoader::map_section(const char* key, std::vector<std::pair<std::string, S>>& v, const char*) {
  const YAML::Node n = get(key);
  if (!n.IsDefined() || n.IsNull()) return;
  if (!n.IsMap()) fail(n, key, "must be a mapping of names to sections");
  v.clear();
  for (const auto& entry : n) {
    if (!entry.first.IsScalar()) fail(entry.first, key, "has a key that is not a plain name (a YAML complex key)");
    const std::string name = entry.first.Scalar();
    if (!entry.second.IsMap()) fail(entry.second, key, "entry '" + name + "' must be a mapping of keys");
    S s{};
    YamlLoader sub(file_, entry.second, key_path(key) + "." + name, overridden_);
    visit_section(sub, s);
    sub.reject_unknown();
    v.emplace_back(name, std::move(s));
  }
}

template <class S>
void DocPrinter::section(const char* key, S& s, const char* doc) {
  const std::string p = path_.empty() ? key : path_ + "." + key;
  out_ += p + ":  " + doc + "\n";
  DocPrinter sub(out_, p);
  visit_section(sub, s);
}

}  // namespace kd::config
