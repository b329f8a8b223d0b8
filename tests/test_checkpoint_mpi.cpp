// Collective checkpoint writes (trainer/checkpoint over parallel HDF5's MPI-IO driver): run
// by CTest under `mpirun -np 2` and `-np 3`, and as one process (the sec2 path). Every rank
// writes its slice of each tensor (ZeRO-style even shares, and uneven cuts that leave some
// ranks empty and cross rows inside 2-D and 3-D tensors); every rank then reads the whole
// file back and compares it bit for bit with the tensors it knows, checks the manifest's
// CRCs, per-rank rows and ranged reads. A rank whose tensors differ, ranges that do not
// cover a tensor, and a failed write must fail on every rank, leaving no file behind.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/dist/comm.h"
#include "base/errors.h"

namespace {

using kd::ckpt::CheckpointContents;
using kd::ckpt::CheckpointReader;
using kd::ckpt::DType;
using kd::ckpt::TensorView;

kd::dist::Comm& world() {
  static std::unique_ptr<kd::dist::Comm> c = kd::dist::make_world_comm();
  return *c;
}

// A directory every rank sees: rank 0 makes it, the others get its name.
std::string shared_dir() {
  static const std::string dir = [] {
    std::string path;
    if (world().rank() == 0) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "kd_ckpt_mpi_XXXXXX").string();
      path = mkdtemp(tmpl.data()) ? tmpl : std::string();
    }
    std::array<std::int64_t, 1> n{std::int64_t(path.size())};
    world().broadcast(n, 0);
    path.resize(std::size_t(n[0]));
    world().broadcast(std::span<char>(path.data(), path.size()), 0);
    return path;
  }();
  return dir;
}

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  DType dtype;
  std::vector<char> bytes;  // the whole tensor, the same on every rank
  std::uint64_t numel() const {
    std::uint64_t n = 1;
    for (auto d : shape) n *= std::uint64_t(d);
    return n;
  }
};

// Every stored type; 0-D, empty, multi-chunk (> 2^20 elements) and 3-D tensors.
std::vector<Tensor> make_tensors() {
  std::vector<Tensor> out = {{"w.2d", {37, 11}, DType::f32, {}}, {"norm", {5}, DType::f32, {}},
                             {"cube", {2, 3, 4}, DType::f32, {}}, {"scalar", {}, DType::f32, {}},
                             {"empty", {0, 3}, DType::f32, {}},   {"codes", {13, 7}, DType::u8, {}},
                             {"zeros", {9}, DType::i32, {}},      {"stats", {6}, DType::f64, {}},
                             {"big", {1100, 1000}, DType::f32, {}}, {"i8", {4, 5}, DType::i8, {}}};
  std::mt19937 rng(7);
  for (Tensor& t : out) {
    t.bytes.resize(t.numel() * kd::ckpt::dtype_size(t.dtype));
    for (char& b : t.bytes) b = char(rng() & 0xff);
    if (t.dtype == DType::f32 || t.dtype == DType::f64) {  // finite floats: keep the exponent sane
      const std::size_t w = kd::ckpt::dtype_size(t.dtype);
      for (std::size_t i = 0; i < t.bytes.size(); i += w) t.bytes[i + w - 1] = char(0x3e);
    }
  }
  return out;
}

// Rank r's range of tensor t: cut at n·r²/W², so low ranks get little (rank 0 nothing of
// short tensors) and cuts fall inside rows.
std::pair<std::int64_t, std::int64_t> uneven_range(const Tensor& t, int r, int w) {
  const std::uint64_t n = t.numel();
  auto cut = [&](int k) { return std::int64_t(n * std::uint64_t(k * k) / std::uint64_t(w * w)); };
  return {cut(r), cut(r + 1)};
}

CheckpointContents contents(const std::vector<Tensor>& tensors) {
  const int r = world().rank(), w = world().size();
  CheckpointContents c;
  if (r == 0) {
    c.kind = "train";
    c.config_yaml = "model:\n  d_model: 8  # ü\n";
    c.metrics_jsonl = "{\"step\": 1}\n";
    c.provenance = {{"world_size", std::to_string(w)}};
    c.state = {{"step", 12}, {"data_cursor", -3}};
  }
  for (const Tensor& t : tensors) c.tensors["even"].push_back({t.name, t.shape, t.bytes.data(), t.dtype});
  kd::ckpt::split_among_ranks(c.tensors["even"], r, w);
  for (const Tensor& t : tensors) {
    const auto [b, e] = uneven_range(t, r, w);
    c.tensors["uneven"].push_back({t.name, t.shape, t.bytes.data() + b * std::int64_t(kd::ckpt::dtype_size(t.dtype)),
                                   t.dtype, b, e});
  }
  c.per_rank["row"] = {r, 10 * r, -r};
  return c;
}

