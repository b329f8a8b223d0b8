// Pruning masks and criteria (trainer/prune): the invariants each criterion promises,
// checked against brute-force references, and the Zhu & Gupta schedule against its formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "tests/support/tiny_config.h"
#include "trainer/prune/compact.h"
#include "trainer/prune/criteria.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"
#include "trainer/prune/schedule.h"
#include "trainer/util/errors.h"

namespace {

using kd::prune::Criterion;
using kd::prune::Mask;
using kd::prune::PruneTarget;

PruneTarget target(Criterion c, double sparsity, int n = 2, int m = 4) {
  PruneTarget t;
  t.criterion = c;
  t.sparsity = sparsity;
  t.n = n;
  t.m = m;
  return t;
}

struct Model {
  kd::ModelSpec spec;
  kd::ParamTable table;
  std::unique_ptr<kd::LlamaLayout> layout;
  std::vector<float> w;
  explicit Model(std::uint64_t seed = 1) {
    spec.vocab = 16;
    spec.d_model = 16;
    spec.n_layers = 2;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.d_ff = 24;
    spec.tie_embeddings = false;
    layout = std::make_unique<kd::LlamaLayout>(spec, table);
    w.resize(table.total());
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto& x : w) x = nd(rng);
  }
};

std::vector<const kd::TensorInfo*> prunable(const kd::ParamTable& t) {
  std::vector<const kd::TensorInfo*> out;
  for (const auto& ti : t.tensors()) {
    if (ti.has(kd::kPrunable)) out.push_back(&ti);
  }
  return out;
}

TEST(Mask, RefusesValuesOtherThanZeroAndOne) {
  EXPECT_NO_THROW(Mask::from_bytes({0, 1, 1}, "m"));
  try {
    Mask::from_bytes({0, 2, 1}, "masks/model");
    ADD_FAILURE();
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("masks/model: mask element 1 is 2"), std::string::npos) << e.what();
  }
  Mask m = Mask::from_bytes({1, 0, 1}, "m");
  std::vector<float> x{1.0f, -2.0f, 3.0f};
  m.apply(x.data(), 3);
  EXPECT_EQ(x, (std::vector<float>{1.0f, 0.0f, 3.0f}));
}

// Global magnitude at p: exactly round(p·N) prunable elements are zero, and they are the
// smallest |w| (ties: lower index first); other tensors untouched.
TEST(Magnitude, GlobalPrunesExactlyTheSmallest) {
  Model md;
  // ties: a run of equal magnitudes straddling the threshold
  const auto P = prunable(md.table);
  for (int i = 0; i < 40; ++i) md.w[P[1]->offset + i] = (i % 2 ? 0.3f : -0.3f);
  std::size_t n = 0;
  for (auto* t : P) n += t->numel;
  for (double p : {0.0, 0.2, 0.5, 0.9}) {
    SCOPED_TRACE(p);
    const Mask m = kd::prune::prune(target(Criterion::magnitude_global, p), *md.layout, md.table, md.w.data(),
                                    Mask::dense(md.table.total()), "prune");
    std::vector<std::pair<float, std::size_t>> all;
    for (auto* t : P) {
      for (std::size_t i = t->offset; i < t->offset + t->numel; ++i) all.push_back({std::fabs(md.w[i]), i});
    }
    std::sort(all.begin(), all.end());
    const std::size_t k = std::size_t(std::llround(p * double(n)));
    for (std::size_t r = 0; r < all.size(); ++r) EXPECT_EQ(m.kept(all[r].second), r >= k) << "rank " << r;
    EXPECT_EQ(m.pruned(0, md.table.total()), k);
    EXPECT_NEAR(m.sparsity(md.table, kd::kPrunable), double(k) / double(n), 1e-12);
  }
}

