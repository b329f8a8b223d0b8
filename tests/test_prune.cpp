// Pruning (trainer/prune): the invariants each criterion promises, checked against
// brute-force references; the Zhu & Gupta schedule against its formula; IMP's rounds,
// rewinds and controls; depth pruning's block importance; targets; the pipeline order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "tests/support/tiny_config.h"
#include "trainer/prune/block_importance.h"
#include "trainer/prune/compact.h"
#include "trainer/prune/criteria.h"
#include "trainer/prune/imp_schedule.h"
#include "trainer/prune/schedule.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

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

// The config with these overrides is refused with a message containing `needle`.
void expect(const std::vector<std::string>& overrides, const char* needle) {
  try {
    kdtest::tiny_config(overrides);
    ADD_FAILURE() << needle;
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Config, BadPruneSectionsNameTheKey) {
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


// IMP's step arithmetic: rounds of E, then E - k steps; the LR schedule replayed from k.
TEST(Imp, RoundsBoundariesAndLrPositions) {
  const kd::prune::ImpSchedule s{3, 10, 0.2, 4};  // R = 3, E = 10, k = 4
  EXPECT_EQ(s.total_steps(), 10 + 3 * 6);
  EXPECT_EQ(s.round_of(0), 0);
  EXPECT_EQ(s.round_of(9), 0);
  EXPECT_EQ(s.round_of(10), 1);
  EXPECT_EQ(s.round_of(15), 1);
  EXPECT_EQ(s.round_of(16), 2);
  EXPECT_EQ(s.round_of(27), 3);
  for (std::int64_t t = 0; t < s.total_steps(); ++t) {
    EXPECT_EQ(s.is_boundary(t), t == 10 || t == 16 || t == 22) << t;
  }
  EXPECT_EQ(s.lr_position(9), 9);
  EXPECT_EQ(s.lr_position(10), 4);  // round 1 starts where the rewind went
  EXPECT_EQ(s.lr_position(15), 9);
  EXPECT_EQ(s.lr_position(16), 4);
  EXPECT_DOUBLE_EQ(s.sparsity_of_round(2), 1.0 - 0.8 * 0.8);
  EXPECT_THROW(kd::prune::check_imp({3, 10, 0.2, 10}, 10, "prune"), kd::InputError);  // k beyond round 0
  EXPECT_THROW(kd::prune::check_imp({3, 10, 1.0, 4}, 28, "prune"), kd::InputError);
  EXPECT_THROW(kd::prune::check_imp({3, 10, 0.2, 4}, 27, "prune"), kd::InputError);
  EXPECT_NO_THROW(kd::prune::check_imp({3, 10, 0.2, 4}, 28, "prune"));
}

kd::PruneSection imp_section(kd::RewindKind rewind, kd::ImpControl control = kd::ImpControl::none) {
  kd::PruneSection p;
  p.schedule = kd::PruneScheduleKind::imp;
  p.rounds = 2;
  p.round_steps = 6;
  p.rate = 0.5;
  p.rewind = rewind;
  p.rewind_step = 2;
  p.control = control;
  return p;
}

// Drives a Pruner through an IMP run on a fixed model, "training" being a deterministic
// perturbation of every weight; returns the weights right after each round's rewind.
struct ImpDrive {
  Model md;
  kd::OptimSection optim;
  kd::AdamW<float> opt{md.table, optim};
  kd::prune::Pruner pruner;
  std::vector<float> at_k;  // the weights after k updates
  explicit ImpDrive(const kd::PruneSection& p) : pruner(p, *md.layout, md.table, 5, 0.02) {}
  // Runs steps [from, to); after each step's begin_step, `check` sees the step.
  template <class F>
  void run(std::int64_t from, std::int64_t to, F&& check) {
    for (std::int64_t t = from; t < to; ++t) {
      if (t == 2) at_k = md.w;
      pruner.begin_step(t, md.w.data(), opt);
      check(t);
      for (std::size_t i = 0; i < md.w.size(); ++i) {
        md.w[i] += 0.01f * float((i * 31 + std::size_t(t) * 7) % 13) - 0.06f;
        opt.m()[i] = 1.0f;
        opt.v()[i] = 1.0f;
      }
      opt.set_steps_taken(t + 1);
      pruner.after_update(md.w.data(), opt, opt.m(), opt.v());
    }
  }
};

// Rewinding to step k: on the surviving positions the weights equal the snapshot taken at
// step k bit for bit, pruned ones are 0, the Adam moments and step count restart.
TEST(Imp, RewoundWeightsEqualTheSnapshotBitForBit) {
  ImpDrive d(imp_section(kd::RewindKind::step));
  int rounds = 0;
  d.run(0, 14, [&](std::int64_t t) {
    if (t != 6 && t != 10) return;
    ++rounds;
    ASSERT_EQ(d.pruner.snapshot(), d.at_k) << "the snapshot is the weights after k = 2 updates";
    const Mask& m = d.pruner.mask();
    for (std::size_t i = 0; i < d.md.w.size(); ++i) {
      if (m.kept(i)) {
        ASSERT_EQ(std::memcmp(&d.md.w[i], &d.at_k[i], sizeof(float)), 0) << "step " << t << " element " << i;
      } else {
        ASSERT_EQ(d.md.w[i], 0.0f);
      }
      ASSERT_EQ(d.opt.m()[i], 0.0f);
      ASSERT_EQ(d.opt.v()[i], 0.0f);
    }
    EXPECT_EQ(d.opt.steps_taken(), 0);
    const double want = t == 6 ? 0.5 : 0.75;
    std::size_t n = 0;
    for (const auto* ti : prunable(d.md.table)) n += ti->numel;
    std::size_t pruned = 0;
    for (const auto* ti : prunable(d.md.table)) pruned += m.pruned(ti->offset, ti->offset + ti->numel);
    EXPECT_EQ(pruned, std::size_t(std::llround(want * double(n)))) << "step " << t;
  });
  EXPECT_EQ(rounds, 2);
}

// Rewinding to initialization snapshots step 0; LR rewinding keeps the trained weights.
TEST(Imp, InitAndLrRewinding) {
  ImpDrive init(imp_section(kd::RewindKind::init));
  const std::vector<float> w0 = init.md.w;
  init.run(0, 7, [&](std::int64_t t) {
    if (t != 6) return;
    for (std::size_t i = 0; i < w0.size(); ++i) {
      ASSERT_EQ(init.md.w[i], init.pruner.mask().kept(i) ? w0[i] : 0.0f) << i;
    }
  });
  ImpDrive lr(imp_section(kd::RewindKind::lr));
  std::vector<float> before;
  lr.run(0, 7, [&](std::int64_t t) {
    if (t == 5) before = lr.md.w;  // (the update of step 5 follows)
    if (t != 6) return;
    EXPECT_TRUE(lr.pruner.snapshot().empty());
    std::size_t changed = 0;
    for (std::size_t i = 0; i < before.size(); ++i) changed += lr.md.w[i] != before[i];
    EXPECT_GT(changed, 0u) << "LR rewinding trains on from the trained weights, which moved since step 5";
    EXPECT_EQ(lr.pruner.lr_position(6, 14), std::make_pair(std::int64_t(2), std::int64_t(6)));
  });
}

// Controls: random_reinit draws the kept weights afresh (a seeded init); random_mask keeps
// IMP's per-tensor pruned counts but not its positions.
TEST(Imp, RandomReinitAndRandomMaskControls) {
  ImpDrive ticket(imp_section(kd::RewindKind::step));
  ImpDrive reinit(imp_section(kd::RewindKind::step, kd::ImpControl::random_reinit));
  ImpDrive rmask(imp_section(kd::RewindKind::step, kd::ImpControl::random_mask));
  auto nothing = [](std::int64_t) {};
  ticket.run(0, 7, nothing);
  reinit.run(0, 7, [&](std::int64_t t) {
    if (t != 6) return;
    std::vector<float> fresh(reinit.md.w.size());
    reinit.md.layout->init(fresh.data(), 5 + 1000003ull, 0.02);
    for (std::size_t i = 0; i < fresh.size(); ++i) {
      ASSERT_EQ(reinit.md.w[i], reinit.pruner.mask().kept(i) ? fresh[i] : 0.0f) << i;
    }
  });
  rmask.run(0, 7, nothing);
  std::size_t differ = 0;
  for (const auto* ti : prunable(ticket.md.table)) {
    EXPECT_EQ(rmask.pruner.mask().pruned(ti->offset, ti->offset + ti->numel),
              ticket.pruner.mask().pruned(ti->offset, ti->offset + ti->numel)) << ti->name;
    for (std::size_t i = ti->offset; i < ti->offset + ti->numel; ++i) {
      differ += rmask.pruner.mask().kept(i) != ticket.pruner.mask().kept(i);
    }
  }
  EXPECT_GT(differ, 100u) << "a random mask is not the magnitude mask";
}

// In a training run, every round's LR schedule replays the first round's from step k.
TEST(Imp, TrainingReplaysTheLrScheduleEachRound) {
  kd::Config c = kdtest::tiny_config({"train.steps=14", "optim.schedule=cosine", "optim.warmup_steps=1",
                                      "prune.schedule=imp", "prune.rounds=2", "prune.round_steps=6",
                                      "prune.rate=0.5", "prune.rewind=step", "prune.rewind_step=2"});
  c.has_teacher = false;
  kd::set_threads(2);
  kd::Trainer t(c);
  auto src = kd::make_synthetic(c, kd::Stream::train);
  std::vector<double> lr;
  for (int s = 0; s < 14; ++s) {
    const auto r = t.step(*src);
    lr.push_back(r.lr);
    EXPECT_EQ(r.prune_event.empty(), s != 6 && s != 10) << s;
  }
  for (int s = 6; s < 10; ++s) EXPECT_EQ(lr[std::size_t(s)], lr[std::size_t(s - 4)]) << s;   // round 1: 2..5
  for (int s = 10; s < 14; ++s) EXPECT_EQ(lr[std::size_t(s)], lr[std::size_t(s - 8)]) << s;  // round 2
  EXPECT_NEAR(t.pruner()->sparsity(), 0.75, 1e-6);
}

// Depth pruning: a block that barely changes the residual stream (its output projections
// scaled down) ranks least important by cosine; skip_loss is the loss of the model without
// the block minus the whole model's; a depth-pruned masked model and the compacted (one
// block shorter) model give the same logits.
TEST(Depth, ImportanceRanksTheNearIdentityBlockLastAndCompactDropsIt) {
  Model md;
  md.spec.n_layers = 3;
  md.table = kd::ParamTable();
  md.layout = std::make_unique<kd::LlamaLayout>(md.spec, md.table);
  md.w.resize(md.table.total());
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  for (auto& x : md.w) x = nd(rng);
  for (const auto& ti : md.table.tensors()) {  // norms at 1
    if (ti.name.find("norm") != std::string::npos) std::fill_n(md.w.begin() + std::ptrdiff_t(ti.offset), ti.numel, 1.0f);
  }
  const auto& L1 = md.layout->layers()[1];
  const std::size_t d = std::size_t(md.spec.d_model);
  for (std::size_t i = 0; i < d * std::size_t(md.spec.q_dim()); ++i) md.w[L1.wo + i] *= 1e-3f;
  for (std::size_t i = 0; i < d * std::size_t(md.spec.d_ff); ++i) md.w[L1.wdown + i] *= 1e-3f;
  kd::Config c = kdtest::tiny_config();
  c.model = md.spec;
  c.data.markov_support = 3;
  auto src = kd::make_synthetic(c, kd::Stream::prune_calibration);
  const kd::prune::ScoringData data{src.get(), 2, 2, 8, 2};
  const auto cos = kd::prune::block_importance(kd::prune::DepthScore::cosine, *md.layout, md.w.data(), md.w.size(), data);
  ASSERT_EQ(cos.size(), 3u);
  EXPECT_LT(cos[1], cos[0]);
  EXPECT_LT(cos[1], cos[2]);
  EXPECT_EQ(cos, kd::prune::block_importance(kd::prune::DepthScore::cosine, *md.layout, md.w.data(), md.w.size(), data))
      << "the same batches every call";
  // skip_loss against a reference: the mean CE (double, in the test) of the model with the
  // block cut out by compact, minus the whole model's, on the same batches
  const auto skip = kd::prune::block_importance(kd::prune::DepthScore::skip_loss, *md.layout, md.w.data(),
                                                md.w.size(), data);
  auto mean_ce = [&](const kd::LlamaLayout& lay, const float* p) {
    src->seek(0, 8);
    std::vector<std::int32_t> tok(16), lab(16);
    double sum = 0;
    int n = 0;
    for (int b = 0; b < 2; ++b) {
      src->next(tok.data(), lab.data(), 2, 8);
      kd::FrozenActivations<float> a;
      a.build(lay.spec(), 2, 8, 2, {});
      kd::llama_forward_frozen<float>(lay, p, tok.data(), a);
      std::vector<float> z(16 * std::size_t(lay.spec().vocab));
      kd::head_forward_frozen<float>(lay, p, z.data(), a.final_norm, 16);
      for (std::size_t r = 0; r < 16; ++r) {
        if (lab[r] < 0) continue;
        double se = 0;
        for (int j = 0; j < lay.spec().vocab; ++j) se += std::exp(double(z[r * std::size_t(lay.spec().vocab) + std::size_t(j)]));
        sum += std::log(se) - z[r * std::size_t(lay.spec().vocab) + std::size_t(lab[r])];
        ++n;
      }
    }
    return sum / n;
  };
  const double base = mean_ce(*md.layout, md.w.data());
  for (std::size_t l = 0; l < 3; ++l) {
    Mask one = Mask::dense(md.table.total());
    kd::prune::for_block_linears(*md.layout, l, [&](std::size_t i) { one.prune(i); });
    std::vector<float> w = md.w;
    one.apply(w.data(), w.size());
    const auto cut = kd::prune::compact(*md.layout, w.data(), one);
    // tolerance: float logits through differently-shaped GEMMs, summed in double: 1e-5
    EXPECT_NEAR(skip[l], mean_ce(*cut.layout, cut.params.data()) - base, 1e-5) << "block " << l;
  }
  PruneTarget t = target(Criterion::layers, 0.34);
  t.block_importance = kd::prune::block_importance(kd::prune::DepthScore::cosine, *md.layout, md.w.data(),
                                                   md.w.size(), data);
  Mask m = kd::prune::prune(t, *md.layout, md.table, md.w.data(), Mask::dense(md.table.total()), "p");
  std::size_t pruned = 0;
  kd::prune::for_block_linears(*md.layout, 1, [&](std::size_t i) { pruned += !m.kept(i); });
  EXPECT_EQ(pruned, m.pruned(0, m.size())) << "exactly block 1's linear layers";
  m.apply(md.w.data(), md.w.size());
  const auto comp = kd::prune::compact(*md.layout, md.w.data(), m);
  EXPECT_EQ(comp.spec.n_layers, 2);
  EXPECT_EQ(comp.removed_layers, 1);
  const int B = 2, T = 8, M = B * T;
  std::vector<std::int32_t> tok(M);
  for (int i = 0; i < M; ++i) tok[std::size_t(i)] = (i * 5 + 1) % md.spec.vocab;
  auto logits = [&](const kd::LlamaLayout& lay, const float* p) {
    kd::FrozenActivations<float> a;
    a.build(lay.spec(), B, T, 2, {});
    kd::llama_forward_frozen<float>(lay, p, tok.data(), a);
    std::vector<float> z(std::size_t(M) * std::size_t(lay.spec().vocab));
    kd::head_forward_frozen<float>(lay, p, z.data(), a.final_norm, M);
    return z;
  };
  // a zeroed block adds exact zeros to the residual stream: the same logits bit for bit
  EXPECT_EQ(logits(*md.layout, md.w.data()), logits(*comp.layout, comp.params.data()));
}

// targets: unstructured criteria prune only the matched tensors, structured ones only the
// layers they name; globs on unprunable tensors, on tensors without the criterion's
// structure, or matching nothing are refused naming prune.targets.
TEST(Targets, SelectTensorsAndLayersAndRefuseBadGlobs) {
  Model md;
  PruneTarget t = target(Criterion::magnitude_global, 0.5);
  t.targets = {"model.layers.0.mlp.*"};
  Mask m = kd::prune::prune(t, *md.layout, md.table, md.w.data(), Mask::dense(md.table.total()), "prune");
  for (const auto* ti : prunable(md.table)) {
    const bool hit = ti->name.rfind("model.layers.0.mlp.", 0) == 0;
    EXPECT_EQ(m.pruned(ti->offset, ti->offset + ti->numel) > 0, hit) << ti->name;
  }
  PruneTarget h = target(Criterion::heads, 0.5);
  h.targets = {"model.layers.1.self_attn.*"};
  m = kd::prune::prune(h, *md.layout, md.table, md.w.data(), Mask::dense(md.table.total()), "prune");
  for (const auto* ti : prunable(md.table)) {
    const bool hit = ti->name.rfind("model.layers.1.self_attn.", 0) == 0;
    EXPECT_EQ(m.pruned(ti->offset, ti->offset + ti->numel) > 0, hit) << ti->name;
  }
  auto refused = [&](Criterion c, std::string glob, const char* needle) {
    PruneTarget b = target(c, 0.5);
    b.targets = {std::move(glob)};
    try {
      kd::prune::check_target(b, md.spec, "prune");
      ADD_FAILURE() << needle;
    } catch (const kd::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused(Criterion::magnitude_global, "model.norm.weight", "prune.targets: 'model.norm.weight' matches model.norm.weight, which cannot be pruned");
  refused(Criterion::heads, "model.layers.0.mlp.*", "which the structured criterion heads cannot prune");
  refused(Criterion::neurons, "*.q_proj.weight", "which the structured criterion neurons cannot prune");
  refused(Criterion::layers, "model.layers.7.*", "matches no tensor");
}

// The configured order against the quantizers' start.
TEST(Config, PruneOrderAgainstFakeQuantStart) {
  const std::string q = "quant.weight=int8:channel";
  expect({q, "prune.at=10"}, "quant.fake_quant_start (0) is not after the last pruning step (10)");
  expect({q, "prune.at=10", "quant.fake_quant_start=11", "prune.order=prune_quantize_distill"},
         "quant.fake_quant_start (11) is not the last pruning step (10)");
  expect({q, "prune.schedule=imp", "prune.rounds=1", "prune.round_steps=100", "prune.rewind_step=0"},
         "prune.schedule: imp does not combine with a quant section");
  EXPECT_NO_THROW(kdtest::tiny_config({q, "prune.at=10", "quant.fake_quant_start=11"}));
  EXPECT_NO_THROW(kdtest::tiny_config({q, "prune.at=10", "quant.fake_quant_start=10", "prune.order=prune_quantize_distill"}));
  EXPECT_NO_THROW(kdtest::tiny_config({q, "prune.at=10", "prune.order=concurrent"}));
  expect({"prune.schedule=imp", "prune.rounds=2", "prune.round_steps=100", "prune.rewind_step=100"},
         "prune.rewind_step (100) is not inside the first round");
  expect({"prune.schedule=imp", "prune.rounds=1", "prune.round_steps=100", "prune.rewind=init", "prune.rewind_step=5"},
         "prune.rewind_step is 5 but prune.rewind is init");
}

}  // namespace
