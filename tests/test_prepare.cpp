// What `kdtrain prepare` reads from a folder (issue 20, a new user's corpora): --include and
// --exclude globs, binary and JSON-without-text files skipped and listed with the reason,
// .json files (an array of {"text"} objects, or one) parsed, and exact duplicate documents
// dropped before the validation split, so no held-out document has a twin in train.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "base/errors.h"
#include "data/prepare/corpus_reader.h"
#include "data/prepare/prepare_corpus.h"
#include "data/shards/token_shard.h"
#include "tests/support/temp_files.h"

namespace {

using kd::InputError;
using kd::data::Corpus;
using kd::data::CorpusFile;
using kd::data::read_corpus;
using kdtest::TempDir;
using kdtest::write_bytes;

// A folder as a user's corpus might be: text, a README, a package.json, a pickle, JSON and
// JSONL documents, a dot-file.
void make_corpus(const std::string& dir) {
  std::filesystem::create_directories(dir + "/mail/sub");
  write_bytes(dir + "/README.md", "# my corpus\n");
  write_bytes(dir + "/package.json", "{\"name\": \"x\", \"version\": \"1.0.0\"}");
  write_bytes(dir + "/model.pkl", std::string("\x80\x04\x95\x00\x00pickle", 11));
  write_bytes(dir + "/latin1.txt", "caf\xe9\n");
  write_bytes(dir + "/mail/a.txt", "hello there\n");
  write_bytes(dir + "/mail/sub/b.txt", "general kenobi\n");
  write_bytes(dir + "/docs.json", "[{\"text\": \"one\"}, {\"text\": \"two\", \"id\": 2}]");
  write_bytes(dir + "/single.json", "{\"text\": \"three\"}");
  write_bytes(dir + "/lines.jsonl", "{\"text\": \"four\"}\n\n{\"text\": \"five\"}\n");
  write_bytes(dir + "/empty.txt", "");
  write_bytes(dir + "/.hidden.txt", "never read\n");
}

const CorpusFile& file(const Corpus& c, const std::string& suffix) {
  for (const CorpusFile& f : c.files) {
    if (f.path.size() >= suffix.size() && f.path.compare(f.path.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return f;
    }
  }
  static CorpusFile none;
  ADD_FAILURE() << "no file " << suffix << " in the listing";
  return none;
}

std::vector<std::string> texts(const Corpus& c) {
  std::vector<std::string> out;
  for (const auto& d : c.docs) out.push_back(d.text);
  return out;
}

TEST(PrepareCorpus, FolderFilesAreReadOrSkippedWithTheReason) {
  TempDir tmp;
  make_corpus(tmp.path());
  const Corpus c = read_corpus({tmp.path()});
  EXPECT_EQ(texts(c), (std::vector<std::string>{"# my corpus\n", "one", "two", "four", "five", "hello there\n",
                                                "general kenobi\n", "three"}));
  EXPECT_EQ(file(c, "docs.json").documents, 2u);
  EXPECT_EQ(file(c, "docs.json").kind, "json");
  EXPECT_NE(file(c, "package.json").skipped.find("JSON without a \"text\" field"), std::string::npos);
  EXPECT_NE(file(c, "model.pkl").skipped.find("binary"), std::string::npos);
  EXPECT_NE(file(c, "latin1.txt").skipped.find("not UTF-8 text"), std::string::npos);
  EXPECT_EQ(file(c, "empty.txt").skipped, "empty");
  EXPECT_TRUE(file(c, "mail/a.txt").skipped.empty());
  for (const CorpusFile& f : c.files) EXPECT_EQ(f.path.find(".hidden"), std::string::npos);
  EXPECT_EQ(c.files.size(), 10u);
}

TEST(PrepareCorpus, IncludeAndExcludeGlobs) {
  TempDir tmp;
  make_corpus(tmp.path());
  const Corpus only_txt = read_corpus({tmp.path()}, {{"*.txt"}, {}});
  EXPECT_EQ(texts(only_txt), (std::vector<std::string>{"hello there\n", "general kenobi\n"}));
  EXPECT_EQ(file(only_txt, "README.md").skipped, "matches no --include");
  const Corpus no_readme = read_corpus({tmp.path()}, {{}, {"README*", "mail/sub/*"}});
  EXPECT_EQ(file(no_readme, "README.md").skipped, "excluded by --exclude 'README*'");
  EXPECT_EQ(file(no_readme, "mail/sub/b.txt").skipped, "excluded by --exclude 'mail/sub/*'");
  EXPECT_TRUE(file(no_readme, "mail/a.txt").skipped.empty());
}

// Named as an input, a file that would be skipped in a folder is an error naming it.
TEST(PrepareCorpus, NamedFilesThatAreNotTextAreErrors) {
  TempDir tmp;
  make_corpus(tmp.path());
  for (const char* name : {"/model.pkl", "/package.json", "/empty.txt"}) {
    try {
      read_corpus({tmp.path() + name});
      ADD_FAILURE() << name << " was read";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  write_bytes(tmp.file("bad.json"), "[{\"text\": 1}]");
  EXPECT_THROW(read_corpus({tmp.file("bad.json")}), InputError);
}

// The mail corpus's trap: every message twice, in path order. Without dropping duplicates,
// each validation message has its twin in train; with it (the default), none does.
TEST(PrepareCorpus, ExactDuplicatesAreDroppedBeforeTheSplit) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.file("in"));
  for (int i = 0; i < 30; ++i) {
    const std::string text = "message number " + std::to_string(i) + " with some words in it\n";
    write_bytes(tmp.file("in/" + std::to_string(1000 + 2 * i) + ".txt"), text);
    write_bytes(tmp.file("in/" + std::to_string(1001 + 2 * i) + ".txt"), text);  // its exact copy
  }
  kd::data::PrepareSpec spec;
  spec.inputs = {tmp.file("in")};
  spec.vocab_size = 300;
  spec.val_every = 2;
  spec.threads = 1;
  spec.out_dir = tmp.file("out");
  const kd::data::PrepareResult r = kd::data::prepare_corpus(spec);
  EXPECT_EQ(r.duplicates, 30u);
  EXPECT_EQ(r.train_docs + r.val_docs, 30u);
  EXPECT_EQ(r.val_docs, 15u);
  const std::string listing = kdtest::slurp(tmp.file("out/corpus_files.tsv"));
  EXPECT_EQ(listing.rfind("path\tstatus\tkind\tdocuments\tbytes\tduplicates\treason\n", 0), 0u) << listing;
  EXPECT_NE(listing.find("1001.txt\tused\ttext\t1\t"), std::string::npos) << listing;
  spec.keep_duplicates = true;
  spec.out_dir = tmp.file("out2");
  const kd::data::PrepareResult kept = kd::data::prepare_corpus(spec);
  EXPECT_EQ(kept.duplicates, 0u);
  EXPECT_EQ(kept.train_docs + kept.val_docs, 60u);
}

}  // namespace