TEST(Magnitude, LayerwiseHitsEachTensorAndMasksOnlyGrow) {
  Model md;
  Mask m = kd::prune::prune(target(Criterion::magnitude_layer, 0.5), *md.layout, md.table, md.w.data(),
                            Mask::dense(md.table.total()), "prune");
  for (auto* t : prunable(md.table)) EXPECT_EQ(m.pruned(t->offset, t->offset + t->numel), std::size_t(std::llround(0.5 * t->numel)));
  // new weights (training moved them): the next, higher target keeps every earlier pruning
  Model other(7);
  const Mask m2 = kd::prune::prune(target(Criterion::magnitude_layer, 0.7), *md.layout, md.table, other.w.data(), m, "prune");
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (!m.kept(i)) {
      EXPECT_FALSE(m2.kept(i)) << i;
    }
  }
  for (auto* t : prunable(md.table)) EXPECT_EQ(m2.pruned(t->offset, t->offset + t->numel), std::size_t(std::llround(0.7 * t->numel)));
}

TEST(NM, TwoFourHoldsInEveryGroupAndKeepsTheLargest) {
  Model md;
  const Mask m = kd::prune::prune(target(Criterion::n_m, 0.0, 2, 4), *md.layout, md.table, md.w.data(),
                                  Mask::dense(md.table.total()), "prune");
  for (auto* t : prunable(md.table)) {
    for (std::size_t g = t->offset; g < t->offset + t->numel; g += 4) {
      int kept = 0;
      float min_kept = 1e30f, max_pruned = -1;
      for (std::size_t i = g; i < g + 4; ++i) {
        kept += m.kept(i);
        if (m.kept(i)) min_kept = std::min(min_kept, std::fabs(md.w[i]));
        else max_pruned = std::max(max_pruned, std::fabs(md.w[i]));
      }
      ASSERT_EQ(kept, 2) << t->name << " group at " << g;
      ASSERT_GE(min_kept, max_pruned);
    }
  }
  // m must divide every input dimension: d_ff 24 and d 16 do not take 5
  try {
    kd::prune::prune(target(Criterion::n_m, 0.0, 2, 5), *md.layout, md.table, md.w.data(), Mask::dense(md.table.total()),
                     "prune.target");
    ADD_FAILURE();
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("prune.target.m = 5 does not divide"), std::string::npos) << e.what();
  }
}

// Heads: whole KV groups (q rows of the group's query heads, k/v rows of its KV head, the
// o_proj columns of those query heads) go together, one group per layer at 50%.
TEST(Structured, HeadsRemoveWholeKvGroupsConsistently) {
  Model md;
  const Mask m = kd::prune::prune(target(Criterion::heads, 0.5), *md.layout, md.table, md.w.data(),
                                  Mask::dense(md.table.total()), "prune");
  const auto& s = md.spec;
  const std::size_t d = s.d_model, hd = s.head_dim(), qd = s.q_dim(), kvd = s.kv_dim();
  for (const auto& L : md.layout->layers()) {
    int pruned_groups = 0;
    for (int g = 0; g < s.n_kv_heads; ++g) {
      const bool gone = !m.kept(L.wqkv + (qd + g * hd) * d);  // first k element of the group
      pruned_groups += gone;
      for (int h = g * 2; h < g * 2 + 2; ++h) {
        for (std::size_t r = 0; r < hd; ++r) {
          const std::size_t row = h * hd + r;
          for (std::size_t c = 0; c < d; ++c) ASSERT_EQ(m.kept(L.wqkv + row * d + c), !gone);
          for (std::size_t o = 0; o < d; ++o) ASSERT_EQ(m.kept(L.wo + o * qd + row), !gone);
        }
      }
      for (std::size_t r = 0; r < hd; ++r) {
        for (std::size_t c = 0; c < d; ++c) {
          ASSERT_EQ(m.kept(L.wqkv + (qd + g * hd + r) * d + c), !gone);
          ASSERT_EQ(m.kept(L.wqkv + (qd + kvd + g * hd + r) * d + c), !gone);
        }
      }
    }
    EXPECT_EQ(pruned_groups, 1);
  }
  // nothing outside attention
  for (const auto& t : md.table.tensors()) {
    if (t.name.find("self_attn") == std::string::npos) {
      EXPECT_EQ(m.pruned(t.offset, t.offset + t.numel), 0u) << t.name;
    }
  }
}

