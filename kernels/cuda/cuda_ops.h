// The CUDA backend: the entry points of kernels/kernels.h on device pointers (float32, the
// production type), with the element math of kernels/common. Every op runs on the current
// device's default stream and is deterministic for a given shape (fixed reduction orders,
// no atomics). Errors (a CUDA or cuBLAS failure) throw RuntimeFailure naming the call.
// No CUDA types here: callers compile as plain C++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/kernels.h"

namespace kd::kern::cuda {

// "" when a CUDA device can be used, else why not (no driver, no device, ...).
std::string unavailable_reason();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 80 GiB)"
std::string device_description();
// Makes GPU `index` mod the visible count current for this process; its description.
std::string select_device(int index);

// Device memory of n elements of T; moves only.
class DeviceBytes {
 public:
  DeviceBytes() = default;
  explicit DeviceBytes(std::size_t bytes);
  ~DeviceBytes();
  DeviceBytes(DeviceBytes&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBytes& operator=(DeviceBytes&& o) noexcept;
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  void upload(const void* host, std::size_t bytes, std::size_t offset = 0);
  void download(void* host, std::size_t bytes, std::size_t offset = 0) const;

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : mem_(n * sizeof(T)), n_(n) {}
  T* data() const { return static_cast<T*>(mem_.get()); }
  std::size_t size() const { return n_; }
  // a fresh allocation of n elements (the old contents are gone)
  void resize(std::size_t n) {
    mem_ = DeviceBytes();
    mem_ = DeviceBytes(n * sizeof(T));
    n_ = n;
  }
  void upload(const T* host) { mem_.upload(host, n_ * sizeof(T)); }
  // n elements at element offset `at`
  void upload_range(const T* host, std::size_t at, std::size_t n) { mem_.upload(host, n * sizeof(T), at * sizeof(T)); }
  void download(T* host) const { mem_.download(host, n_ * sizeof(T)); }

 private:
  DeviceBytes mem_;
  std::size_t n_ = 0;
};

void synchronize();

// Host memory page-locked while this lives (cudaHostRegister), so copies to and from it run
// at the link's speed; where the driver refuses (a limit on locked memory), it stays pageable
// and pinned() says so.
class PinnedHost {
 public:
  PinnedHost() = default;
  PinnedHost(void* host, std::size_t bytes);
  ~PinnedHost();
  PinnedHost(const PinnedHost&) = delete;
  PinnedHost& operator=(const PinnedHost&) = delete;
  bool pinned() const { return ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
};
// Raw copies and fills on device pointers (bytes), ordered with the kernels.
void copy_device(void* dst, const void* src, std::size_t bytes);
void copy_to_host(void* host, const void* device, std::size_t bytes);
void copy_to_device(void* device, const void* host, std::size_t bytes);
void fill_zero(void* device, std::size_t bytes);

// ---------------------------------------------------------------- GEMM (cuBLAS)
// fp32: IEEE float products and sums; tf32: tensor cores on 10-bit-mantissa inputs, float
// sums; bf16: inputs rounded to bfloat16 on tensor cores, float sums (master weights and
// outputs stay float32).
enum class MathMode { fp32, tf32, bf16 };
const char* math_mode_name(MathMode m);
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc, MathMode mode);
void linear_forward(float* y, const float* x, const float* w, int m, int n, int k, bool accumulate, MathMode mode);
void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, int m, int n, int k,
                     bool accumulate_dx, MathMode mode);

// ---------------------------------------------------------------- element ops
void embedding_forward(float* x, const float* emb, const std::int32_t* tokens, int m, int d);
void embedding_backward(float* demb, const float* dx, const std::int32_t* tokens, int m, int d);
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int m, int d, float eps);
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* dresid, const float* x, const float* rstd,
                      const float* w, int m, int d);
void swiglu_forward(float* act, const float* gu, int m, int f);
void swiglu_backward(float* dgu, const float* dact, const float* gu, int m, int f);
void adamw_update(float* param, const float* grad, float* m, float* v, std::size_t n, const AdamWStep& s);
void fake_quant_forward(float* y, const float* x, const float* scale, const std::int32_t* zero, const QuantFormat& f,
                        int rows, int cols);
void fake_quant_backward_ste(float* dx, const float* dy, const float* x, const float* scale, const std::int32_t* zero,
                             const QuantFormat& f, int rows, int cols);
// LSQ's backward (integer formats): dx as the STE, dscale[j] += grad_factor · Σ dy · ∂fq/∂s over
// the elements scale j covers, in element order in double (bit for bit the CPU's sums).
void fake_quant_backward_lsq(float* dx, float* dscale, const float* dy, const float* x, const float* scale,
                             const std::int32_t* zero, const QuantFormat& f, int rows, int cols, float grad_factor);
// RoPE in place (kernels.h's rope_forward/backward); cos/sin tables (seq, hd/2) on the device.
void rope_forward(float* x, const float* cos, const float* sin, int rows, int seq, int heads, int hd, int ld, int col0);
void rope_backward(float* dx, const float* cos, const float* sin, int rows, int seq, int heads, int hd, int ld,
                   int col0);

// Observer scales from the tensor itself (kernels.h's quant_dynamic_scales), bit for bit.
void quant_dynamic_scales(float* scale, std::int32_t* zero, const float* x, const QuantFormat& f, int rows, int cols);
// Hidden-state loss (kernels.h's feature_loss): dhs +=, dtarget =; returns the loss.
double feature_loss(float* dhs, float* dtarget, const float* hs, const float* target, int m, int d, FeatureLoss kind,
                    double scale);
// Pruning: x = 0 where mask is 0; an N:M mask from magnitudes (n kept of every m in a row of
// memory; ties keep the later element, as trainer/prune does).
void apply_mask(float* x, const std::uint8_t* mask, std::size_t n);
void nm_mask(std::uint8_t* mask, const float* w, std::size_t numel, int n, int m);
void scale_inplace(float* x, std::size_t n, float s);
void add_inplace(float* y, const float* x, std::size_t n);
std::ptrdiff_t first_non_finite(const float* x, std::size_t n);  // -1 when all are finite

// Causal GQA attention (kernels.h's attention_forward/backward; no scratch: flash-style).
// head_dim 16, 32, 64 or 128. The backward overwrites dqkv's q, k and v columns.
void attention_forward(float* out, float* lse, const float* qkv, const AttnShape& s);
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const AttnShape& s);

// CE + divergence of a chunk of logit rows (kernels.h's distill_loss_rows): student, teacher,
// labels and dlogits on the device (dlogits may alias student), rows on the host.
void distill_loss_rows(float* dlogits, LossRow* rows, const float* student, const float* teacher,
                       const std::int32_t* labels, int r, int v, const DistillLossParams& p);

// Σ x² in double, blocks summed in a fixed order.
double sum_squares(const float* x, std::size_t n);

}  // namespace kd::kern::cuda
