// Sizes computed from numbers a file gives (tensor shapes, offsets, counts) must not wrap
// around: a shape of 2^32 x 2^32 elements would otherwise read as 0 bytes. These return
// nullopt on overflow; the caller refuses the file by name.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace kd {

template <class T>
std::optional<T> checked_mul(T a, T b) {
  T r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

template <class T>
std::optional<T> checked_add(T a, T b) {
  T r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The product of `dims` (1 for none), or nullopt when a dimension is negative or the product
// does not fit T.
template <class T, class D>
std::optional<T> checked_product(std::span<const D> dims) {
  T n = 1;
  for (const D d : dims) {
    if (d < 0) return std::nullopt;
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  }
  return n;
}

}  // namespace kd
