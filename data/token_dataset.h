// Training batches from a token shard: each sequence is a window of seq+1 tokens whose
// start is a hash of (seed, sequence index). The sampler is stateless, so the data cursor
// of a checkpoint is just the number of sequences drawn, and resuming is exact.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/batch_source.h"
#include "data/shards/token_shard.h"

namespace kd::data {

class TokenDataset : public IndexedSource {
 public:
  // The shard must hold at least seq+1 tokens (one window) and ids below `vocab`
  // (InputError naming the shard otherwise).
  TokenDataset(std::shared_ptr<const TokenShard> shard, int vocab, int seq, std::uint64_t seed);
  void next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) override;
  void sequence(std::int64_t index, std::int32_t* tokens, std::int32_t* labels, int seq) const override;
  std::int64_t position() const override { return drawn_; }
  void seek(std::int64_t sequences, int) override { drawn_ = sequences; }
  // stateless: the seed and the cursor are the whole state
  std::uint64_t rng_fingerprint() const override;
  const TokenShard& shard() const { return *shard_; }

 private:
  std::shared_ptr<const TokenShard> shard_;
  std::uint64_t seed_;
  std::int64_t drawn_ = 0;
};

// Checks a shard against the model's vocabulary and context; InputError naming it.
void check_shard(const TokenShard& shard, int vocab, int seq, const std::string& role);
// InputError naming both when the shard records a tokenizer (hash != 0) other than `hash`,
// the tokenizer of `source` (a tokenizer file, another shard, a checkpoint); 0 = unknown.
void check_shard_tokenizer(const TokenShard& shard, const std::string& role, std::uint64_t hash,
                           const std::string& source);

// FNV-1a 64 of the shard's tokens (provenance: which data a run trained on).
std::uint64_t shard_hash(const TokenShard& shard);

}  // namespace kd::data
