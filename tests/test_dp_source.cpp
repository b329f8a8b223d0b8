// The data-parallel sampler (data/dp_source.h): for world sizes 1–4, the ranks' slices of
// every global batch, concatenated in rank order, are exactly the batch one process draws
// (so the global batch does not depend on the world size and no sequence is seen twice),
// with a global batch of 7 that only world 1 divides (uneven slices of 4+3, 3+2+2, 2+2+2+1),
// for the indexed shard sampler and for a synthetic stream; the cursor counts global
// sequences on every rank and seeking it resumes exactly.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <vector>

#include "data/dp_source.h"
#include "data/shards/token_shard.h"
#include "data/synthetic.h"
#include "data/token_dataset.h"
#include "tests/support/temp_files.h"

namespace {

using kd::data::BatchSource;

constexpr int kSeq = 8, kGlobal = 7, kSteps = 4;

// A shard of n tokens (i · mult) mod modulus, written in dir.
std::shared_ptr<const kd::data::TokenShard> make_shard_file(const kdtest::TempDir& dir, std::size_t n, std::size_t mult,
                                                            std::size_t modulus) {
  std::vector<std::uint32_t> tokens(n);
  for (std::size_t i = 0; i < n; ++i) tokens[i] = std::uint32_t((i * mult) % modulus);
  const std::string path = dir.file("t.bin");
  kd::data::write_kdtrain_shard(path, tokens, 2, 0, 0);
  return std::make_shared<const kd::data::TokenShard>(kd::data::TokenShard::open(path));
}

// The global batches of kSteps steps as one process draws them.
std::vector<std::int32_t> single(BatchSource& s) {
  std::vector<std::int32_t> all, t(std::size_t(kGlobal * kSeq)), l(t.size());
  for (int step = 0; step < kSteps; ++step) {
    s.next(t.data(), l.data(), kGlobal, kSeq);
    all.insert(all.end(), t.begin(), t.end());
  }
  return all;
}

// The same steps drawn by `world` ranks (each with its own source), concatenated per step.
template <class Make>
std::vector<std::int32_t> sharded(Make make, int world, std::int64_t* cursor) {
  std::vector<std::unique_ptr<BatchSource>> inner;
  std::vector<std::unique_ptr<kd::data::DataParallelSource>> ranks;
  for (int r = 0; r < world; ++r) {
    inner.push_back(make());
    ranks.push_back(std::make_unique<kd::data::DataParallelSource>(*inner.back(), r, world, kGlobal));
  }
  const auto counts = kd::data::DataParallelSource::split(kGlobal, world);
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), 0), kGlobal);
  EXPECT_LE(counts.front() - counts.back(), 1);
  std::vector<std::int32_t> all;
  for (int step = 0; step < kSteps; ++step) {
    for (int r = 0; r < world; ++r) {
      const int local = ranks[std::size_t(r)]->local_batch();
      std::vector<std::int32_t> t(std::size_t(local * kSeq)), l(t.size());
      ranks[std::size_t(r)]->next(t.data(), l.data(), local, kSeq);
      all.insert(all.end(), t.begin(), t.end());
    }
  }
  for (int r = 0; r < world; ++r) EXPECT_EQ(ranks[std::size_t(r)]->position(), std::int64_t(kSteps * kGlobal));
  *cursor = ranks[0]->position();
  return all;
}

TEST(DataParallelSource, RanksTogetherDrawTheSingleProcessBatch) {
  kdtest::TempDir dir;
  const auto shard = make_shard_file(dir, 5000, 7919, 251);
  auto make_shard = [&] { return std::make_unique<kd::data::TokenDataset>(shard, 256, kSeq, 42); };
  auto make_synth = [] {
    return std::make_unique<kd::data::SyntheticTokens>(kd::data::SyntheticKind::markov, 64, 3, 5, 6);
  };
  for (int world = 1; world <= 4; ++world) {
    std::int64_t cursor = 0;
    auto a = make_shard();
    EXPECT_EQ(sharded(make_shard, world, &cursor), single(*a)) << "shard, world " << world;
    auto b = make_synth();
    EXPECT_EQ(sharded(make_synth, world, &cursor), single(*b)) << "synthetic, world " << world;
  }
}

TEST(DataParallelSource, SeekingTheCursorResumesExactly) {
  kdtest::TempDir dir;
  const auto shard = make_shard_file(dir, 3000, 31, 200);
  kd::data::TokenDataset a(shard, 256, kSeq, 7), b(shard, 256, kSeq, 7);
  kd::data::DataParallelSource ra(a, 1, 2, kGlobal), rb(b, 1, 2, kGlobal);
  const int local = ra.local_batch();  // 3 of 7
  std::vector<std::int32_t> t1(std::size_t(local * kSeq)), l1(t1.size()), t2(t1.size()), l2(t1.size());
  ra.next(t1.data(), l1.data(), local, kSeq);
  ra.next(t1.data(), l1.data(), local, kSeq);
  rb.seek(ra.position() - kGlobal, kSeq);  // one global batch back
  ra.seek(ra.position() - kGlobal, kSeq);
  ra.next(t1.data(), l1.data(), local, kSeq);
  rb.next(t2.data(), l2.data(), local, kSeq);
  EXPECT_EQ(t1, t2);
  EXPECT_EQ(l1, l2);
}

}  // namespace
