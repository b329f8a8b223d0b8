// The batch sources a config names: synthetic streams (tests, bench, the smallest demo)
// or token shards. A stream id separates independent streams of one task (training,
// validation, teacher pretraining) that share the task itself (e.g. the Markov chain).
#pragma once

#include <cstdint>
#include <memory>

#include "data/batch_source.h"
#include "data/shards/token_shard.h"
#include "data/synthetic.h"
#include "trainer/config/config.h"

namespace kd {

enum class Stream : std::uint64_t { train = 1, validation = 2, teacher_pretrain = 3, prune_calibration = 4 };

data::SyntheticKind synthetic_kind(DataKind k);
std::unique_ptr<data::SyntheticTokens> make_synthetic(const Config& cfg, Stream stream);
// The run's stream `stream`: the sampler over the training shard (data.kind: shards; seeded
// data.seed (default train.seed) plus the stream's own offset) or the synthetic task's stream.
std::unique_ptr<data::BatchSource> make_stream(const Config& cfg, std::shared_ptr<const data::TokenShard> train_shard,
                                               Stream stream);

}  // namespace kd