// Neurons: gate row j, up row j and down column j together; floor(p·d_ff) per layer, the
// lowest-norm ones.
TEST(Structured, NeuronsRemoveGateUpRowsAndDownColumnTogether) {
  Model md;
  const Mask m = kd::prune::prune(target(Criterion::neurons, 0.25), *md.layout, md.table, md.w.data(),
                                  Mask::dense(md.table.total()), "prune");
  const std::size_t d = md.spec.d_model, f = md.spec.d_ff;
  for (const auto& L : md.layout->layers()) {
    std::vector<std::pair<double, std::size_t>> scores;
    std::size_t gone_count = 0;
    for (std::size_t j = 0; j < f; ++j) {
      const bool gone = !m.kept(L.wgu + j * d);
      gone_count += gone;
      double sc = 0;
      for (std::size_t c = 0; c < d; ++c) {
        ASSERT_EQ(m.kept(L.wgu + j * d + c), !gone);
        ASSERT_EQ(m.kept(L.wgu + (f + j) * d + c), !gone);
        ASSERT_EQ(m.kept(L.wdown + c * f + j), !gone);
        for (std::size_t i : {L.wgu + j * d + c, L.wgu + (f + j) * d + c, L.wdown + c * f + j}) sc += double(md.w[i]) * md.w[i];
      }
      scores.push_back({sc, j});
    }
    EXPECT_EQ(gone_count, f / 4);
    std::sort(scores.begin(), scores.end());
    for (std::size_t r = 0; r < f; ++r) EXPECT_EQ(!m.kept(L.wgu + scores[r].second * d), r < f / 4) << "rank " << r;
  }
}

TEST(Targets, SparsityOutsideTheRangeNamesTheKey) {
  Model md;
  for (double p : {-0.1, 1.0, 1.5}) {
    try {
      kd::prune::prune(target(Criterion::magnitude_global, p), *md.layout, md.table, md.w.data(),
                       Mask::dense(md.table.total()), "prune.target");
      ADD_FAILURE() << p;
    } catch (const kd::InputError& e) {
      EXPECT_NE(std::string(e.what()).find("prune.target.sparsity"), std::string::npos) << e.what();
    }
  }
}

// Zhu & Gupta: s_t = s_f + (s_i − s_f)(1 − (t − t0)/(t1 − t0))³ at the last pruning step.
TEST(Schedule, GradualMatchesTheClosedForm) {
  kd::prune::GradualSchedule g{0.1, 0.8, 100, 1100, 50};
  kd::prune::check_schedule(g, "prune.schedule");
  for (std::int64_t t = 0; t <= 1300; ++t) {
    double want;
    if (t < 100) {
      want = 0.1;
    } else if (t >= 1100) {
      want = 0.8;
    } else {
      const std::int64_t last = 100 + (t - 100) / 50 * 50;
      const double x = 1.0 - double(last - 100) / 1000.0;
      want = 0.8 + (0.1 - 0.8) * x * x * x;
    }
    ASSERT_DOUBLE_EQ(kd::prune::gradual_sparsity(g, t), want) << t;
    ASSERT_EQ(kd::prune::is_pruning_step(g, t), t >= 100 && t <= 1100 && (t - 100) % 50 == 0) << t;
  }
  EXPECT_DOUBLE_EQ(kd::prune::gradual_sparsity(g, 600), 0.8 - 0.7 * 0.125);  // halfway: 1/8 of the way left
  kd::prune::GradualSchedule bad = g;
  bad.end = 50;
  EXPECT_THROW(kd::prune::check_schedule(bad, "prune.schedule"), kd::InputError);
  bad = g;
  bad.final = 1.0;
  EXPECT_THROW(kd::prune::check_schedule(bad, "prune.schedule"), kd::InputError);
}

