// The manifest a checkpoint ends with: every dataset's path, type, shape, size in bytes and
// CRC-32 (zlib's, of the little-endian bytes as stored; of the UTF-8 text for strings). A
// collective write checksums each rank's slice; the slices are combined in file order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kd::ckpt::manifest {

// Entry dtypes besides the tensor types (dtype_name): a text dataset, and a group's
// attributes as "name=value\n" lines in name order (integers in decimal; "/" = the root's).
inline constexpr const char* kString = "string";
inline constexpr const char* kAttributes = "attributes";

struct Slice {
  std::uint64_t offset = 0, bytes = 0;  // within the dataset's bytes
  std::uint32_t crc32 = 0;
};

struct Entry {
  std::string path;   // e.g. "tensors/model/lm_head.weight", "config"
  std::string dtype;  // dtype_name(), kString or kAttributes
  std::vector<std::int64_t> shape;
  std::uint64_t bytes = 0;
  std::vector<Slice> slices;  // written; read back: one slice, the whole dataset
};

// The JSON text stored as /manifest. Throws RuntimeFailure when the slices of an entry do
// not tile its bytes (a writer bug, never a user's).
std::string to_json(const std::vector<Entry>& entries);
// Its inverse (one whole-dataset slice per entry); InputError naming `where` when the text
// is not a manifest.
std::vector<Entry> from_json(const std::string& text, const std::string& where);

std::uint32_t crc32_of(const void* data, std::uint64_t bytes);

}  // namespace kd::ckpt::manifest
