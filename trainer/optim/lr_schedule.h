// Learning rate at an optimizer step: linear warmup, then constant, cosine or linear
// decay to min_lr_ratio · lr at the last step.
#pragma once

#include <cstdint>

#include "trainer/optim/optim_section.h"

namespace kd {

// step is 0-based; total is train.steps.
double lr_at(const OptimSection& o, std::int64_t total, std::int64_t step);

}  // namespace kd
