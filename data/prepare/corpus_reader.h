// Reads the documents of a corpus in a fixed order: what prepare_corpus splits, trains on
// and encodes, and the list of files it used and skipped (with why). The whole corpus is
// held in memory.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kd::data {

struct CorpusDocument {
  std::string text;
  std::string origin;  // "path" or "path:line", for messages
  std::size_t file = 0;  // index into Corpus::files
};

// Which files of a directory input are read. Globs (fnmatch, `*` also crossing `/`) match a
// file's path relative to the directory or its name alone. Files named as inputs themselves
// are always read.
struct CorpusSelection {
  std::vector<std::string> include;  // empty = every file; else only files matching one of them
  std::vector<std::string> exclude;  // files matching one of them are skipped
};

// One file of the corpus: used (its documents and bytes) or skipped (why).
struct CorpusFile {
  std::string path;
  std::string kind;  // "text", "jsonl", "json"
  std::size_t documents = 0, bytes = 0;
  std::size_t duplicates = 0;  // of its documents, exact copies of an earlier one (prepare drops them)
  std::string skipped;  // "" = used; else the reason ("excluded by --exclude '*.md'", "binary", ...)
};

struct Corpus {
  std::vector<CorpusDocument> docs;
  std::vector<CorpusFile> files;  // in reading order, skipped ones included
};

// Inputs in the given order; a directory's files in byte-wise path order (recursively,
// skipping names that start with '.'). By extension:
//  * ".jsonl": one document per non-blank line, its string field "text";
//  * ".json": an array of objects with a string "text" (one document each), or one such object;
//  * anything else: the whole file is one document.
// In a directory, a file that is not UTF-8 text (a NUL byte, invalid UTF-8: a pickle, an
// image), is empty, or is a .json without "text" fields (package.json) is skipped and listed
// with the reason; named as an input, the same file is an InputError. Missing paths and
// malformed JSON(L) are InputErrors naming the file (and line).
Corpus read_corpus(const std::vector<std::string>& inputs, const CorpusSelection& selection = {});

}  // namespace kd::data