// In training: after every step the pruned weights and their Adam moments are exactly
// zero, and the prunable sparsity follows the gradual schedule.
TEST(Training, PrunedWeightsStayExactlyZero) {
  kd::Config c = kdtest::tiny_config({"train.steps=30", "prune.criterion=magnitude_layer", "prune.sparsity=0.6",
                                      "prune.schedule=gradual", "prune.start=4", "prune.end=20", "prune.every=4"});
  c.has_teacher = false;
  kd::set_threads(2);
  kd::Trainer t(c);
  auto src = kd::make_synthetic(c, kd::Stream::train);
  kd::prune::GradualSchedule g{0.0, 0.6, 4, 20, 4};
  for (int s = 0; s < 30; ++s) {
    t.step(*src);
    const Mask& m = t.pruner()->mask();
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (m.kept(i)) continue;
      ASSERT_EQ(t.student_params()[i], 0.0f) << "step " << s << " element " << i;
      ASSERT_EQ(t.optimizer().m()[i], 0.0f);
      ASSERT_EQ(t.optimizer().v()[i], 0.0f);
    }
    // per tensor: the rounded schedule value of the last pruning step
    for (const auto& ti : t.student_table().tensors()) {
      if (!ti.has(kd::kPrunable)) continue;
      const double want = kd::prune::gradual_sparsity(g, s);  // the mask was set at the start of step s
      ASSERT_EQ(m.pruned(ti.offset, ti.offset + ti.numel), std::size_t(std::llround(want * double(ti.numel))))
          << ti.name << " step " << s;
    }
  }
}

TEST(Config, BadPruneSectionsNameTheKey) {
  auto expect = [](std::vector<std::string> o, const char* needle) {
    try {
      kdtest::tiny_config(o);
      ADD_FAILURE() << needle;
    } catch (const kd::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect({"prune.sparsity=1.0"}, "prune.sparsity is 1");
  expect({"prune.sparsity=-0.5"}, "prune.sparsity is -0.5");
  expect({"prune.criterion=n_m", "prune.m=5"}, "prune.m = 5 does not divide");
  expect({"prune.criterion=rows"}, "prune.criterion");
  expect({"prune.schedule=gradual", "prune.start=50", "prune.end=10"}, "prune: end step 10");
  expect({"prune.at=500"}, "prune.at (500) is not before train.steps");
}

// A compacted model (KV groups and neurons cut out) gives the masked model's logits.
// Tolerance: the removed terms are exact zeros in the masked model, so only the GEMMs'
// summation order differs (shorter inner dimensions): 1e-5 of the logits' scale.
TEST(Compact, SameLogitsAsTheMaskedModel) {
  Model md;
  Mask m = kd::prune::prune(target(Criterion::heads, 0.5), *md.layout, md.table, md.w.data(), Mask::dense(md.table.total()), "p");
  m = kd::prune::prune(target(Criterion::neurons, 0.25), *md.layout, md.table, md.w.data(), m, "p");
  m.apply(md.w.data(), md.w.size());
  const auto c = kd::prune::compact(*md.layout, md.w.data(), m);
  EXPECT_EQ(c.spec.n_kv_heads, 1);
  EXPECT_EQ(c.spec.n_heads, 2);
  EXPECT_EQ(c.spec.d_ff, 18);
  EXPECT_EQ(c.spec.head_dim(), md.spec.head_dim());
  EXPECT_LT(c.table.total(), md.table.total());
  const int B = 2, T = 8, M = B * T;
  std::vector<std::int32_t> tok(M);
  for (int i = 0; i < M; ++i) tok[i] = (i * 7 + 3) % md.spec.vocab;
  auto logits = [&](const kd::LlamaLayout& lay, const float* p) {
    kd::FrozenActivations<float> a;
    a.build(lay.spec(), B, T, 2, {});
    kd::llama_forward_frozen<float>(lay, p, tok.data(), a);
    std::vector<float> z(std::size_t(M) * lay.spec().vocab);
    kd::head_forward_frozen<float>(lay, p, z.data(), a.final_norm, M);
    return z;
  };
  const auto z1 = logits(*md.layout, md.w.data()), z2 = logits(*c.layout, c.params.data());
  double scale = 0;
  for (float v : z1) scale = std::max(scale, double(std::fabs(v)));
  for (std::size_t i = 0; i < z1.size(); ++i) ASSERT_NEAR(z1[i], z2[i], 1e-5 * scale) << i;
  // non-uniform removal is refused
  Mask nu = Mask::dense(md.table.total());
  const auto& L0 = md.layout->layers()[0];
  for (std::size_t c0 = 0; c0 < std::size_t(md.spec.d_model); ++c0) nu.prune(L0.wgu + c0);  // neuron 0 of layer 0 only
  EXPECT_THROW(kd::prune::compact(*md.layout, md.w.data(), nu), kd::InputError);
}

}  // namespace
