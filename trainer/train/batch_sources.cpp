#include "trainer/train/batch_sources.h"

#include "base/errors.h"

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
  const auto seed = std::uint64_t(cfg.train.seed);
  return std::make_unique<data::SyntheticTokens>(synthetic_kind(cfg.data.kind), cfg.model.vocab,
                                                 cfg.data.markov_support, seed,
                                                 seed + std::uint64_t(stream));
}

}  // namespace kd
