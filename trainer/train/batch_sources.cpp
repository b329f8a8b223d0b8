#include "trainer/train/batch_sources.h"

#include "base/errors.h"
#include "data/token_dataset.h"

namespace kd {

data::SyntheticKind synthetic_kind(DataKind k) {
  switch (k) {
    case DataKind::random: return data::SyntheticKind::random;
    case DataKind::markov: return data::SyntheticKind::markov;
    case DataKind::copy: return data::SyntheticKind::copy;
    case DataKind::shards: break;
  }
  throw InputError("data.kind: shards is not a synthetic stream");
}

std::unique_ptr<data::SyntheticTokens> make_synthetic(const Config& cfg, Stream stream) {
  const auto seed = std::uint64_t(cfg.data.order_seed(cfg.train.seed));
  return std::make_unique<data::SyntheticTokens>(synthetic_kind(cfg.data.kind), cfg.model.vocab,
                                                 cfg.data.markov_support, seed,
                                                 seed + std::uint64_t(stream));
}

namespace {

// The shard sampler's seed offset per stream (the data seed + offset): fixed by the checkpoints
// and caches already written, whose data cursors and fingerprints follow from it.
std::uint64_t shard_seed_offset(Stream stream) {
  switch (stream) {
    case Stream::train: return 0;
    case Stream::teacher_pretrain: return 3;
    case Stream::prune_calibration: return 5;
    case Stream::validation: break;
  }
  throw std::logic_error("make_stream: validation reads the val shard (Evaluator), not a training stream");
}

}  // namespace

std::unique_ptr<data::BatchSource> make_stream(const Config& cfg, std::shared_ptr<const data::TokenShard> train_shard,
                                               Stream stream) {
  if (cfg.data.kind != DataKind::shards) return make_synthetic(cfg, stream);
  return std::make_unique<data::TokenDataset>(std::move(train_shard), cfg.model.vocab, cfg.train.seq_len,
                                              std::uint64_t(cfg.data.order_seed(cfg.train.seed)) +
                                                  shard_seed_offset(stream));
}

}  // namespace kd
