#include "data/prepare/corpus_reader.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/errors.h"
#include "base/files.h"

namespace kd::data {

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  require_regular_file(p.string(), "corpus file");  // a FIFO would block the read
  std::ifstream in(p, std::ios::binary);
  KD_CHECK_INPUT(in.good(), "{}: cannot open corpus file", p.string());
  std::ostringstream s;
  s << in.rdbuf();
  KD_CHECK_INPUT(!in.bad(), "{}: read error", p.string());
  return s.str();
}

bool is_jsonl(const fs::path& p) { return p.extension() == ".jsonl"; }

void read_jsonl(const fs::path& p, std::vector<CorpusDocument>& out) {
  const std::string text = read_file(p);
  std::size_t line_no = 0;
  for (std::size_t begin = 0; begin < text.size();) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank lines are allowed
    nlohmann::json obj;
    try {
      obj = nlohmann::json::parse(line.begin(), line.end());
    } catch (const nlohmann::json::parse_error& e) {
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

void read_one_file(const fs::path& p, std::vector<CorpusDocument>& out) {
  if (is_jsonl(p)) {
    read_jsonl(p, out);
  } else {
    out.push_back({read_file(p), p.string()});
  }
}

}  // namespace

std::vector<CorpusDocument> read_corpus(const std::vector<std::string>& inputs) {
  KD_CHECK_INPUT(!inputs.empty(), "no corpus inputs given");
  std::vector<CorpusDocument> docs;
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
      for (const fs::path& f : files) read_one_file(f, docs);
    } else {
      KD_CHECK_INPUT(fs::is_regular_file(st), "{}: corpus input is neither a file nor a directory", input);
      read_one_file(root, docs);
    }
  }
  return docs;
}

}  // namespace kd::data
