// An activation arena: every buffer a step needs is carved out of one allocation made
// once per (batch, seq) shape. Layout code runs twice: first to measure, then to assign.
// Storage is where that allocation lives: host memory, or a device buffer (the CUDA
// backend's kern::cuda::DeviceBuffer) with the same resize/data/size.
#pragma once

#include <cstddef>

#include "trainer/util/aligned_buffer.h"

namespace kd {

template <class T, class Storage = AlignedBuffer<T>>
class Arena {
 public:
  // Layout: a callable taking an Arena& and calling take() for each buffer.
  template <class Layout>
  void build(Layout&& layout) {
    measuring_ = true;
    used_ = 0;
    layout(*this);
    if (measure_only_) {  // sizes only: every buffer stays null
      measured_ = used_;
      return;
    }
    buf_.resize(used_);
    measuring_ = false;
    used_ = 0;
    layout(*this);
  }
  // Hands out n elements, 64-byte aligned.
  T* take(std::size_t n) {
    constexpr std::size_t kAlign = 64 / sizeof(T);
    const std::size_t at = used_;
    used_ += ((n + kAlign - 1) / kAlign) * kAlign;
    return measuring_ ? nullptr : buf_.data() + at;
  }
  std::size_t bytes() const { return (measure_only_ ? measured_ : buf_.size()) * sizeof(T); }
  // The next build() only measures (memory estimates): nothing is allocated.
  void measure_only() { measure_only_ = true; }
  Storage& storage() { return buf_; }

 private:
  Storage buf_;
  std::size_t used_ = 0;
  bool measuring_ = false;
  bool measure_only_ = false;
  std::size_t measured_ = 0;
};

}  // namespace kd
