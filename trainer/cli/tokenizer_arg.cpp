#include "trainer/cli/tokenizer_arg.h"

#include <filesystem>
#include <fstream>
#include <string_view>

#include "base/errors.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/interop/hf_model.h"

namespace kd::cli {

namespace {

bool is_hdf5_file(const std::string& path) {
  char sig[8] = {};
  std::ifstream f(path, std::ios::binary);
  return f.read(sig, 8) && std::string_view(sig, 8) == std::string_view("\x89HDF\r\n\x1a\n", 8);
}

}  // namespace

data::BpeTokenizer tokenizer_from_path(const std::string& path) {
  KD_CHECK_INPUT(!path.empty(), "--tokenizer: the path is empty");
  if (std::filesystem::is_directory(path)) {
    auto tok = interop::read_hf_tokenizer(path);
    KD_CHECK_INPUT(tok.has_value(), "--tokenizer {}: the directory has no tokenizer.json", path);
    return std::move(*tok);
  }
  if (is_hdf5_file(path)) {
    const std::string text = ckpt::CheckpointReader(path).tokenizer_json();
    KD_CHECK_INPUT(!text.empty(), "--tokenizer {}: the checkpoint has no tokenizer", path);
    return data::BpeTokenizer::from_json_text(text, path + ":/tokenizer");
  }
  return data::BpeTokenizer::load(path);
}

}  // namespace kd::cli
