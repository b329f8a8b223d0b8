// The checkpoint file's names and constants, and the chunking rule (pure, so it is unit
// tested). docs/checkpoint-format.md is the user-facing description of the same layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kd::ckpt::layout {

inline constexpr const char* kFormat = "kdtrain-checkpoint";  // root attribute `format`
inline constexpr std::int64_t kFormatVersion = 1;             // root attribute `format_version`

// Root attributes.
inline constexpr const char* kFormatAttr = "format";
inline constexpr const char* kFormatVersionAttr = "format_version";
inline constexpr const char* kKindAttr = "kind";
// Root objects.
inline constexpr const char* kConfig = "config";        // scalar string dataset
inline constexpr const char* kTokenizer = "tokenizer";  // scalar string dataset, absent = none
inline constexpr const char* kMetrics = "metrics";      // scalar string dataset
inline constexpr const char* kProvenance = "provenance";  // group of string attributes
inline constexpr const char* kState = "state";            // group of int64 attributes
inline constexpr const char* kTensors = "tensors";        // group of groups of float32 datasets
inline constexpr const char* kRanks = "ranks";            // group of per-rank datasets [world, ...]
inline constexpr const char* kManifest = "manifest";      // scalar string dataset (JSON), written last

// Target elements per chunk: 4 MiB of float32, one Fletcher-32 checksum each.
inline constexpr std::uint64_t kChunkElements = std::uint64_t{1} << 20;

// Chunk dimensions for a tensor of `dims` (rank >= 1, every dim >= 1): whole trailing
// dimensions are kept while the chunk stays within kChunkElements; the first dimension
// (from the right) that does not fit is split, and every dimension before it is 1. So a
// tensor of up to 2^20 elements is one chunk, a [rows x cols] matrix with cols <= 2^20 is
// cut into blocks of whole rows, e.g. [1100, 1000] -> chunks of [1048, 1000].
std::vector<std::uint64_t> chunk_dims(const std::vector<std::uint64_t>& dims);

// Where the chunks of chunk_dims(dims) start in the tensor's row-major element order, and
// its end: 0 = b_0 < b_1 < ... < b_n = numel. Every chunk is a contiguous run of elements
// (the dimensions after the split one are whole, the ones before it are 1), so a chunk is
// also the unit the manifest checksums (docs/checkpoint-format.md). {0, 1} for a 0-D
// tensor, {0} for an empty one.
std::vector<std::uint64_t> chunk_bounds(const std::vector<std::uint64_t>& dims);
// chunk_bounds(dims).size() - 1, without listing them (0 for an empty tensor).
std::uint64_t chunk_count(const std::vector<std::uint64_t>& dims);

// A box of a dataset: `count` elements from `start` in each dimension.
struct Block {
  std::vector<std::uint64_t> start, count;
};

// The elements [begin, end) of a row-major tensor of `dims`, in order, as the fewest boxes
// (HDF5 hyperslabs): a partial leading row, whole rows, a partial trailing row, recursively
// in each dimension. This is how a rank's ZeRO slice of a tensor becomes its file selection.
// Empty when begin == end; a 0-D tensor (dims {}) is one empty-dimension box for [0, 1).
std::vector<Block> flat_range_blocks(const std::vector<std::uint64_t>& dims, std::uint64_t begin, std::uint64_t end);

// "[2, 3]" (for messages).
std::string shape_text(const std::vector<std::int64_t>& shape);

}  // namespace kd::ckpt::layout
