// The batch sources a config names: synthetic streams (tests, bench, the smallest demo)
// or token shards. A stream id separates independent streams of one task (training,
// validation, teacher pretraining) that share the task itself (e.g. the Markov chain).
#pragma once

#include <cstdint>
#include <memory>

#include "data/batch_source.h"
#include "data/synthetic.h"
#include "trainer/config/config.h"

namespace kd {

enum class Stream : std::uint64_t { train = 1, validation = 2, teacher_pretrain = 3, prune_calibration = 4 };

data::SyntheticKind synthetic_kind(DataKind k);
std::unique_ptr<data::SyntheticTokens> make_synthetic(const Config& cfg, Stream stream);

}  // namespace kd
