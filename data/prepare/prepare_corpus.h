// Corpus preparation, the library half of `kdtrain prepare`: text files → a trained BPE
// tokenizer → train and validation token shards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/prepare/corpus_reader.h"

namespace kd::data {

class BpeTokenizer;

struct PrepareSpec {
  // Files, directories (recursed; files in byte-wise path order; names starting with '.'
  // skipped), or .jsonl files (one JSON object per non-blank line, the text in its string
  // field "text"). A plain file is one document; a JSONL line is one document.
  std::vector<std::string> inputs;
  CorpusSelection selection;  // --include / --exclude globs for the files of directory inputs
  // Exact duplicate documents (the same bytes) are dropped, the first kept, before the split:
  // a held-out document's twin in train would make validation measure memory. true keeps them.
  bool keep_duplicates = false;
  // Tokenizer size, everything counted (256 bytes + merges + 2 specials). A corpus too
  // small to learn that many merges gives a smaller tokenizer (PrepareResult::vocab_size).
  int vocab_size = 4096;
  // Every Nth document in input order goes to validation (1-based: the Nth, 2Nth, ...);
  // 0 = no validation split (and no val.bin).
  int val_every = 20;
  // Receives tokenizer.json, train.bin, val.bin (kdtrain shard format) and corpus_files.tsv
  // (every file: used or skipped and why, its documents, bytes and duplicates); created if missing.
  std::string out_dir;
  int threads = 0;  // 0 = OpenMP's default; the outputs never depend on it
  // A tokenizer to use as it is (a teacher's, from import-hf or a Hugging Face
  // tokenizer.json) instead of training one; vocab_size is then ignored. Documents are
  // framed as the tokenizer says: its bos first when it has one, eot last.
  std::shared_ptr<const BpeTokenizer> tokenizer;
  // One-line status updates ("stage: percent"); may be empty.
  std::function<void(const std::string&)> progress;
};

struct PrepareResult {
  std::size_t train_docs = 0, val_docs = 0;
  std::size_t train_tokens = 0, val_tokens = 0;  // eot after each document included
  std::size_t train_bytes = 0, val_bytes = 0;    // document bytes (the shards' text_bytes)
  std::size_t files_used = 0, files_skipped = 0;
  std::size_t duplicates = 0;  // exact duplicate documents dropped (0 with keep_duplicates)
  std::uint64_t tokenizer_hash = 0;
  std::int64_t vocab_size = 0;  // of the trained tokenizer (≤ the spec's)
  double seconds = 0;
};

// The tokenizer, unless given, is trained on the training documents only. Each document is
// encoded, preceded by the tokenizer's bos (if any) and followed by one eot token. Bad input (a missing path, an empty corpus, a JSONL line that
// is not a JSON object with a string "text" — named by file and line) is an InputError.
PrepareResult prepare_corpus(const PrepareSpec& spec);

}  // namespace kd::data
