// The tensor-parallel teacher (trainer/distill/teacher_tp.h) against the whole teacher:
// under mpirun with W ranks (2 and 4), the world is one tensor-parallel group; each rank
// holds its shard (W divides the 4 KV groups and d_ff) and the final normed states and the
// logits, gathered from vocabulary slices (37 tokens: uneven slices 19+18, 10+9+9+9), must
// match the unsharded forward on every rank. A shard read straight from a checkpoint (only
// its rows and columns) equals the shard cut from the whole teacher, bit for bit.
// Tolerance: each block's output projection is summed over ranks instead of in one GEMM,
// a float32 reordering of ~1e-7 relative per sum; over 3 layers the logits stay within
// 2e-5 of their largest magnitude. Every rank must hold the same logits bit for bit (the
// student is replicated in the group and must see identical targets).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "trainer/dist/comm.h"
#include "trainer/distill/teacher_tp.h"
#include "trainer/model/llama.h"
#include "tests/support/temp_files.h"
#include "trainer/checkpoint/checkpoint.h"
#include "base/errors.h"

namespace {

kd::dist::Comm& world() {
  static const std::unique_ptr<kd::dist::Comm> w = kd::dist::make_world_comm();
  return *w;
}

kd::ModelSpec teacher_spec() {
  kd::ModelSpec s;
  s.vocab = 37;
  s.d_model = 32;
  s.n_layers = 3;
  s.n_heads = 8;
  s.n_kv_heads = 4;
  s.d_ff = 64;
  s.tie_embeddings = false;
  return s;
}

TEST(TensorParallel, ShardedTeacherGivesTheWholeTeachersLogits) {
  auto& tp = world();
  const kd::ModelSpec spec = teacher_spec();
  if (spec.n_kv_heads % tp.size() != 0) GTEST_SKIP() << tp.size() << " ranks do not divide 4 KV groups";
  const int batch = 2, seq = 9, m = batch * seq;
  kd::ParamTable table;
  const kd::LlamaLayout full(spec, table);
  std::vector<float> w(table.total());
  full.init(w.data(), 17, 0.2);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(m));
  std::mt19937 rng(5);
  for (auto& t : tokens) t = std::int32_t(rng() % std::uint32_t(spec.vocab));

  // the whole teacher
  kd::FrozenActivations<float> a;
  a.build(spec, batch, seq, 1, {});
  kd::llama_forward_frozen<float>(full, w.data(), tokens.data(), a);
  std::vector<float> want(std::size_t(m) * spec.vocab);
  kd::kern::linear_forward<float>(want.data(), a.final_norm, w.data() + full.head(), m, spec.vocab, spec.d_model,
                                  false);

  // this rank's shard
  const kd::TeacherShard shard = kd::shard_teacher(full, w.data(), tp.size(), tp.rank());
  EXPECT_EQ(shard.spec.n_kv_heads, spec.n_kv_heads / tp.size());
  EXPECT_EQ(shard.spec.d_ff, spec.d_ff / tp.size());
  EXPECT_EQ(shard.spec.head_dim(), spec.head_dim());
  kd::FrozenActivations<float> b;
  b.build(shard.spec, batch, seq, 1, {});
  kd::TeacherTp ttp(tp, *shard.layout, batch, seq);
  ttp.forward(shard.params.data(), tokens.data(), b);
  std::vector<float> got(want.size());
  ttp.logits(got.data(), b.final_norm, shard.params.data(), m);

  float scale = 0, worst = 0, worst_hidden = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    worst = std::max(worst, std::abs(got[i] - want[i]));
  }
  for (std::size_t i = 0; i < std::size_t(m) * spec.d_model; ++i) {
    worst_hidden = std::max(worst_hidden, std::abs(b.final_norm[i] - a.final_norm[i]));
  }
  EXPECT_LE(worst, 2e-5f * scale) << "logits, " << tp.size() << " ranks";
  EXPECT_LE(worst_hidden, 2e-5f) << "final normed states (unit RMS)";
  std::printf("%d ranks: largest logit difference %.3g of %.3g; final states %.3g\n", tp.size(), double(worst),
              double(scale), double(worst_hidden));

  // identical on every rank
  std::vector<double> hi(got.begin(), got.end()), lo(got.size());
  for (std::size_t i = 0; i < got.size(); ++i) lo[i] = -double(got[i]);
  tp.all_reduce_max(hi);
  tp.all_reduce_max(lo);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(hi[i], -lo[i]) << "ranks hold different logits at " << i;
}

TEST(TensorParallel, ShardReadFromTheCheckpointEqualsTheCutShard) {
  auto& tp = world();
  const kd::ModelSpec spec = teacher_spec();
  if (spec.n_kv_heads % tp.size() != 0) GTEST_SKIP() << tp.size() << " ranks do not divide 4 KV groups";
  kd::ParamTable table;
  const kd::LlamaLayout full(spec, table);
  std::vector<float> w(table.total());
  full.init(w.data(), 23, 0.2);
  kdtest::TempDir dir("kd_tp_" + std::to_string(tp.rank()));
  const std::string path = dir.file("teacher.h5");
  kd::ckpt::CheckpointContents c;
  c.kind = "train";
  for (const auto& t : table.tensors()) c.tensors["model"].push_back({t.name, t.shape, w.data() + t.offset});
  kd::ckpt::write_checkpoint(path, c);
  const kd::TeacherShard cut = kd::shard_teacher(full, w.data(), tp.size(), tp.rank());
  const kd::TeacherShard read = kd::read_teacher_shard(kd::ckpt::CheckpointReader(path), spec, tp.size(), tp.rank());
  ASSERT_EQ(read.params.size(), cut.params.size());
  EXPECT_EQ(read.params, cut.params);
}

TEST(TensorParallel, ShapesThatDoNotSplitAreRefused) {
  kd::ModelSpec s = teacher_spec();
  EXPECT_THROW(kd::check_tensor_parallel(s, 3, "parallel.tensor_parallel"), kd::InputError);
  s.d_ff = 66;
  EXPECT_THROW(kd::check_tensor_parallel(s, 4, "parallel.tensor_parallel"), kd::InputError);
  EXPECT_NO_THROW(kd::check_tensor_parallel(teacher_spec(), 2, "parallel.tensor_parallel"));
}

}  // namespace
