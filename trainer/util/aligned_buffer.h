// A fixed-size, 64-byte aligned, zero-initialised array: parameters, gradients,
// optimizer state and activation arenas. Allocated once, never resized in a step.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

#include "base/errors.h"

namespace kd {

template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t n, std::string_view what = "a buffer") { resize(n, what); }
  // moving leaves the source empty (size 0), not a stale size over a null pointer
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::move(o.data_)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    data_ = std::move(o.data_);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }

  // `what` names the buffer when memory runs out: a plain std::bad_alloc says neither what
  // nor how big (a RuntimeFailure, exit 3, with both instead).
  void resize(std::size_t n, std::string_view what = "a buffer") {
    const bool fits = n <= (SIZE_MAX - 63) / sizeof(T);
    const std::size_t bytes = fits ? ((n * sizeof(T) + 63) / 64) * 64 : 0;
    T* p = n && fits ? static_cast<T*>(std::aligned_alloc(64, bytes)) : nullptr;
    if (n && p == nullptr) {
      throw RuntimeFailure(fmt::format("out of memory: cannot allocate {} ({} elements of {} bytes, {:.2f} GiB)",
                                       what, n, sizeof(T), double(n) * double(sizeof(T)) / double(1ull << 30)));
    }
    if (n) std::memset(p, 0, bytes);
    data_.reset(p);
    size_ = n;
  }
  void zero() {
    if (size_) std::memset(data_.get(), 0, size_ * sizeof(T));
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return data_.get()[i]; }
  const T& operator[](std::size_t i) const { return data_.get()[i]; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  std::size_t size_ = 0;
};

}  // namespace kd
