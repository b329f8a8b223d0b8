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
  }
  return "?";
}

}  // namespace kd::ckpt
