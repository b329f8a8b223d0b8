// Device discovery, memory and the cuBLAS handle of the CUDA backend.
#include <fmt/format.h>

#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "base/errors.h"

namespace kd::kern::cuda {

void throw_cuda(const char* what, cudaError_t e) {
  throw RuntimeFailure(fmt::format("CUDA: {}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e)));
}
void throw_cublas(const char* what, cublasStatus_t s) {
  throw RuntimeFailure(fmt::format("cuBLAS: {}: {} ({})", what, cublasGetStatusString(s), cublasGetStatusName(s)));
}

void throw_invalid(const char* what) { throw RuntimeFailure(fmt::format("CUDA backend: {}", what)); }

std::string unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it
    return fmt::format("no usable CUDA driver or device ({}: {})", cudaGetErrorName(e), cudaGetErrorString(e));
  }
  if (n == 0) return "no CUDA device visible";
  return {};
}

std::string device_description() {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  return fmt::format("{} (sm_{}{}, {} SMs, {:.0f} GiB)", p.name, p.major, p.minor, p.multiProcessorCount,
                     double(p.totalGlobalMem) / (1u << 30));
}

std::string select_device(int index) {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (count <= 0) throw_invalid("no CUDA device to select");
  const int dev = (index % count + count) % count;
  check(cudaSetDevice(dev), "cudaSetDevice");
  return fmt::format("GPU {} of {}: {}", dev, count, device_description());
}

DeviceBytes::DeviceBytes(std::size_t bytes) : bytes_(bytes) {
  if (bytes > 0) check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
}
DeviceBytes::~DeviceBytes() {
  if (ptr_) cudaFree(ptr_);
}
DeviceBytes& DeviceBytes::operator=(DeviceBytes&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
void DeviceBytes::upload(const void* host, std::size_t bytes, std::size_t offset) {
  KD_ASSERT(offset + bytes <= bytes_, "upload of {} bytes at {} into {}", bytes, offset, bytes_);
  if (bytes) check(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice), "upload");
}
void DeviceBytes::download(void* host, std::size_t bytes, std::size_t offset) const {
  KD_ASSERT(offset + bytes <= bytes_, "download of {} bytes at {} from {}", bytes, offset, bytes_);
  if (bytes) check(cudaMemcpy(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost), "download");
}

void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

PinnedHost::PinnedHost(void* host, std::size_t bytes) {
  if (host != nullptr && bytes > 0 && cudaHostRegister(host, bytes, cudaHostRegisterDefault) == cudaSuccess) {
    ptr_ = host;
  } else {
    (void)cudaGetLastError();  // not pinned: copies stay pageable
  }
}
PinnedHost::~PinnedHost() {
  if (ptr_) cudaHostUnregister(ptr_);
}

void copy_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "copy on the device");
}
void copy_to_host(void* host, const void* device, std::size_t bytes) {
  if (bytes) check(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), "copy to the host");
}
void copy_to_device(void* device, const void* host, std::size_t bytes) {
  if (bytes) check(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), "copy to the device");
}
void fill_zero(void* device, std::size_t bytes) {
  if (bytes) check(cudaMemset(device, 0, bytes), "cudaMemset");
}

void* scratch(Scratch use, std::size_t bytes) {
  static DeviceBytes buffers[std::size_t(Scratch::count)];
  DeviceBytes& b = buffers[std::size_t(use)];
  if (b.bytes() < bytes) b = DeviceBytes(bytes);  // cudaFree waits for the kernels still using it
  return b.get();
}

double sum_in_order(const double* device, std::size_t n) {
  std::vector<double> host(n);
  if (n) check(cudaMemcpy(host.data(), device, n * sizeof(double), cudaMemcpyDeviceToHost), "download partial sums");
  double total = 0;
  for (const double v : host) total += v;
  return total;
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t c = nullptr;
    check(cublasCreate(&c), "cublasCreate");
    return c;
  }();
  return h;
}

}  // namespace kd::kern::cuda