TEST(CheckpointMpi, CollectiveWriteReadsBackBitForBit) {
  const std::vector<Tensor> tensors = make_tensors();
  const std::string path = shared_dir() + "/collective.h5";
  kd::ckpt::write_checkpoint(path, contents(tensors), &world());
  world().barrier();
  ASSERT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const CheckpointReader r(path);
  EXPECT_EQ(r.kind(), "train");
  EXPECT_EQ(r.config_yaml(), "model:\n  d_model: 8  # ü\n");
  EXPECT_EQ(r.state("data_cursor"), -3);
  EXPECT_EQ(r.provenance().at("world_size"), std::to_string(world().size()));
  EXPECT_EQ(r.verify(), "");
  EXPECT_EQ(r.written_by_ranks(), world().size());
  for (int k = 0; k < world().size(); ++k) {
    EXPECT_EQ(r.per_rank("row", k), (std::vector<std::int64_t>{k, 10 * k, -k}));
  }
  EXPECT_FALSE(r.per_rank("row", world().size()).has_value());
  std::mt19937 rng(11);
  for (const char* group : {"even", "uneven"}) {
    ASSERT_EQ(r.tensor_names(group).size(), tensors.size());
    for (const Tensor& t : tensors) {
      std::vector<char> back(t.bytes.size());
      r.read_typed(group, t.name, t.shape, t.dtype, back.data());
      EXPECT_EQ(back, t.bytes) << group << "/" << t.name;
      if (t.numel() == 0) continue;
      for (int trial = 0; trial < 5; ++trial) {  // ranged reads, as a resumed rank reads its moment shard
        std::int64_t b = std::int64_t(rng() % t.numel()), e = std::int64_t(rng() % (t.numel() + 1));
        if (b > e) std::swap(b, e);
        const std::size_t w = kd::ckpt::dtype_size(t.dtype);
        std::vector<char> part(std::size_t(e - b) * w);
        r.read_range(group, t.name, t.shape, t.dtype, b, e, part.data());
        EXPECT_EQ(std::memcmp(part.data(), t.bytes.data() + b * std::int64_t(w), part.size()), 0)
            << group << "/" << t.name << " [" << b << ", " << e << ")";
      }
    }
  }
}

// Every rank throws the same kind of error (and none hangs); no file, no .tmp is left.
void expect_failure_everywhere(const std::string& path, const CheckpointContents& c, const std::string& needle) {
  std::string message;
  try {
    kd::ckpt::write_checkpoint(path, c, &world());
  } catch (const kd::RuntimeFailure& e) {
    message = e.what();
  }
  EXPECT_NE(message.find(needle), std::string::npos) << "rank " << world().rank() << ": '" << message << "'";
  EXPECT_NE(message.find(path), std::string::npos) << message;
  world().barrier();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(CheckpointMpi, RanksWithDifferentTensorsAllFail) {
  if (world().size() == 1) GTEST_SKIP() << "needs 2 ranks or more";
  std::vector<Tensor> tensors = make_tensors();
  if (world().rank() == 1) tensors[1].shape = {5, 1};
  expect_failure_everywhere(shared_dir() + "/differ.h5", contents(tensors), "differ from rank 0's");
}

TEST(CheckpointMpi, RangesThatDoNotCoverATensorFail) {
  const std::vector<Tensor> tensors = make_tensors();
  CheckpointContents c = contents(tensors);
  c.tensors["uneven"][0].end = c.tensors["uneven"][0].begin;  // every rank drops its part of w.2d
  expect_failure_everywhere(shared_dir() + "/gap.h5", c, "tensor \"uneven/w.2d\": the ranks' ranges cover 0 of its 407");
}

TEST(CheckpointMpi, AWriteThatFailsFailsOnEveryRank) {
  const std::vector<Tensor> tensors = make_tensors();
  expect_failure_everywhere(shared_dir() + "/missing/dir.h5", contents(tensors), "cannot write checkpoint");
}

TEST(CheckpointMpi, Cleanup) {
  world().barrier();
  if (world().rank() == 0) std::filesystem::remove_all(shared_dir());
}

}  // namespace
