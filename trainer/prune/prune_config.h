// The `prune` section of a config: which weights are pruned (criterion, sparsity) and
// when (one-shot at a step, or gradually after Zhu & Gupta). Pruning runs inside `train`
// and `distill`, with QAT when both sections are present (pruned weights quantize to an
// exact zero). Iterative magnitude pruning with rewinding is not built yet.
#pragma once

#include <cstdint>

#include "trainer/config/schema.h"
#include "trainer/prune/criteria.h"

namespace kd {

enum class PruneScheduleKind { oneshot, gradual };

struct PruneSection {
  prune::Criterion criterion = prune::Criterion::magnitude_global;
  double sparsity = 0.5;
  int n = 2, m = 4;
  PruneScheduleKind schedule = PruneScheduleKind::oneshot;
  std::int64_t at = 0;
  double initial = 0.0;
  std::int64_t start = 0, end = 1000, every = 100;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.choice("criterion", criterion,
             "magnitude_global (smallest |w| over all linear layers), magnitude_layer (per tensor), n_m (N:M "
             "along the input dimension), heads (whole KV groups, uniform per layer), neurons (FFN neurons)",
             Choices<prune::Criterion>{{"magnitude_global", prune::Criterion::magnitude_global},
                                       {"magnitude_layer", prune::Criterion::magnitude_layer},
                                       {"n_m", prune::Criterion::n_m},
                                       {"heads", prune::Criterion::heads},
                                       {"neurons", prune::Criterion::neurons}});
    v.field("sparsity", sparsity, "final pruned fraction of the criterion's units, in [0, 1) (n_m: fixed by n and m)");
    v.field("n", n, "n_m: weights kept in every group of m", between(1, 1024));
    v.field("m", m, "n_m: group size along the input dimension (must divide it)", between(2, 1024));
    v.choice("schedule", schedule, "oneshot: prune once at step `at`; gradual: cubic from `initial` at `start` to "
             "`sparsity` at `end`, every `every` steps (Zhu & Gupta 2017)",
             Choices<PruneScheduleKind>{{"oneshot", PruneScheduleKind::oneshot}, {"gradual", PruneScheduleKind::gradual}});
    v.field("at", at, "oneshot: the step (0 = before the first update) whose weights are pruned", at_least(0));
    v.field("initial", initial, "gradual: sparsity at `start`");
    v.field("start", start, "gradual: first pruning step", at_least(0));
    v.field("end", end, "gradual: step at which `sparsity` is reached", at_least(0));
    v.field("every", every, "gradual: steps between mask updates", at_least(1));
  }
};

}  // namespace kd
