// Comm (trainer/dist/comm.h) against closed-form results: run by CTest as one process
// (the single-process Comm) and under `mpirun -np 2`, `-np 3` and `-np 4` (MPI; 3 ranks
// give uneven shards and padding). Every operation runs on the world and on a sub-group:
// the first W − 1 ranks (W ≥ 3; else the world) in reverse order, and the last rank alone,
// so group ranks differ from world ranks. Every rank runs every test in the same order;
// the values are small integers and halves, so float sums are exact and compared with ==.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>

#include "trainer/dist/comm.h"

namespace {

kd::dist::Comm& world() {
  static std::unique_ptr<kd::dist::Comm> c = kd::dist::make_world_comm();
  return *c;
}

// Created on first use, by every rank at the same point (split is collective).
kd::dist::Comm& subgroup() {
  static std::unique_ptr<kd::dist::Comm> g = [] {
    auto& w = world();
    const int W = w.size(), r = w.rank();
    const bool last_alone = W >= 3 && r == W - 1;
    return w.split(last_alone ? 1 : 0, -r, "test sub-group");
  }();
  return *g;
}

class CommOps : public ::testing::TestWithParam<const char*> {
 protected:
  kd::dist::Comm& comm() { return std::string(GetParam()) == "world" ? world() : subgroup(); }
};

TEST(Comm, WorldMatchesTheLauncher) {
  auto& c = world();
  const char* env = std::getenv("OMPI_COMM_WORLD_SIZE");
  EXPECT_EQ(c.size(), env ? std::atoi(env) : 1) << "the world is the launcher's, or one process without one";
  EXPECT_GE(c.rank(), 0);
  EXPECT_LT(c.rank(), c.size());
  std::printf("rank %d: %s\n", c.rank(), c.describe().c_str());
}

TEST(Comm, SubGroupRanksAreReversed) {
  auto& w = world();
  auto& g = subgroup();
  const int W = w.size(), r = w.rank();
  if (W >= 3 && r == W - 1) {
    EXPECT_EQ(g.size(), 1);
    EXPECT_EQ(g.rank(), 0);
  } else {
    const int n = W >= 3 ? W - 1 : W;
    EXPECT_EQ(g.size(), n);
    EXPECT_EQ(g.rank(), n - 1 - r);  // keys -r: the highest world rank first
  }
}

TEST_P(CommOps, AllReduceSumsAndMaxes) {
  auto& c = comm();
  const int W = c.size(), r = c.rank();
  std::vector<float> x(7);
  std::vector<double> y(7), z(7);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = float(r + 1) + 0.5f * float(i);
    y[i] = double(r + 1) * double(i);
    z[i] = double((r * 5 + int(i)) % 7);
  }
  c.all_reduce_sum(x);
  c.all_reduce_sum(y);
  c.all_reduce_max(z);
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i], float(W * (W + 1) / 2) + 0.5f * float(i) * float(W)) << i;
    EXPECT_EQ(y[i], double(W * (W + 1) / 2) * double(i)) << i;
    double m = 0;
    for (int k = 0; k < W; ++k) m = std::max(m, double((k * 5 + int(i)) % 7));
    EXPECT_EQ(z[i], m) << i;
  }
}

// ZeRO's pair: a padded buffer reduce-scattered into contiguous shards, then gathered back.
TEST_P(CommOps, ReduceScatterThenAllGatherOverPaddedShards) {
  auto& c = comm();
  const int W = c.size(), r = c.rank();
  const std::size_t n = 10, shard = kd::dist::padded_shard(n, W);
  EXPECT_GE(shard * std::size_t(W), n);
  EXPECT_LT(shard * std::size_t(W), n + std::size_t(W));
  std::vector<float> in(shard * std::size_t(W), 0.0f), mine(shard);
  for (std::size_t j = 0; j < n; ++j) in[j] = float(r + 1) * float(j);  // padding stays 0
  c.reduce_scatter_sum(in, mine);
  for (std::size_t i = 0; i < shard; ++i) {
    const std::size_t j = std::size_t(r) * shard + i;
    EXPECT_EQ(mine[i], j < n ? float(W * (W + 1) / 2) * float(j) : 0.0f) << j;
  }
  std::vector<float> all(shard * std::size_t(W), -1.0f);
  c.all_gather(mine, all);
  for (std::size_t j = 0; j < n; ++j) EXPECT_EQ(all[j], float(W * (W + 1) / 2) * float(j)) << j;
  // in place: the own shard already sits in the output buffer
  std::vector<float> inplace(shard * std::size_t(W), 0.0f);
  for (std::size_t i = 0; i < shard; ++i) inplace[std::size_t(r) * shard + i] = float(r * 100) + float(i);
  c.all_gather(std::span<const float>(inplace.data() + std::size_t(r) * shard, shard), inplace);
  for (int k = 0; k < W; ++k) {
    for (std::size_t i = 0; i < shard; ++i) EXPECT_EQ(inplace[std::size_t(k) * shard + i], float(k * 100) + float(i));
  }
}

