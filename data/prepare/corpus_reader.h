// Reads the documents of a corpus in a fixed order: what prepare_corpus splits, trains on
// and encodes. The whole corpus is held in memory.
#pragma once

#include <string>
#include <vector>

namespace kd::data {

struct CorpusDocument {
  std::string text;
  std::string origin;  // "path" or "path:line", for messages
};

// Inputs in the given order; a directory's files in byte-wise path order (recursively,
// skipping names that start with '.'); a file ending in ".jsonl" gives one document per
// non-blank line (its "text" field). Missing paths and malformed JSONL are InputErrors.
std::vector<CorpusDocument> read_corpus(const std::vector<std::string>& inputs);

}  // namespace kd::data
