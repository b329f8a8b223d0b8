// The `prune` section of a config: which weights are pruned (criterion, targets, sparsity)
// and when (one-shot at a step, gradually after Zhu & Gupta, or iterative magnitude
// pruning with rewinding). Pruning runs inside `train` and `distill`, with QAT when both
// sections are present (pruned weights quantize to an exact zero), in the configured order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/schema.h"
#include "trainer/prune/criteria.h"

namespace kd {

enum class PruneScheduleKind { oneshot, gradual, imp };
// IMP: where the surviving weights go after each round's pruning.
enum class RewindKind { init, step, lr };
// IMP controls for the lottery-ticket effect: the ticket's mask with a fresh random init,
// or a random mask with the ticket's per-tensor sparsity.
enum class ImpControl { none, random_reinit, random_mask };
// Pipeline order with a quant section (Minitron / ModelOpt: prune, distill, quantize).
enum class PruneOrder { prune_distill_quantize, prune_quantize_distill, concurrent };

struct PruneSection {
  prune::Criterion criterion = prune::Criterion::magnitude_global;
  std::vector<std::string> targets;  // tensor-name globs; empty = every prunable tensor
  double sparsity = 0.5;
  int n = 2, m = 4;
  prune::DepthScore depth_score = prune::DepthScore::cosine;
  int calibration_batches = 4;
  PruneScheduleKind schedule = PruneScheduleKind::oneshot;
  std::int64_t at = 0;
  double initial = 0.0;
  std::int64_t start = 0, end = 1000, every = 100;
  int rounds = 3;
  std::int64_t round_steps = 100;
  double rate = 0.2;
  RewindKind rewind = RewindKind::step;
  std::int64_t rewind_step = 0;
  ImpControl control = ImpControl::none;
  PruneOrder order = PruneOrder::prune_distill_quantize;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.choice("criterion", criterion,
             "magnitude_global (smallest |w| over all targets), magnitude_layer (per tensor), n_m (N:M along the "
             "input dimension), heads (whole KV groups, uniform per layer), neurons (FFN neurons), layers (whole "
             "transformer blocks, ranked by depth_score), hold (the starting weights' zeros, e.g. a `kdtrain prune` "
             "result given as train.init_from, kept zero through training)",
             Choices<prune::Criterion>{{"magnitude_global", prune::Criterion::magnitude_global},
                                       {"magnitude_layer", prune::Criterion::magnitude_layer},
                                       {"n_m", prune::Criterion::n_m},
                                       {"heads", prune::Criterion::heads},
                                       {"neurons", prune::Criterion::neurons},
                                       {"layers", prune::Criterion::layers},
                                       {"hold", prune::Criterion::hold}});
    v.field("targets", targets, "tensor-name globs (e.g. model.layers.*.mlp.*) the criterion acts on; structured "
            "criteria prune the layers they name; empty: every linear layer of the blocks");
    v.field("sparsity", sparsity, "final pruned fraction of the criterion's units, in [0, 1) (n_m: fixed by n and m)");
    v.field("n", n, "n_m: weights kept in every group of m", between(1, 1024));
    v.field("m", m, "n_m: group size along the input dimension (must divide it)", between(2, 1024));
    v.choice("depth_score", depth_score, "layers: block importance, cosine (1 - cos(block input, output), as "
             "ShortGPT / Minitron) or skip_loss (loss increase when the block is skipped)",
             Choices<prune::DepthScore>{{"cosine", prune::DepthScore::cosine},
                                        {"skip_loss", prune::DepthScore::skip_loss}});
    v.field("calibration_batches", calibration_batches, "layers: batches the block importance is measured on",
            between(1, 1000));
    v.choice("schedule", schedule, "oneshot: prune once at step `at`; gradual: cubic from `initial` at `start` to "
             "`sparsity` at `end`, every `every` steps (Zhu & Gupta 2017); imp: iterative magnitude pruning with "
             "rewinding (rounds, round_steps, rate, rewind, rewind_step, control)",
             Choices<PruneScheduleKind>{{"oneshot", PruneScheduleKind::oneshot},
                                        {"gradual", PruneScheduleKind::gradual},
                                        {"imp", PruneScheduleKind::imp}});
    v.field("at", at, "oneshot: the step (0 = before the first update) whose weights are pruned", at_least(0));
    v.field("initial", initial, "gradual: sparsity at `start`");
    v.field("start", start, "gradual: first pruning step", at_least(0));
    v.field("end", end, "gradual: step at which `sparsity` is reached", at_least(0));
    v.field("every", every, "gradual: steps between mask updates", at_least(1));
    v.field("rounds", rounds, "imp: pruning rounds R (final sparsity 1 - (1 - rate)^R)", between(1, 100));
    v.field("round_steps", round_steps, "imp: training steps E of the first round; later rounds train E - k "
            "(k = the rewind step), so train.steps = E + R (E - k)", at_least(1));
    v.field("rate", rate, "imp: fraction of the remaining weights pruned after each round, in (0, 1)");
    v.choice("rewind", rewind, "imp: init (weights back to initialization, Frankle & Carbin 2019), step (to step "
             "rewind_step of the first round, Frankle et al. 2020), lr (weights kept, learning-rate schedule back "
             "to rewind_step, Renda et al. 2020)",
             Choices<RewindKind>{{"init", RewindKind::init}, {"step", RewindKind::step}, {"lr", RewindKind::lr}});
    v.field("rewind_step", rewind_step, "imp: the step k of the first round rewound to (step and lr rewinding)",
            at_least(0));
    v.choice("control", control, "imp: none, random_reinit (the ticket's mask, a fresh random init), random_mask "
             "(a random mask with the ticket's per-tensor sparsity, rewound as configured)",
             Choices<ImpControl>{{"none", ImpControl::none}, {"random_reinit", ImpControl::random_reinit},
                                 {"random_mask", ImpControl::random_mask}});
    v.choice("order", order, "with a quant section: prune_distill_quantize (quantizers start after the last pruning "
             "step, quant.fake_quant_start > it), prune_quantize_distill (they start at the last pruning step), "
             "concurrent (no constraint)",
             Choices<PruneOrder>{{"prune_distill_quantize", PruneOrder::prune_distill_quantize},
                                 {"prune_quantize_distill", PruneOrder::prune_quantize_distill},
                                 {"concurrent", PruneOrder::concurrent}});
  }
};

}  // namespace kd
