// The tensor table over ONE flat buffer: each named tensor is a (shape, offset, flags)
// range. Parameters, gradients, Adam moments (and later masks, rewind snapshots and
// ZeRO shards) all use the same offsets, so they are plain [begin, end) slices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kd {

enum TensorFlag : std::uint32_t {
  kPrunable = 1u << 0,
  kQuantizable = 1u << 1,
  kDecayed = 1u << 2,   // AdamW applies weight decay
  kAuxiliary = 1u << 3, // trained and checkpointed; never exported, pruned, quantized, decayed
  kQuantScale = 1u << 4, // a learned quantizer scale (LSQ): its own learning-rate ratio
};

struct TensorInfo {
  std::string name;
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;
  std::size_t numel = 0;
  std::uint32_t flags = 0;
  bool has(TensorFlag f) const { return (flags & f) != 0; }
};

class ParamTable {
 public:
  // Appends a tensor right after the previous one (no padding: tensors added in a row
  // form one matrix, which the model uses to fuse q/k/v and gate/up GEMMs).
  std::size_t add(std::string name, std::vector<std::int64_t> shape, std::uint32_t flags);
  const TensorInfo& operator[](std::size_t i) const { return tensors_[i]; }
  std::optional<std::size_t> find(const std::string& name) const;
  const TensorInfo& at(const std::string& name) const;  // throws InputError naming it
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::vector<std::string> names() const;  // in table order
  std::size_t size() const { return tensors_.size(); }
  std::size_t total() const { return total_; }  // elements in the flat buffer
  std::size_t count(std::uint32_t all_of_flags, std::uint32_t none_of_flags = 0) const;

 private:
  std::vector<TensorInfo> tensors_;
  std::size_t total_ = 0;
};

}  // namespace kd