// Uneven counts: rank k owns k + 1 elements.
TEST_P(CommOps, UnevenReduceScatterAndAllGather) {
  auto& c = comm();
  const int W = c.size(), r = c.rank();
  std::vector<std::size_t> counts(static_cast<std::size_t>(W));
  std::iota(counts.begin(), counts.end(), std::size_t(1));
  const std::size_t total = std::accumulate(counts.begin(), counts.end(), std::size_t(0));
  std::size_t offset = 0;
  for (int k = 0; k < r; ++k) offset += counts[std::size_t(k)];
  std::vector<float> in(total), mine(counts[std::size_t(r)]);
  for (std::size_t j = 0; j < total; ++j) in[j] = float(r + 1) + float(j);
  c.reduce_scatter_sum_v(in, mine, counts);
  for (std::size_t i = 0; i < mine.size(); ++i) {
    EXPECT_EQ(mine[i], float(W * (W + 1) / 2) + float(W) * float(offset + i)) << i;
  }
  std::vector<float> own(counts[std::size_t(r)], float(r)), all(total, -1.0f);
  c.all_gather_v(own, all, counts);
  std::size_t j = 0;
  for (int k = 0; k < W; ++k) {
    for (std::size_t i = 0; i < counts[std::size_t(k)]; ++i, ++j) EXPECT_EQ(all[j], float(k)) << j;
  }
}

// A ring: every rank sends `out` to the next and receives the previous one's into `got`,
// even ranks sending first.
template <class T>
void ring_exchange(kd::dist::Comm& c, const std::vector<T>& out, std::vector<T>& got, int tag) {
  const int W = c.size(), r = c.rank(), next = (r + 1) % W, prev = (r + W - 1) % W;
  if (r % 2 == 0) {
    c.send(std::span<const T>(out), next, tag);
    c.recv(std::span<T>(got), prev, tag);
  } else {
    c.recv(std::span<T>(got), prev, tag);
    c.send(std::span<const T>(out), next, tag);
  }
}

TEST_P(CommOps, BroadcastSendRecvAndSplit) {
  auto& c = comm();
  const int W = c.size(), r = c.rank();
  std::vector<float> b(5, float(r));
  std::vector<std::int64_t> bi(3, r);
  c.broadcast(b, W - 1);
  c.broadcast(bi, W - 1);
  for (float v : b) EXPECT_EQ(v, float(W - 1));
  for (auto v : bi) EXPECT_EQ(v, W - 1);
  if (W > 1) {
    const int prev = (r + W - 1) % W;
    std::vector<float> out(4, float(r)), got(4, -1.0f);
    ring_exchange(c, out, got, 7);
    for (float v : got) EXPECT_EQ(v, float(prev));
    // int32 (token ids, top-k indices): every bit, beyond float's 24
    std::vector<std::int32_t> iout(3, (1 << 30) + 7 * r + 1), igot(3, -1);
    ring_exchange(c, iout, igot, 8);
    for (auto v : igot) EXPECT_EQ(v, (1 << 30) + 7 * prev + 1);
  }
  // groups: even and odd ranks, each summing its own members
  auto sub = c.split(r % 2, r, "test group");
  std::vector<float> s(1, float(r));
  sub->all_reduce_sum(s);
  float want = 0;
  int members = 0;
  for (int k = r % 2; k < W; k += 2, ++members) want += float(k);
  EXPECT_EQ(sub->size(), members);
  EXPECT_EQ(sub->rank(), r / 2);
  EXPECT_EQ(s[0], want);
  c.barrier();
}

// Same inputs, same world size: the same bits, call after call (float sums of arbitrary
// values, where the order matters).
TEST_P(CommOps, ReductionsAreDeterministic) {
  auto& c = comm();
  std::mt19937 rng(1234u + unsigned(c.rank()));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(4099);
  for (auto& v : x) v = nd(rng) * 1e3f;
  std::vector<float> a = x, b = x;
  c.all_reduce_sum(a);
  c.all_reduce_sum(b);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Groups, CommOps, ::testing::Values("world", "subgroup"));

}  // namespace
