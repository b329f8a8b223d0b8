#include "data/token_dataset.h"

#include <vector>

#include "base/errors.h"

namespace kd::data {

namespace {
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

void check_shard(const TokenShard& shard, int vocab, int seq, const std::string& role) {
  // seq + 1 tokens make exactly one window: seq tokens and their seq labels
  KD_CHECK_INPUT(shard.size() >= std::size_t(seq) + 1,
                 "{} shard {}: {} tokens, fewer than one sequence of seq_len + 1 = {}", role,
                 shard.path(), shard.size(), seq + 1);
  KD_CHECK_INPUT(shard.max_token() < std::uint32_t(vocab),
                 "{} shard {}: holds token id {}, outside the model's vocabulary of {} (was it "
                 "prepared with another tokenizer?)",
                 role, shard.path(), shard.max_token(), vocab);
}

void check_shard_tokenizer(const TokenShard& shard, const std::string& role, std::uint64_t hash,
                           const std::string& source) {
  const std::uint64_t h = shard.tokenizer_hash();
  KD_CHECK_INPUT(h == 0 || hash == 0 || h == hash,
                 "{} shard {} was made with another tokenizer than {} (tokenizer hash {:016x} vs {:016x}): its ids "
                 "mean other text",
                 role, shard.path(), source, h, hash);
}

std::uint64_t shard_hash(const TokenShard& shard) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < shard.size(); ++i) {
    h = (h ^ std::uint32_t(shard[i])) * 1099511628211ull;
  }
  return h;
}

TokenDataset::TokenDataset(std::shared_ptr<const TokenShard> shard, int vocab, int seq,
                           std::uint64_t seed)
    : shard_(std::move(shard)), seed_(seed) {
  check_shard(*shard_, vocab, seq, "training");
}

void TokenDataset::sequence(std::int64_t index, std::int32_t* t, std::int32_t* l, int seq) const {
  const std::size_t span = shard_->size() - std::size_t(seq);  // window starts 0 .. span-1
  const std::uint64_t start = splitmix64(seed_ ^ splitmix64(std::uint64_t(index))) % span;
  for (int i = 0; i < seq; ++i) {
    t[i] = (*shard_)[start + i];
    l[i] = (*shard_)[start + i + 1];
  }
}

void TokenDataset::next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) {
  for (int b = 0; b < batch; ++b) {
    sequence(drawn_ + b, tokens + std::size_t(b) * seq, labels + std::size_t(b) * seq, seq);
  }
  drawn_ += batch;
}

std::uint64_t TokenDataset::rng_fingerprint() const { return splitmix64(seed_ ^ splitmix64(~std::uint64_t(drawn_))); }

}  // namespace kd::data
