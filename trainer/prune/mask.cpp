#include "trainer/prune/mask.h"

#include "base/errors.h"

namespace kd::prune {

Mask Mask::dense(std::size_t n) {
  Mask m;
  m.keep_.assign(n, 1);
  return m;
}

Mask Mask::from_bytes(std::vector<std::uint8_t> bytes, const std::string& where) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    KD_CHECK_INPUT(bytes[i] <= 1, "{}: mask element {} is {}, not 0 or 1", where, i, int(bytes[i]));
  }
  Mask m;
  m.keep_ = std::move(bytes);
  return m;
}

void Mask::apply(float* x, std::size_t n) const {
  KD_ASSERT(n == keep_.size(), "mask of {} elements applied to {}", keep_.size(), n);
  apply(x, 0, n);
}

void Mask::apply(float* x, std::size_t begin, std::size_t end) const {
  KD_ASSERT(begin <= end && end <= keep_.size(), "mask of {} elements applied to [{}, {})", keep_.size(), begin, end);
  const std::uint8_t* keep = keep_.data() + begin;
  const std::size_t n = end - begin;
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < n; ++i) x[i] = keep[i] ? x[i] : 0.0f;
}

std::size_t Mask::pruned(std::size_t begin, std::size_t end) const {
  std::size_t z = 0;
  for (std::size_t i = begin; i < end; ++i) z += keep_[i] == 0;
  return z;
}

double Mask::sparsity(const TensorInfo& t) const {
  return t.numel ? double(pruned(t.offset, t.offset + t.numel)) / double(t.numel) : 0.0;
}

double Mask::sparsity(const ParamTable& table, std::uint32_t flags) const {
  std::size_t z = 0, n = 0;
  for (const auto& t : table.tensors()) {
    if ((t.flags & flags) != flags) continue;
    z += pruned(t.offset, t.offset + t.numel);
    n += t.numel;
  }
  return n ? double(z) / double(n) : 0.0;
}

}  // namespace kd::prune
