#include "trainer/checkpoint/layout.h"

#include "trainer/checkpoint/checkpoint.h"

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

std::vector<std::uint64_t> chunk_bounds(const std::vector<std::uint64_t>& dims) {
  std::uint64_t numel = 1;
  for (const std::uint64_t d : dims) numel *= d;
  std::vector<std::uint64_t> bounds{0};
  if (numel == 0) return bounds;
  const std::vector<std::uint64_t> chunk = chunk_dims(dims);
  // the last dimension whose chunk extent is below its size is the cut one (those before it are 1)
  std::size_t split = dims.size();
  for (std::size_t k = dims.size(); k-- > 0;) {
    if (chunk[k] < dims[k]) {
      split = k;
      break;
    }
  }
  if (split == dims.size()) return {0, numel};  // one chunk
  std::uint64_t inner = 1;  // elements per index of the cut dimension
  for (std::size_t j = split + 1; j < dims.size(); ++j) inner *= dims[j];
  const std::uint64_t rows = numel / (dims[split] * inner);  // the dimensions before the cut one
  for (std::uint64_t r = 0; r < rows; ++r) {
    const std::uint64_t base = r * dims[split] * inner;
    for (std::uint64_t i = chunk[split]; i < dims[split]; i += chunk[split]) bounds.push_back(base + i * inner);
    bounds.push_back(base + dims[split] * inner);
  }
  return bounds;
}

std::uint64_t chunk_count(const std::vector<std::uint64_t>& dims) {
  std::uint64_t numel = 1;
  for (const std::uint64_t d : dims) numel *= d;
  if (numel == 0) return 0;
  const std::vector<std::uint64_t> chunk = chunk_dims(dims);
  std::uint64_t count = 1;
  for (std::size_t k = 0; k < dims.size(); ++k) count *= (dims[k] + chunk[k] - 1) / chunk[k];
  return count;
}

namespace {

// Appends the boxes of [begin, end) within dimensions k.. of `dims`, the ones before k
// fixed at `prefix`.
void blocks_from(const std::vector<std::uint64_t>& dims, std::size_t k, std::vector<std::uint64_t>& prefix,
                 std::uint64_t begin, std::uint64_t end, std::vector<Block>& out) {
  if (begin >= end) return;
  std::uint64_t inner = 1;  // elements per index of dimension k
  for (std::size_t j = k + 1; j < dims.size(); ++j) inner *= dims[j];
  auto whole = [&](std::uint64_t first, std::uint64_t n) {  // indices [first, first + n) of dim k, all inner
    Block b;
    b.start = prefix;
    b.count.assign(prefix.size(), 1);
    b.start.push_back(first);
    b.count.push_back(n);
    for (std::size_t j = k + 1; j < dims.size(); ++j) {
      b.start.push_back(0);
      b.count.push_back(dims[j]);
    }
    out.push_back(std::move(b));
  };
  auto partial = [&](std::uint64_t index, std::uint64_t from, std::uint64_t to) {  // inside one index of dim k
    prefix.push_back(index);
    blocks_from(dims, k + 1, prefix, from, to, out);
    prefix.pop_back();
  };
  std::uint64_t first = begin / inner;
  const std::uint64_t last = end / inner;  // index holding `end` (exclusive side)
  if (begin % inner != 0) {
    const std::uint64_t row_end = std::min(end, (first + 1) * inner);
    partial(first, begin - first * inner, row_end - first * inner);
    ++first;
    if (row_end == end) return;
  }
  if (last > first) whole(first, last - first);
  if (end % inner != 0 && last >= first) partial(last, 0, end - last * inner);
}

}  // namespace

std::vector<Block> flat_range_blocks(const std::vector<std::uint64_t>& dims, std::uint64_t begin, std::uint64_t end) {
  std::vector<Block> out;
  if (begin >= end) return out;
  if (dims.empty()) return {Block{}};
  std::vector<std::uint64_t> prefix;
  blocks_from(dims, 0, prefix, begin, end, out);
  return out;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace kd::ckpt::layout

namespace kd::ckpt {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i8:
    case DType::u8: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 4;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i8: return "int8";
    case DType::u8: return "uint8";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
  }
  return "?";
}

}  // namespace kd::ckpt
