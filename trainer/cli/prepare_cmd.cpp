// kdtrain prepare: text files, directories or JSONL -> BPE tokenizer + token shards.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "data/prepare/prepare_corpus.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/interop/hf_model.h"
#include "base/errors.h"

namespace kd::cli {

namespace {

bool is_hdf5_file(const std::string& path) {
  char sig[8] = {};
  std::ifstream f(path, std::ios::binary);
  return f.read(sig, 8) && std::string_view(sig, 8) == std::string_view("\x89HDF\r\n\x1a\n", 8);
}

// --tokenizer: a kdtrain checkpoint's (an imported teacher's), a Hugging Face model
// directory's, or a tokenizer file (kdtrain's, or a Hugging Face tokenizer.json).
data::BpeTokenizer given_tokenizer(const std::string& path) {
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

}  // namespace

int run_prepare(const PrepareOptions& o) {
  std::vector<std::string> inputs = o.inputs;
  inputs.push_back(o.tokenizer);
  refuse_input_as_output("prepare", o.out, inputs);  // the corpus directory itself
  for (const char* name : {"tokenizer.json", "train.bin", "val.bin"}) {  // the files it writes
    const std::string file = (std::filesystem::path(o.out) / name).string();
    refuse_input_as_output("prepare", file, inputs);
    refuse_existing_output("prepare", file, o.overwrite);
  }
  data::PrepareSpec s;
  s.inputs = o.inputs;
  s.out_dir = o.out;
  s.vocab_size = o.vocab_size;
  s.val_every = o.val_every;
  s.threads = o.threads;
  if (!o.tokenizer.empty()) s.tokenizer = std::make_shared<const data::BpeTokenizer>(given_tokenizer(o.tokenizer));
  const bool tty = isatty(fileno(stdout)) != 0;
  s.progress = [&](const std::string& line) {
    if (tty) {
      fmt::print("\r\033[K{}", line);
    } else if (line.find('%') == std::string::npos || line.find("100%") != std::string::npos) {
      fmt::print("{}\n", line);  // logs get each stage and its end, not every percent
    }
    std::fflush(stdout);
  };
  const data::PrepareResult r = data::prepare_corpus(s);
  if (tty) fmt::print("\n");
  fmt::print("tokenizer: {}/tokenizer.json ({} tokens, hash {:016x})\n", o.out, r.vocab_size, r.tokenizer_hash);
  fmt::print("train: {}/train.bin  {} documents, {} tokens, {} bytes ({:.2f} bytes/token)\n", o.out, r.train_docs,
             r.train_tokens, r.train_bytes, double(r.train_bytes) / double(std::max<std::size_t>(1, r.train_tokens)));
  if (r.val_docs > 0) {
    fmt::print("val:   {}/val.bin    {} documents, {} tokens, {} bytes\n", o.out, r.val_docs, r.val_tokens, r.val_bytes);
  }
  fmt::print("took {:.1f} s\n", r.seconds);
  return 0;
}

}  // namespace kd::cli
