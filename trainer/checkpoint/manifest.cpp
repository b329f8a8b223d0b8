#include "trainer/checkpoint/manifest.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/util/crc32.h"

namespace kd::ckpt::manifest {

using json = nlohmann::json;

std::uint32_t whole_crc32(const Entry& e) {
  std::uint32_t crc = crc32::of(nullptr, 0);
  for (std::size_t i = 0; i < e.block_crc32.size(); ++i) {
    crc = crc32::combine(crc, e.block_crc32[i], e.bounds[i + 1] - e.bounds[i]);
  }
  return crc;
}

namespace {

// The element size of a stored tensor type's name; 0 for kString/kAttributes.
std::size_t element_size(const std::string& dtype) {
  if (dtype == kString || dtype == kAttributes) return 0;
  for (const DType t : {DType::f32, DType::f64, DType::i8, DType::u8, DType::i32, DType::i64}) {
    if (dtype == dtype_name(t)) return dtype_size(t);
  }
  throw InputError(fmt::format("type \"{}\" is not one kdtrain stores", dtype));
}

// The number of elements of `shape`; InputError when a dimension is negative or the product
// (in bytes of `esize`) does not fit 64 bits.
std::uint64_t checked_numel(const std::vector<std::int64_t>& shape, std::size_t esize) {
  std::uint64_t n = 1;
  for (const std::int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, std::uint64_t(d), &n)) {
      throw InputError(fmt::format("shape {} is not a tensor's", layout::shape_text(shape)));
    }
  }
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(n, std::uint64_t(esize), &bytes)) {
    throw InputError(fmt::format("shape {} is too large", layout::shape_text(shape)));
  }
  return n;
}

std::string hex(std::uint32_t crc) { return fmt::format("{:08x}", crc); }

std::uint32_t parse_hex(const json& j) {
  const std::string s = j.get<std::string>();
  if (s.empty() || s.size() > 8 || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    throw InputError(fmt::format("\"{}\" is not a CRC-32", s));
  }
  return std::uint32_t(std::stoul(s, nullptr, 16));
}

}  // namespace

namespace {

// How many blocks block_bounds gives, without listing them; InputError as there.
std::uint64_t block_count(const std::string& dtype, const std::vector<std::int64_t>& shape, std::uint64_t bytes) {
  const std::size_t esize = element_size(dtype);
  if (esize == 0) {
    if (!shape.empty()) throw InputError(fmt::format("a {} with shape {}", dtype, layout::shape_text(shape)));
    return bytes == 0 ? 0 : 1;
  }
  const std::uint64_t numel = checked_numel(shape, esize);
  if (numel * esize != bytes) {
    throw InputError(fmt::format("{} bytes for shape {} of {}", bytes, layout::shape_text(shape), dtype));
  }
  return layout::chunk_count({shape.begin(), shape.end()});
}

}  // namespace

std::vector<std::uint64_t> block_bounds(const std::string& dtype, const std::vector<std::int64_t>& shape,
                                        std::uint64_t bytes) {
  block_count(dtype, shape, bytes);
  if (bytes == 0) return {0};
  const std::size_t esize = element_size(dtype);
  if (esize == 0) return {0, bytes};
  std::vector<std::uint64_t> bounds = layout::chunk_bounds({shape.begin(), shape.end()});
  for (std::uint64_t& b : bounds) b *= esize;
  return bounds;
}

std::vector<Slice> cut_slices(const std::vector<std::uint64_t>& bounds, std::uint64_t offset, std::uint64_t bytes) {
  std::vector<Slice> out;
  std::uint64_t at = offset;
  const std::uint64_t end = offset + bytes;
  auto next = std::upper_bound(bounds.begin(), bounds.end(), at);
  while (at < end) {
    const std::uint64_t cut = next == bounds.end() ? end : std::min(end, *next);
    out.push_back({at, cut - at, 0});
    at = cut;
    if (next != bounds.end()) ++next;
  }
  return out;
}

