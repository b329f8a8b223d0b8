#include "trainer/cli/output_path.h"

#include <filesystem>

#include "base/errors.h"

namespace kd::cli {

namespace fs = std::filesystem;

namespace {
// Whether `inner` is `dir` or lies below it (both made absolute, symlinks resolved).
bool inside(const fs::path& dir, const fs::path& inner) {
  std::error_code ec;
  const fs::path d = fs::weakly_canonical(dir, ec), p = fs::weakly_canonical(inner, ec);
  if (ec) return false;
  auto di = d.begin(), pi = p.begin();
  for (; di != d.end() && !di->empty(); ++di, ++pi) {
    if (pi == p.end() || *di != *pi) return false;
  }
  return true;
}
}  // namespace

void refuse_input_as_output(const std::string& command, const std::string& out, const std::vector<std::string>& inputs,
                            bool out_is_dir) {
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    std::error_code ec;
    const bool same = fs::exists(out, ec) && fs::exists(in, ec) && fs::equivalent(out, in, ec);
    KD_CHECK_INPUT(!same, "{} --out {} is its input {} (the same file): write the result under another name "
                   "(--overwrite never replaces an input)", command, out, in);
    KD_CHECK_INPUT(!out_is_dir || !inside(out, in), "{} --out {}: the directory holds its input {}: write the "
                   "result elsewhere (--overwrite never replaces an input)", command, out, in);
  }
}

void refuse_existing_output(const std::string& command, const std::string& out, bool overwrite) {
  std::error_code ec;
  if (overwrite || !fs::exists(fs::symlink_status(out, ec))) return;
  const bool empty_dir = fs::is_directory(out, ec) && fs::is_empty(out, ec);
  KD_CHECK_INPUT(empty_dir, "{} --out {} already exists: give --overwrite to replace it, or choose another name",
                 command, out);
}

}  // namespace kd::cli
