#include "data/prepare/prepare_corpus.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string_view>
#include <unordered_set>

#include "data/prepare/corpus_reader.h"
#include "data/shards/token_shard.h"
#include "data/tokenizer/bpe_trainer.h"
#include "base/errors.h"
#include "base/file_io.h"

namespace kd::data {

namespace {

struct Split {
  std::vector<std::string_view> docs;
  std::size_t bytes = 0;
};

// Encodes every document in parallel (one cache per thread) and concatenates them in
// document order, each followed by eot: the output does not depend on the thread count.
std::vector<std::uint32_t> encode_split(const BpeTokenizer& tok, const Split& split, int threads,
                                        const std::function<void(std::size_t)>& done_docs) {
  const std::size_t n = split.docs.size();
  std::vector<std::vector<std::int32_t>> ids(n);
  std::size_t finished = 0;
#pragma omp parallel num_threads(threads)
  {
    BpeEncodeCache cache;
#pragma omp for schedule(dynamic, 1)
    for (std::size_t d = 0; d < n; ++d) {
      ids[d] = tok.encode(split.docs[d], &cache);
      std::size_t now;
#pragma omp atomic capture
      now = ++finished;
      if (omp_get_thread_num() == 0 && done_docs) done_docs(now);
    }
  }
  const bool bos = tok.bos_id() >= 0;
  std::size_t total = n * (bos ? 2 : 1);
  for (const auto& v : ids) total += v.size();
  std::vector<std::uint32_t> out;
  out.reserve(total);
  for (auto& v : ids) {
    if (bos) out.push_back(std::uint32_t(tok.bos_id()));
    out.insert(out.end(), v.begin(), v.end());
    out.push_back(std::uint32_t(tok.eot_id()));
    std::vector<std::int32_t>().swap(v);
  }
  return out;
}

BpeTokenizer train_tokenizer(const Split& train, const PrepareSpec& spec, int threads,
                             const std::function<void(const std::string&)>& say) {
  say("prepare: counting pre-tokens");
  BpeTrainSpec ts;
  ts.vocab_size = spec.vocab_size;
  ts.threads = threads;
  std::size_t last_train_pct = 101;
  ts.progress = [&](std::size_t done, std::size_t total) {
    const std::size_t pct = total ? 100 * done / total : 100;
    if (pct / 5 == last_train_pct / 5 && done < total) return;  // a line per 5%, enough for a log
    last_train_pct = pct;
    say(fmt::format("prepare: training tokenizer {}% ({}/{} merges)", pct, done, total));
  };
  const BpeTokenizer tok = train_bpe(train.docs, ts);
  if (tok.vocab_size() < spec.vocab_size)
    say(fmt::format("prepare: the corpus ran out of pairs: tokenizer vocab_size {} (asked {})", tok.vocab_size(),
                    spec.vocab_size));

  return tok;
}

// Marks every document that repeats an earlier one byte for byte (hashed; equal hashes
// compared in full by the set) and counts them per file. Returns the kept ones' indices.
std::vector<std::size_t> drop_duplicates(Corpus& c, std::size_t& dropped) {
  std::unordered_set<std::string_view> seen;
  seen.reserve(c.docs.size());
  std::vector<std::size_t> kept;
  kept.reserve(c.docs.size());
  dropped = 0;
  for (std::size_t i = 0; i < c.docs.size(); ++i) {
    if (seen.insert(c.docs[i].text).second) {
      kept.push_back(i);
    } else {
      ++dropped;
      ++c.files[c.docs[i].file].duplicates;
    }
  }
  return kept;
}

// corpus_files.tsv: what prepare read, so a user sees the README or pickle it took or left.
void write_file_list(const std::filesystem::path& out, const std::vector<CorpusFile>& files) {
  std::string text = "path\tstatus\tkind\tdocuments\tbytes\tduplicates\treason\n";
  for (const CorpusFile& c : files) {
    text += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", c.path, c.skipped.empty() ? "used" : "skipped", c.kind,
                        c.documents, c.bytes, c.duplicates, c.skipped);
  }
  write_file_atomic(out.string(), text);
}

}  // namespace