std::string to_json(const std::vector<Entry>& entries) {
  json list = json::array();
  for (const Entry& e : entries) {
    std::vector<Slice> s = e.slices;
    std::sort(s.begin(), s.end(), [](const Slice& a, const Slice& b) { return a.offset < b.offset; });
    const std::vector<std::uint64_t> bounds = block_bounds(e.dtype, e.shape, e.bytes);
    std::uint32_t whole = crc32::of(nullptr, 0);
    std::vector<std::uint32_t> blocks;
    std::uint64_t at = 0;
    std::size_t block = 0;  // bounds[block] <= at < bounds[block + 1]
    for (const Slice& x : s) {
      if (x.bytes == 0) continue;
      if (x.offset != at) throw RuntimeFailure(fmt::format("manifest of {}: slices leave a gap at byte {}", e.path, at));
      while (block + 1 < bounds.size() && bounds[block + 1] <= at) ++block;
      if (block + 1 >= bounds.size() || x.offset + x.bytes > bounds[block + 1]) {
        throw RuntimeFailure(fmt::format("manifest of {}: the slice at byte {} crosses a block bound", e.path, at));
      }
      if (at == bounds[block]) blocks.push_back(crc32::of(nullptr, 0));
      blocks.back() = crc32::combine(blocks.back(), x.crc32, x.bytes);
      whole = crc32::combine(whole, x.crc32, x.bytes);
      at += x.bytes;
    }
    if (at != e.bytes) throw RuntimeFailure(fmt::format("manifest of {}: slices cover {} of {} bytes", e.path, at, e.bytes));
    json d{{"path", e.path}, {"dtype", e.dtype}, {"shape", e.shape}, {"bytes", e.bytes}, {"crc32", hex(whole)}};
    if (blocks.size() > 1) {
      json list_of = json::array();
      for (const std::uint32_t c : blocks) list_of.push_back(hex(c));
      d["chunk_crc32"] = std::move(list_of);
    }
    list.push_back(std::move(d));
  }
  return json{{"checksum", "crc32"}, {"datasets", list}}.dump(1);
}

std::vector<Entry> from_json(const std::string& text, const std::string& where) {
  std::vector<Entry> out;
  std::string at;  // the entry being read, for the message
  try {
    const json j = json::parse(text);
    for (const json& d : j.at("datasets")) {
      Entry e;
      e.path = d.at("path").get<std::string>();
      at = " (entry \"" + e.path + "\")";
      e.dtype = d.at("dtype").get<std::string>();
      e.shape = d.at("shape").get<std::vector<std::int64_t>>();
      e.bytes = d.at("bytes").get<std::uint64_t>();
      const std::uint32_t whole = parse_hex(d.at("crc32"));
      const std::uint64_t chunks = block_count(e.dtype, e.shape, e.bytes);  // checks type, shape and size agree
      if (!d.contains("chunk_crc32")) {  // one block: the whole dataset
        e.bounds = e.bytes == 0 ? std::vector<std::uint64_t>{0} : std::vector<std::uint64_t>{0, e.bytes};
        if (e.bytes > 0) e.block_crc32 = {whole};
      } else {
        // The count is checked before the bounds are listed: a damaged shape cannot make a
        // list of billions of bounds.
        const json& list = d.at("chunk_crc32");
        if (list.size() != chunks) throw InputError(fmt::format("{} chunk CRCs for {} chunks", list.size(), chunks));
        e.bounds = block_bounds(e.dtype, e.shape, e.bytes);
        std::uint32_t combined = crc32::of(nullptr, 0);
        for (std::size_t i = 0; i < list.size(); ++i) {
          e.block_crc32.push_back(parse_hex(list[i]));
          combined = crc32::combine(combined, e.block_crc32.back(), e.bounds[i + 1] - e.bounds[i]);
        }
        if (combined != whole) throw InputError("its chunk CRCs do not combine to its CRC-32");
      }
      out.push_back(std::move(e));
    }
  } catch (const std::exception& ex) {
    throw InputError(fmt::format("{}: the manifest is not readable{}: {}", where, at, ex.what()));
  }
  return out;
}

}  // namespace kd::ckpt::manifest
