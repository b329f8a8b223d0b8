// A pruning mask over the flat parameter buffer: one byte per parameter, 1 = kept,
// 0 = pruned, at the same offsets as the tensor table (so applying it to the weights,
// the gradients or the Adam moments is one pass over a [begin, end) range).
// A Mask checks itself: values other than 0/1 and size mismatches are refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/model/param_table.h"

namespace kd::prune {

class Mask {
 public:
  Mask() = default;
  static Mask dense(std::size_t n);  // all kept
  // Throws InputError naming `where` when a value is not 0 or 1.
  static Mask from_bytes(std::vector<std::uint8_t> bytes, const std::string& where);

  std::size_t size() const { return keep_.size(); }
  bool kept(std::size_t i) const { return keep_[i] != 0; }
  void prune(std::size_t i) { keep_[i] = 0; }
  const std::uint8_t* data() const { return keep_.data(); }

  // x[i] = 0 wherever pruned (weights after a step, gradients, optimizer moments).
  // Throws (KD_ASSERT) when n differs from the mask's size.
  void apply(float* x, std::size_t n) const;
  // The same on the elements [begin, end) only; x points at element begin (a ZeRO shard).
  void apply(float* x, std::size_t begin, std::size_t end) const;
  // Pruned elements in [begin, end).
  std::size_t pruned(std::size_t begin, std::size_t end) const;
  // Pruned fraction of one tensor, and of every tensor with all of `flags`.
  double sparsity(const TensorInfo& t) const;
  double sparsity(const ParamTable& table, std::uint32_t flags) const;
  bool operator==(const Mask& o) const { return keep_ == o.keep_; }

 private:
  std::vector<std::uint8_t> keep_;
};

}  // namespace kd::prune
