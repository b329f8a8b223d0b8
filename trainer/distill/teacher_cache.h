// The teacher cache (kdtrain cache-teacher; docs/distributed.md "Offline distillation"):
// the teacher run once over a run's training stream, its top-k logits and log-sum-exps kept
// in HDF5, so that `distill` reads them instead of running a teacher.
//
// Layout: a directory of files `teacher-cache-RRRRR-of-WWWWW.h5`, one per rank that wrote
// it. The stream is cut into global micro-batches of `batch` sequences; micro-batch g is in
// file g mod W, at rows (g div W) · batch … + batch − 1. Datasets: values (rows, seq, k) as
// float32 or bfloat16 (stored as uint16 bits), indices (rows, seq, k) int32, lse (rows, seq,
// T) float32 for the T temperatures, token_hash (rows) uint64 (FNV-1a of the sequence's
// tokens: the student checks it sees the same sequence). Attributes: format, the identity
// fields and their hash, temperatures, k, seq_len, batch, sequences, shards, shard, complete.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/distill/target_source.h"
#include "trainer/distill/teacher_topk.h"

namespace kd {

// What a cache is bound to; a cache whose identity differs from the run's is refused.
struct CacheIdentity {
  std::string teacher;    // FNV-1a of the teacher's parameters (hex)
  std::string tokenizer;  // the tokenizer's hash, "" when none
  std::string data;       // the training data's hash, or the synthetic stream's description
  int seq_len = 0;
  std::int64_t seed = 0;  // the sampler's seed (data.seed, default train.seed)
  int kd_vocab = 0;
  std::uint64_t hash() const;
  // The first field that differs, as "name: 'a' vs 'b'"; "" when equal.
  std::string difference(const CacheIdentity& o) const;
};

std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h = 14695981039346656037ull);

struct CacheShape {
  int k = 0, seq = 0, batch = 0;
  std::int64_t sequences = 0;  // in the whole cache (all shards)
  std::vector<double> temperatures;
  bool bf16 = false;
};

// Writes one shard (this rank's micro-batches) to a temporary name; finish() renames it.
class TeacherCacheWriter {
 public:
  TeacherCacheWriter(const std::string& dir, int shard, int shards, const CacheIdentity& id, const CacheShape& shape,
                     const std::string& teacher_path);
  ~TeacherCacheWriter();
  // Global micro-batch g (g mod shards == shard): values, indices (batch·seq·k), lse
  // (batch·seq·T), the batch's tokens (hashed per sequence).
  void write(std::int64_t g, const float* values, const std::int32_t* indices, const float* lse,
             const std::int32_t* tokens);
  void finish();
  static std::string shard_path(const std::string& dir, int shard, int shards);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// All shards of a cache, opened for reading. InputError naming the file on: a missing or
// incomplete shard, shards that disagree, a malformed file.
class TeacherCache {
 public:
  static std::unique_ptr<TeacherCache> open(const std::string& dir);
  ~TeacherCache();
  const CacheIdentity& identity() const;
  std::uint64_t stored_hash() const;
  const CacheShape& shape() const;
  const std::string& teacher_path() const;
  // The targets of sequences first … first + batch − 1 at temperature index t, into `out`
  // rows; tokens are those sequences' (checked against the stored hashes: InputError on a
  // mismatch, naming the sequence).
  void read(std::int64_t first, int batch, const std::int32_t* tokens, int temperature_index, TopKTargets& out) const;

 private:
  TeacherCache();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A cache as the trainer's target source, at one of its temperatures.
class CacheTargets final : public TargetSource {
 public:
  CacheTargets(std::shared_ptr<const TeacherCache> cache, int temperature_index, std::string dir)
      : cache_(std::move(cache)), t_(temperature_index), dir_(std::move(dir)) {}
  void fetch(std::int64_t first, int batch, int, const std::int32_t* tokens, TopKTargets& out) override {
    cache_->read(first, batch, tokens, t_, out);
  }
  std::string describe() const override;

 private:
  std::shared_ptr<const TeacherCache> cache_;
  int t_;
  std::string dir_;
};

}  // namespace kd
