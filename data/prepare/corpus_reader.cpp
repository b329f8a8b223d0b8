#include "data/prepare/corpus_reader.h"

#include <fnmatch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "base/errors.h"
#include "base/files.h"
#include "data/tokenizer/pretokenize.h"

namespace kd::data {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string read_file(const fs::path& p) {
  require_regular_file(p.string(), "corpus file");  // a FIFO would block the read
  std::ifstream in(p, std::ios::binary);
  KD_CHECK_INPUT(in.good(), "{}: cannot open corpus file", p.string());
  std::ostringstream s;
  s << in.rdbuf();
  KD_CHECK_INPUT(!in.bad(), "{}: read error", p.string());
  return s.str();
}

// Why `text` is not UTF-8 text ("" when it is): a NUL byte (a binary format) or a byte that
// starts no valid UTF-8 sequence.
std::string not_text(std::string_view text) {
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return fmt::format("binary (a NUL byte at offset {})", nul);
  }
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length_at(text, i);
    if (n == 0) return fmt::format("not UTF-8 text (an invalid byte at offset {})", i);
    i += n;
  }
  return {};
}

std::string kind_of(const fs::path& p) {
  if (p.extension() == ".jsonl") return "jsonl";
  if (p.extension() == ".json") return "json";
  return "text";
}

// The "text" of one JSON value, or nullopt when it is not an object with a string "text".
std::optional<std::string> text_field(const json& v) {
  if (!v.is_object()) return std::nullopt;
  const auto it = v.find("text");
  if (it == v.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

void read_jsonl(const fs::path& p, const std::string& text, std::vector<CorpusDocument>& out) {
  std::size_t line_no = 0;
  for (std::size_t begin = 0; begin < text.size();) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank lines are allowed
    json obj;
    try {
      obj = json::parse(line.begin(), line.end());
    } catch (const json::parse_error& e) {
      throw InputError(fmt::format("{}:{}: not a JSON object ({})", p.string(), line_no, e.what()));
    }
    KD_CHECK_INPUT(obj.is_object(), "{}:{}: expected a JSON object with a \"text\" field", p.string(), line_no);
    const auto it = obj.find("text");
    KD_CHECK_INPUT(it != obj.end(), "{}:{}: the object has no \"text\" field", p.string(), line_no);
    KD_CHECK_INPUT(it->is_string(), "{}:{}: field \"text\" must be a string, found {}", p.string(), line_no,
                   it->type_name());
    out.push_back({it->get<std::string>(), fmt::format("{}:{}", p.string(), line_no)});
  }
}

// A .json file's documents; "" when read, else why it holds none (for a directory's file).
std::string read_json(const fs::path& p, const std::string& text, std::vector<CorpusDocument>& out) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(fmt::format("{}: not JSON ({})", p.string(), e.what()));
  }
  if (const auto t = text_field(doc)) {
    out.push_back({*t, p.string()});
    return {};
  }
  if (!doc.is_array()) return "JSON without a \"text\" field (neither an object with one nor an array of them)";
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto t = text_field(doc[i]);
    KD_CHECK_INPUT(t.has_value(), "{}: element {} of the array is not an object with a string \"text\" field",
                   p.string(), i);
    out.push_back({*t, fmt::format("{}[{}]", p.string(), i)});
  }
  return {};
}

// Reads one file into `c`. `named`: given as an input itself (its problems are errors);
// otherwise found in a directory (its problems skip it, listed).
void read_one_file(const fs::path& p, bool named, Corpus& c) {
  CorpusFile f{p.string(), kind_of(p), 0, 0, 0, {}};
  const std::string text = read_file(p);
  f.skipped = text.empty() ? "empty" : not_text(text);
  const std::size_t before = c.docs.size();
  if (f.skipped.empty()) {
    if (f.kind == "jsonl") {
      read_jsonl(p, text, c.docs);
    } else if (f.kind == "json") {
      f.skipped = read_json(p, text, c.docs);
    } else {
      c.docs.push_back({text, p.string()});
    }
  }
  KD_CHECK_INPUT(!named || f.skipped.empty(), "{}: corpus input is {}", p.string(), f.skipped);
  f.documents = c.docs.size() - before;
  for (std::size_t i = before; i < c.docs.size(); ++i) {
    f.bytes += c.docs[i].text.size();
    c.docs[i].file = c.files.size();
  }
  c.files.push_back(std::move(f));
}

bool matches(const std::string& glob, const std::string& relative, const std::string& name) {
  return fnmatch(glob.c_str(), relative.c_str(), 0) == 0 || fnmatch(glob.c_str(), name.c_str(), 0) == 0;
}

// Why a directory's file is left out by the selection, or "".
std::string deselected(const CorpusSelection& s, const std::string& relative, const std::string& name) {
  for (const std::string& g : s.exclude) {
    if (matches(g, relative, name)) return fmt::format("excluded by --exclude '{}'", g);
  }
  if (s.include.empty()) return {};
  for (const std::string& g : s.include) {
    if (matches(g, relative, name)) return {};
  }
  return "matches no --include";
}

}  // namespace

Corpus read_corpus(const std::vector<std::string>& inputs, const CorpusSelection& selection) {
  KD_CHECK_INPUT(!inputs.empty(), "no corpus inputs given");
  Corpus c;
  for (const std::string& input : inputs) {
    const fs::path root(input);
    std::error_code ec;
    const fs::file_status st = fs::status(root, ec);
    KD_CHECK_INPUT(!ec && fs::exists(st), "{}: corpus input does not exist", input);
    if (fs::is_directory(st)) {
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink);
           it != fs::recursive_directory_iterator(); ++it) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {  // .git, .DS_Store, editor swap files
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) files.push_back(it->path());
      }
      std::sort(files.begin(), files.end(),
                [](const fs::path& a, const fs::path& b) { return a.generic_string() < b.generic_string(); });
      for (const fs::path& f : files) {
        const std::string why = deselected(selection, f.lexically_relative(root).generic_string(),
                                           f.filename().string());
        if (why.empty()) {
          read_one_file(f, false, c);
        } else {
          c.files.push_back({f.string(), kind_of(f), 0, 0, 0, why});
        }
      }
    } else {
      KD_CHECK_INPUT(fs::is_regular_file(st), "{}: corpus input is neither a file nor a directory", input);
      read_one_file(root, true, c);
    }
  }
  return c;
}

}  // namespace kd::data
