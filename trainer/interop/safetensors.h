// safetensors files (Hugging Face's weight format): an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}, then
// the data. Reading checks the header against the file before any tensor is read: offsets
// inside the data, each tensor's bytes = its shape × its dtype's size, no two tensors
// overlapping. Every error is an InputError naming the file and, where one is at fault, the
// tensor (exit 2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kd::interop {

struct SafeTensor {
  std::string name;
  std::string dtype;                // as stored: "F32", "F16", "BF16", ...
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range within the data section
  std::int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  const std::vector<SafeTensor>& tensors() const { return tensors_; }
  const SafeTensor* find(const std::string& name) const;  // null when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor as float32 (F32 as is; F16 and BF16 widened exactly). Other dtypes are an
  // InputError naming the tensor and its dtype.
  void read_float(const SafeTensor& t, float* out) const;

 private:
  std::string path_;
  std::uint64_t data_start_ = 0;
  std::vector<SafeTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One float32 tensor to write.
struct SafeTensorOut {
  std::string name;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
  std::string dtype = "F32";  // "F32" or "I32" (4-byte elements)
};
// Writes F32 tensors, in the given order, atomically (a temporary file renamed into place).
// RuntimeFailure (exit 3) when the disk refuses.
void write_safetensors(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata);

// IEEE binary16 to float (exact).
float half_to_float(std::uint16_t h);
// IEEE binary16 of x, rounded to nearest even (overflow to infinity).
std::uint16_t float_to_half(float x);

}  // namespace kd::interop
