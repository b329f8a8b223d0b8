#include "trainer/checkpoint/manifest.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/errors.h"

namespace kd::ckpt::manifest {

using json = nlohmann::json;

std::uint32_t crc32_of(const void* data, std::uint64_t bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {  // zlib takes at most 4 GiB per call
    const uInt n = uInt(std::min<std::uint64_t>(bytes, std::uint64_t{1} << 30));
    crc = crc32(crc, p, n);
    p += n;
    bytes -= n;
  }
  return std::uint32_t(crc);
}

std::string to_json(const std::vector<Entry>& entries) {
  json list = json::array();
  for (const Entry& e : entries) {
    std::vector<Slice> s = e.slices;
    std::sort(s.begin(), s.end(), [](const Slice& a, const Slice& b) { return a.offset < b.offset; });
    uLong crc = crc32(0L, Z_NULL, 0);
    std::uint64_t at = 0;
    for (const Slice& x : s) {
      if (x.bytes == 0) continue;
      if (x.offset != at) throw RuntimeFailure(fmt::format("manifest of {}: slices leave a gap at byte {}", e.path, at));
      crc = crc32_combine(crc, x.crc32, z_off_t(x.bytes));
      at += x.bytes;
    }
    if (at != e.bytes) throw RuntimeFailure(fmt::format("manifest of {}: slices cover {} of {} bytes", e.path, at, e.bytes));
    list.push_back(json{{"path", e.path}, {"dtype", e.dtype}, {"shape", e.shape}, {"bytes", e.bytes},
                        {"crc32", fmt::format("{:08x}", std::uint32_t(crc))}});
  }
  return json{{"checksum", "crc32"}, {"datasets", list}}.dump(1);
}

std::vector<Entry> from_json(const std::string& text, const std::string& where) {
  std::vector<Entry> out;
  try {
    const json j = json::parse(text);
    for (const json& d : j.at("datasets")) {
      Entry e;
      e.path = d.at("path").get<std::string>();
      e.dtype = d.at("dtype").get<std::string>();
      e.shape = d.at("shape").get<std::vector<std::int64_t>>();
      e.bytes = d.at("bytes").get<std::uint64_t>();
      e.slices.push_back({0, e.bytes, std::uint32_t(std::stoul(d.at("crc32").get<std::string>(), nullptr, 16))});
      out.push_back(std::move(e));
    }
  } catch (const std::exception& ex) {
    throw InputError(fmt::format("{}: the manifest is not readable: {}", where, ex.what()));
  }
  return out;
}

}  // namespace kd::ckpt::manifest
