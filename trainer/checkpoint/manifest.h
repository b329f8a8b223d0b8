// The manifest a checkpoint ends with: every dataset's path, type, shape, size in bytes and
// CRC-32 (zlib's, of the little-endian bytes as stored; of the UTF-8 text for strings), and
// for a tensor of several HDF5 chunks one CRC-32 per chunk, so that a reader checks what it
// reads in the same pass (a ZeRO or tensor-parallel rank reads a part of a tensor) and never
// reads a file twice. A collective write checksums each rank's slice cut at the chunk
// bounds; the pieces are combined in file order.
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
  // Written: this rank's pieces, none crossing a block bound (cut_slices).
  std::vector<Slice> slices;
  // Read back: the blocks' byte bounds (0 = b_0 < ... < b_n = bytes) and each one's CRC-32.
  // A file written before chunk CRCs existed has one block, the whole dataset.
  std::vector<std::uint64_t> bounds;
  std::vector<std::uint32_t> block_crc32;
};

// The byte bounds of the blocks a dataset's CRCs cover: a tensor's HDF5 chunks
// (layout::chunk_bounds) times its element size; a text or a group's attributes is one
// block; {0} when it has no bytes. InputError when the type is not one kdtrain stores or
// the shape does not give `bytes`.
std::vector<std::uint64_t> block_bounds(const std::string& dtype, const std::vector<std::int64_t>& shape,
                                        std::uint64_t bytes);

// `bytes` of a dataset from byte `offset`, cut at `bounds` (a writer's share of a dataset),
// each piece with CRC-32 0: the writer fills them in as it writes the pieces.
std::vector<Slice> cut_slices(const std::vector<std::uint64_t>& bounds, std::uint64_t offset, std::uint64_t bytes);

// The JSON text stored as /manifest. Throws RuntimeFailure when the slices of an entry do
// not tile its bytes or cross a block bound (a writer bug, never a user's).
std::string to_json(const std::vector<Entry>& entries);
// Its inverse (bounds and block CRCs per entry); InputError naming `where` when the text
// is not a manifest or contradicts itself (sizes, counts, a whole CRC its blocks do not give).
std::vector<Entry> from_json(const std::string& text, const std::string& where);

// The CRC-32 of the entry's whole bytes (of no bytes for an empty dataset).
std::uint32_t whole_crc32(const Entry& e);


}  // namespace kd::ckpt::manifest
