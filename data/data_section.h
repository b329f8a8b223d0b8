// The `data` section of a config: token shards from `kdtrain prepare` (or nanoGPT / llm.c
// shards), or a synthetic stream for tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>

#include "base/schema.h"

namespace kd {

enum class DataKind { shards, random, markov, copy };

struct DataSection {
  DataKind kind = DataKind::markov;
  std::string train;
  std::string val;
  std::string format = "auto";
  std::string tokenizer;
  std::int64_t seed = -1;  // the data order's seed; -1: train.seed
  std::int64_t synthetic_eval_batches = 8;
  int markov_support = 4;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.choice("kind", kind,
             "shards: token shards from `kdtrain prepare` (or nanoGPT / llm.c); synthetic: random "
             "(uniform), markov (a fixed random chain), copy (second half repeats the first)",
             Choices<DataKind>{{"shards", DataKind::shards}, {"random", DataKind::random},
                               {"markov", DataKind::markov}, {"copy", DataKind::copy}});
    v.field("train", train, "training token shard (kind: shards)");
    v.field("val", val, "validation token shard (kind: shards)");
    v.field("format", format, "shard format: auto, kdtrain, nanogpt, llmc");
    v.field("tokenizer", tokenizer, "tokenizer.json (default: the one beside data.train, if any)");
    v.field("seed", seed, "seed of the data order (-1: train.seed); set it to vary only the initialisation between "
            "runs, e.g. students of several seeds reading one teacher cache", at_least(-1));
    v.field("synthetic_eval_batches", synthetic_eval_batches, "validation batches of a synthetic stream", at_least(1));
    v.field("markov_support", markov_support, "next-token choices per state of the markov chain", between(1, 1 << 20));
  }
  // The seed the data streams are drawn with.
  std::int64_t order_seed(std::int64_t train_seed) const { return seed >= 0 ? seed : train_seed; }
};

}  // namespace kd
