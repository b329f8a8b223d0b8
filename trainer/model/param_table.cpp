#include "trainer/model/param_table.h"

#include <cstdint>
#include <string>

#include "base/checked_math.h"
#include "base/errors.h"

namespace kd {

std::size_t ParamTable::add(std::string name, std::vector<std::int64_t> shape,
                            std::uint32_t flags) {
  KD_ASSERT(!find(name), "tensor {} declared twice", name);
  std::size_t n = 1;
  for (auto d : shape) {
    KD_ASSERT(d > 0, "tensor {} has a non-positive dimension", name);
  }
  // Shapes come from configs and files (config.json): a size that wraps around 64 bits is bad
  // input, not an invariant. The float count must also leave room for its bytes.
  const auto count = checked_product<std::size_t, std::int64_t>(shape);
  const auto end = count ? checked_add(total_, *count) : std::nullopt;
  if (!end || *end > SIZE_MAX / 8) {
    std::string dims;  // (fmt::join of int64s trips GCC 12's -Wstringop-overflow inside fmt)
    for (const std::int64_t d : shape) {
      if (!dims.empty()) dims += ", ";
      dims += std::to_string(d);
    }
    throw InputError(fmt::format("tensor {}: shape [{}] makes the parameter count overflow 64 bits (the model's "
                                 "sizes are far too large)", name, dims));
  }
  n = *count;
  tensors_.push_back({std::move(name), std::move(shape), total_, n, flags});
  total_ = *end;
  return tensors_.size() - 1;
}

std::vector<std::string> ParamTable::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) out.push_back(t.name);
  return out;
}

std::optional<std::size_t> ParamTable::find(const std::string& name) const {
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].name == name) return i;
  }
  return std::nullopt;
}

const TensorInfo& ParamTable::at(const std::string& name) const {
  auto i = find(name);
  KD_CHECK_INPUT(i.has_value(), "no tensor named '{}' in the parameter table", name);
  return tensors_[*i];
}

std::size_t ParamTable::count(std::uint32_t all_of, std::uint32_t none_of) const {
  std::size_t n = 0;
  for (const auto& t : tensors_) {
    if ((t.flags & all_of) == all_of && (t.flags & none_of) == 0) n += t.numel;
  }
  return n;
}

}  // namespace kd
