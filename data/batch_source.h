// Where training batches come from: (batch, seq) token ids and their labels
// (the next token; a negative label marks a position without a target).
#pragma once

#include <cstdint>

namespace kd::data {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual void next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) = 0;
};

}  // namespace kd::data
