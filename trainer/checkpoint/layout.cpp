#include "trainer/checkpoint/layout.h"

#include <algorithm>

namespace kd::ckpt::layout {

std::vector<std::uint64_t> chunk_dims(const std::vector<std::uint64_t>& dims) {
  std::vector<std::uint64_t> chunk(dims.size(), 1);
  std::uint64_t inner = 1;  // elements of one chunk over the dimensions after i
  for (std::size_t k = dims.size(); k-- > 0;) {
    const std::uint64_t fit = std::max<std::uint64_t>(1, kChunkElements / inner);
    chunk[k] = std::min(dims[k], fit);
    if (chunk[k] < dims[k]) break;  // split here; the leading dimensions stay 1
    inner *= dims[k];
  }
  return chunk;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace kd::ckpt::layout
