// kdtrain prepare: text files, directories or JSONL -> BPE tokenizer + token shards.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "data/prepare/prepare_corpus.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/tokenizer_arg.h"
#include "trainer/cli/output_path.h"
#include "base/errors.h"

namespace kd::cli {

int run_prepare(const PrepareOptions& o) {
  std::vector<std::string> inputs = o.inputs;
  inputs.push_back(o.tokenizer);
  refuse_input_as_output("prepare", o.out, inputs);  // the corpus directory itself
  for (const char* name : {"tokenizer.json", "train.bin", "val.bin", "corpus_files.tsv"}) {  // the files it writes
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
  s.selection.include = o.include;
  s.selection.exclude = o.exclude;
  s.keep_duplicates = o.keep_duplicates;
  if (!o.tokenizer.empty()) s.tokenizer = std::make_shared<const data::BpeTokenizer>(tokenizer_from_path(o.tokenizer));
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
  fmt::print("files: {} used, {} skipped; every file, used or not and why: {}/corpus_files.tsv\n", r.files_used,
             r.files_skipped, o.out);
  if (!o.keep_duplicates) {
    fmt::print("duplicates: {} exact duplicate documents dropped before the split (--keep-duplicates keeps them)\n",
               r.duplicates);
  }
  fmt::print("took {:.1f} s\n", r.seconds);
  return 0;
}

}  // namespace kd::cli
