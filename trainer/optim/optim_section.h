// The `optim` section of a config: AdamW's hyper-parameters, gradient clipping and the
// learning-rate schedule (lr_schedule.h).
#pragma once

#include <cstdint>

#include "base/schema.h"

namespace kd {

enum class Schedule { constant, cosine, linear };

struct OptimSection {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  std::int64_t warmup_steps = 0;
  Schedule schedule = Schedule::cosine;
  double min_lr_ratio = 0.1;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("lr", lr, "peak learning rate", open_between(0, 10));
    v.field("beta1", beta1, "AdamW first-moment decay", between(0, 0.999999));
    v.field("beta2", beta2, "AdamW second-moment decay", between(0, 0.999999999));
    v.field("eps", eps, "AdamW epsilon", above(0));
    v.field("weight_decay", weight_decay, "decoupled weight decay on tensors flagged decayed", at_least(0));
    v.field("grad_clip", grad_clip, "global gradient-norm clip (0 = off)", at_least(0));
    v.field("warmup_steps", warmup_steps, "linear warmup steps", at_least(0));
    v.choice("schedule", schedule, "decay after warmup, to min_lr_ratio * lr at train.steps",
             Choices<Schedule>{{"constant", Schedule::constant}, {"cosine", Schedule::cosine}, {"linear", Schedule::linear}});
    v.field("min_lr_ratio", min_lr_ratio, "floor of the decay as a fraction of lr", between(0, 1));
  }
};

}  // namespace kd