PrepareResult prepare_corpus(const PrepareSpec& spec) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto say = [&](const std::string& line) {
    if (spec.progress) spec.progress(line);
  };
  KD_CHECK_INPUT(!spec.out_dir.empty(), "prepare: no output directory given");
  KD_CHECK_INPUT(spec.val_every >= 0, "prepare: val_every is {}; it must be >= 0 (0 = no validation split)",
                 spec.val_every);
  KD_CHECK_INPUT(spec.tokenizer || spec.vocab_size >= kMinBpeVocab,
                 "prepare: vocab_size {} is below {} (256 bytes + at least one merge + 2 special tokens)",
                 spec.vocab_size, kMinBpeVocab);
  const int threads = std::max(1, spec.threads > 0 ? spec.threads : omp_get_max_threads());

  say("prepare: reading the corpus");
  Corpus corpus = read_corpus(spec.inputs, spec.selection);
  PrepareResult r;
  for (const CorpusFile& f : corpus.files) (f.skipped.empty() ? r.files_used : r.files_skipped) += 1;
  if (corpus.docs.empty()) {
    std::string names;
    for (const std::string& in : spec.inputs) names += (names.empty() ? "" : ", ") + in;
    throw InputError(fmt::format("prepare: the corpus ({}) holds no documents ({} files skipped)", names,
                                 r.files_skipped));
  }
  std::vector<std::size_t> kept(corpus.docs.size());
  for (std::size_t i = 0; i < kept.size(); ++i) kept[i] = i;
  if (!spec.keep_duplicates) kept = drop_duplicates(corpus, r.duplicates);
  say(fmt::format("prepare: {} files read, {} skipped; {}", r.files_used, r.files_skipped,
                  spec.keep_duplicates ? std::string("exact duplicate documents kept (--keep-duplicates)")
                                       : fmt::format("{} exact duplicate documents dropped", r.duplicates)));
  Split train, val;
  for (std::size_t k = 0; k < kept.size(); ++k) {  // the split counts the documents kept
    const CorpusDocument& d = corpus.docs[kept[k]];
    const bool to_val = spec.val_every > 0 && (k + 1) % std::size_t(spec.val_every) == 0;
    Split& s = to_val ? val : train;
    s.docs.push_back(d.text);
    s.bytes += d.text.size();
  }
  KD_CHECK_INPUT(train.bytes > 0, "prepare: no training text: {} documents, {} of them for validation (val_every {})",
                 kept.size(), val.docs.size(), spec.val_every);
  say(fmt::format("prepare: {} documents ({} train, {} val), {:.1f} MB of training text", kept.size(),
                  train.docs.size(), val.docs.size(), double(train.bytes) / 1e6));

  const BpeTokenizer tok = spec.tokenizer ? *spec.tokenizer : train_tokenizer(train, spec, threads, say);

  std::error_code ec;
  std::filesystem::create_directories(spec.out_dir, ec);
  KD_CHECK_INPUT(!ec && std::filesystem::is_directory(spec.out_dir), "{}: cannot create the output directory ({})",
                 spec.out_dir, ec ? ec.message() : "a file has that name");
  const std::filesystem::path out(spec.out_dir);
  tok.save((out / "tokenizer.json").string());
  write_file_list(out / "corpus_files.tsv", corpus.files);

  const std::size_t all_docs = train.docs.size() + val.docs.size();
  std::size_t last_pct = 101;
  const auto encode_progress = [&](std::size_t base) {
    return [&, base](std::size_t done) {
      const std::size_t pct = 100 * (base + done) / all_docs;
      if (pct / 5 != last_pct / 5) say(fmt::format("prepare: encoding {}%", last_pct = pct));
    };
  };
  const std::uint32_t width = tok.vocab_size() <= 65536 ? 2 : 4;
  const std::vector<std::uint32_t> train_ids = encode_split(tok, train, threads, encode_progress(0));
  write_kdtrain_shard((out / "train.bin").string(), train_ids, width, train.bytes, tok.hash());
  r.train_tokens = train_ids.size();
  if (!val.docs.empty()) {
    const std::vector<std::uint32_t> val_ids = encode_split(tok, val, threads, encode_progress(train.docs.size()));
    write_kdtrain_shard((out / "val.bin").string(), val_ids, width, val.bytes, tok.hash());
    r.val_tokens = val_ids.size();
  } else {
    std::filesystem::remove(out / "val.bin");  // a stale split from an earlier run would mislead
  }

  r.train_docs = train.docs.size();
  r.val_docs = val.docs.size();
  r.train_bytes = train.bytes;
  r.val_bytes = val.bytes;
  r.tokenizer_hash = tok.hash();
  r.vocab_size = tok.vocab_size();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  say(fmt::format("prepare: done in {:.1f} s: {} train tokens, {} val tokens", r.seconds, r.train_tokens,
                  r.val_tokens));
  return r;
}

}  // namespace kd::data
