#include "trainer/interop/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/common/bf16.h"
#include "base/checked_math.h"
#include "base/errors.h"
#include "base/files.h"

namespace kd::interop {

namespace {

using json = nlohmann::json;

// Bytes per element of the dtypes safetensors defines (0: unknown).
std::uint64_t dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

constexpr std::uint64_t kMaxHeader = 100u << 20;  // as the reference implementation

}  // namespace

std::int64_t SafeTensor::numel() const {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: man · 2^-24, exact in float
    const float v = std::ldexp(float(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (man << 13));  // Inf, NaN
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

std::uint16_t float_to_half(float x) { return std::bit_cast<std::uint16_t>(static_cast<_Float16>(x)); }

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  require_regular_file(path, "the safetensors file");  // a FIFO would block the read
  std::ifstream f(path, std::ios::binary);
  KD_CHECK_INPUT(f.good(), "{}: cannot open the safetensors file", path);
  const std::uint64_t size = std::filesystem::file_size(path);
  KD_CHECK_INPUT(size >= 8, "{}: {} bytes: too short for a safetensors file (8-byte header length first)", path, size);
  unsigned char len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  KD_CHECK_INPUT(n <= kMaxHeader && n <= size - 8,
                 "{}: the header claims {} bytes but the file holds {} after the length (truncated, or not a "
                 "safetensors file)", path, n, size - 8);
  std::string text(n, '\0');
  f.read(text.data(), std::streamsize(n));
  KD_CHECK_INPUT(f.good(), "{}: cannot read the header", path);
  json h;
  try {
    h = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: the header is not JSON ({}): not a safetensors file?", path, e.what()));
  }
  KD_CHECK_INPUT(h.is_object(), "{}: the header is not a JSON object", path);
  data_start_ = 8 + n;
  const std::uint64_t data_size = size - data_start_;
  for (const auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      KD_CHECK_INPUT(v.is_object(), "{}: __metadata__ is not an object", path);
      for (const auto& [k, m] : v.items()) {
        KD_CHECK_INPUT(m.is_string(), "{}: __metadata__.{} is not a string", path, k);
        metadata_[k] = m.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { return InputError(fmt::format("{}: tensor '{}': {}", path, name, why)); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets")) {
      throw bad("needs dtype, shape and data_offsets");
    }
    SafeTensor t;
    t.name = name;
    if (!v["dtype"].is_string()) throw bad("dtype is not a string");
    t.dtype = v["dtype"].get<std::string>();
    const std::uint64_t eb = dtype_bytes(t.dtype);
    if (eb == 0) throw bad(fmt::format("unknown dtype '{}'", t.dtype));
    if (!v["shape"].is_array()) throw bad("shape is not an array");
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0) throw bad("shape holds a negative or non-integer size");
      t.shape.push_back(d.get<std::int64_t>());
    }
    // checked: [2^32, 2^32] would wrap to 0 elements (and 0 bytes) in 64 bits
    const auto elements = checked_product<std::int64_t, std::int64_t>(t.shape);
    const auto bytes = elements ? checked_mul(std::uint64_t(*elements), eb) : std::nullopt;
    if (!bytes) {
      throw bad(fmt::format("shape {} of {} overflows 64 bits (a header that lies)", v["shape"].dump(), t.dtype));
    }
    const auto& o = v["data_offsets"];
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned()) {
      throw bad("data_offsets is not [begin, end]");
    }
    t.begin = o[0].get<std::uint64_t>();
    t.end = o[1].get<std::uint64_t>();
    if (t.begin > t.end || t.end > data_size) {
      throw bad(fmt::format("data_offsets [{}, {}] lie outside the {} data bytes (truncated file, or a header "
                            "that lies)", t.begin, t.end, data_size));
    }
    const std::uint64_t want = *bytes;
    if (t.end - t.begin != want) {
      throw bad(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", t.begin, t.end,
                            t.end - t.begin, v["shape"].dump(), t.dtype, want));
    }
    tensors_.push_back(std::move(t));
  }
  std::vector<const SafeTensor*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    KD_CHECK_INPUT(by_offset[i]->begin >= by_offset[i - 1]->end, "{}: tensors '{}' and '{}' overlap in the data",
                   path, by_offset[i - 1]->name, by_offset[i]->name);
  }
}

const SafeTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

void SafetensorsFile::read_float(const SafeTensor& t, float* out) const {
  KD_CHECK_INPUT(t.dtype == "F32" || t.dtype == "F16" || t.dtype == "BF16",
                 "{}: tensor '{}' has dtype {}; kdtrain reads F32, F16 and BF16", path_, t.name, t.dtype);
  std::ifstream f(path_, std::ios::binary);
  f.seekg(std::streamoff(data_start_ + t.begin));
  const std::size_t n = std::size_t(t.numel());
  if (t.dtype == "F32") {
    f.read(reinterpret_cast<char*>(out), std::streamsize(n * 4));
  } else {
    std::vector<std::uint16_t> raw(n);
    f.read(reinterpret_cast<char*>(raw.data()), std::streamsize(n * 2));
    for (std::size_t i = 0; i < n; ++i) out[i] = t.dtype == "F16" ? half_to_float(raw[i]) : common::from_bf16(raw[i]);
  }
  KD_CHECK_INPUT(f.good(), "{}: tensor '{}': the file ended before its data (truncated?)", path_, t.name);
}

void write_safetensors(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::uint64_t at = 0;
  for (const auto& t : tensors) {
    std::uint64_t n = 1;
    for (const auto d : t.shape) n *= std::uint64_t(d);
    if (t.dtype != "F32" && t.dtype != "I32")
      throw RuntimeFailure(fmt::format("{}: tensor '{}': the writer takes F32 and I32, not {}", path, t.name, t.dtype));
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {at, at + 4 * n}}};
    at += 4 * n;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    const std::uint64_t n = text.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    f.write(reinterpret_cast<const char*>(len), 8);
    f.write(text.data(), std::streamsize(text.size()));
    for (const auto& t : tensors) {
      std::uint64_t k = 1;
      for (const auto d : t.shape) k *= std::uint64_t(d);
      f.write(static_cast<const char*>(t.data), std::streamsize(4 * k));
    }
    f.flush();
    if (!f.good()) {
      std::remove(tmp.c_str());
      throw RuntimeFailure(fmt::format("{}: cannot write the safetensors file", path));
    }
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace kd::interop
