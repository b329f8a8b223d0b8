// CheckpointReader: opens a checkpoint, checks it is one kdtrain can read, and reads its
// parts on demand. Every failure is an InputError naming the path and the part.
#include <fmt/format.h>

#include <filesystem>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/h5_util.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/checkpoint/manifest.h"
#include "base/errors.h"
#include "base/files.h"

namespace kd::ckpt {

struct CheckpointReader::File {
  h5::Handle id;
};

namespace {

using h5::Handle;

constexpr const char* kDamagedHint =
    "the file is damaged (a bad disk, an interrupted copy or transfer); resume from the checkpoint before it";

// "path: what (HDF5: its reason); hint: ..."
[[noreturn]] void bad(const std::string& path, const std::string& what, const char* hint = nullptr) {
  throw InputError(fmt::format("{}: {}{}{}{}", path, what, h5::error_detail(), hint ? "; hint: " : "", hint ? hint : ""));
}

// True when every component of `a/b/...` exists (H5Lexists fails on a missing parent).
bool link_exists(hid_t loc, const std::vector<std::string>& parts) {
  std::string sub;
  for (const std::string& p : parts) {
    if (p.empty() || p == "." || p.find('/') != std::string::npos) return false;
    sub += (sub.empty() ? "" : "/") + p;
    if (H5Lexists(loc, sub.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

// Reads a fixed-length string (the type kdtrain writes) from a dataset or an attribute.
std::string read_fixed_string(const std::string& path, const std::string& what, hid_t type, bool is_attr,
                              hid_t obj) {
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) {
    bad(path, what + " is not a fixed-length string");
  }
  const std::size_t size = H5Tget_size(type);
  Handle space(is_attr ? H5Aget_space(obj) : H5Dget_space(obj));
  if (!space.valid() || H5Sget_simple_extent_npoints(space.get()) != 1) bad(path, what + " is not a single string");
  std::string text(size, '\0');
  const herr_t rc = is_attr ? H5Aread(obj, type, text.data())
                            : H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data());
  if (rc < 0) bad(path, fmt::format("reading {} failed", what), kDamagedHint);
  while (!text.empty() && text.back() == '\0') text.pop_back();  // null padding
  return text;
}

std::string read_string_attr(const std::string& path, hid_t loc, const std::string& name, const std::string& what) {
  Handle a(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
  if (!a.valid()) bad(path, what + " cannot be opened");
  Handle type(H5Aget_type(a.get()));
  if (!type.valid()) bad(path, what + ": cannot read its type");
  return read_fixed_string(path, what, type.get(), true, a.get());
}

std::int64_t read_int64_attr(const std::string& path, hid_t loc, const std::string& name, const std::string& what) {
  Handle a(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
  if (!a.valid()) bad(path, what + " cannot be opened");
  Handle type(H5Aget_type(a.get()));
  Handle space(H5Aget_space(a.get()));
  if (!type.valid() || H5Tget_class(type.get()) != H5T_INTEGER) bad(path, what + " is not an integer");
  if (!space.valid() || H5Sget_simple_extent_npoints(space.get()) != 1) bad(path, what + " is not a single integer");
  std::int64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) bad(path, fmt::format("reading {} failed", what), kDamagedHint);
  return v;
}

bool attr_exists(hid_t loc, const std::string& name) {
  const htri_t e = H5Aexists(loc, name.c_str());
  if (e < 0) H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

// Names of a group's attributes.
std::vector<std::string> attr_names(hid_t loc) {
  std::vector<std::string> names;
  H5Aiterate2(
      loc, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        return 0;
      },
      &names);
  return names;
}

}  // namespace

CheckpointReader::CheckpointReader(const std::string& path) : path_(path), file_(std::make_unique<File>()) {
  h5::silence_errors();
  std::error_code ec;
  KD_CHECK_INPUT(std::filesystem::exists(path, ec), "{}: checkpoint not found (no such file)", path);
  require_regular_file(path, "the checkpoint");  // HDF5's open() would block on a FIFO
  const htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 < 0) bad(path, "cannot read the checkpoint file");
  if (is_h5 == 0) bad(path, "not a kdtrain checkpoint: not an HDF5 file");
  Handle fapl = h5::file_access_plist(false);
  if (!fapl.valid()) bad(path, "setting up the file access property list");
  file_->id = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!file_->id.valid()) bad(path, "cannot open the checkpoint (a truncated or damaged HDF5 file)", kDamagedHint);
  const hid_t root = file_->id.get();

  KD_CHECK_INPUT(attr_exists(root, layout::kFormatAttr),
                 "{}: not a kdtrain checkpoint: an HDF5 file without the root attribute \"{}\"", path,
                 layout::kFormatAttr);
  std::string format;
  try {
    format = read_string_attr(path, root, layout::kFormatAttr, "root attribute \"format\"");
  } catch (const InputError&) {  // e.g. a number, or a variable-length string written by h5py
    throw InputError(fmt::format("{}: not a kdtrain checkpoint: its root attribute \"format\" is not a fixed-length string", path));
  }
  KD_CHECK_INPUT(format == layout::kFormat, "{}: not a kdtrain checkpoint: format is \"{}\", expected \"{}\"", path,
                 format, layout::kFormat);
  KD_CHECK_INPUT(attr_exists(root, layout::kFormatVersionAttr), "{}: kdtrain checkpoint without a \"{}\" attribute",
                 path, layout::kFormatVersionAttr);
  const std::int64_t version =
      read_int64_attr(path, root, layout::kFormatVersionAttr, "root attribute \"format_version\"");
  KD_CHECK_INPUT(version == layout::kFormatVersion,
                 "{}: unsupported checkpoint format_version {}; this kdtrain reads version {}", path, version,
                 layout::kFormatVersion);
}

CheckpointReader::~CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;

std::string CheckpointReader::kind() const {
  const hid_t root = file_->id.get();
  KD_CHECK_INPUT(attr_exists(root, layout::kKindAttr), "{}: checkpoint has no root attribute \"kind\"", path_);
  return read_string_attr(path_, root, layout::kKindAttr, "root attribute \"kind\"");
}

namespace {

std::string read_text(const std::string& path, hid_t root, const char* name, bool required) {
  if (!link_exists(root, {name})) {
    KD_CHECK_INPUT(!required, "{}: checkpoint has no /{} dataset", path, name);
    return {};
  }
  const std::string what = fmt::format("dataset /{}", name);
  Handle ds(H5Dopen2(root, name, H5P_DEFAULT));
  if (!ds.valid()) bad(path, what + " cannot be opened");
  Handle type(H5Dget_type(ds.get()));
  if (!type.valid()) bad(path, what + ": cannot read its type");
  return read_fixed_string(path, what, type.get(), false, ds.get());
}

}  // namespace

std::string CheckpointReader::config_yaml() const { return read_text(path_, file_->id.get(), layout::kConfig, true); }
std::string CheckpointReader::tokenizer_json() const {
  return read_text(path_, file_->id.get(), layout::kTokenizer, false);
}
std::string CheckpointReader::metrics_jsonl() const { return read_text(path_, file_->id.get(), layout::kMetrics, true); }

std::map<std::string, std::string> CheckpointReader::provenance() const {
  std::map<std::string, std::string> out;
  if (!link_exists(file_->id.get(), {layout::kProvenance})) return out;
  Handle g(H5Gopen2(file_->id.get(), layout::kProvenance, H5P_DEFAULT));
  if (!g.valid()) bad(path_, "group /provenance cannot be opened");
  for (const std::string& key : attr_names(g.get())) {
    out[key] = read_string_attr(path_, g.get(), key, fmt::format("provenance \"{}\"", key));
  }
  return out;
}

bool CheckpointReader::has_state(const std::string& key) const {
  if (!link_exists(file_->id.get(), {layout::kState})) return false;
  Handle g(H5Gopen2(file_->id.get(), layout::kState, H5P_DEFAULT));
  return g.valid() && attr_exists(g.get(), key);
}

std::int64_t CheckpointReader::state(const std::string& key) const {
  KD_CHECK_INPUT(has_state(key), "{}: checkpoint has no state \"{}\" (an attribute of /state)", path_, key);
  Handle g(H5Gopen2(file_->id.get(), layout::kState, H5P_DEFAULT));
  return read_int64_attr(path_, g.get(), key, fmt::format("state \"{}\"", key));
}

std::vector<std::string> CheckpointReader::tensor_names(const std::string& group) const {
  std::vector<std::string> names;
  if (!link_exists(file_->id.get(), {layout::kTensors, group})) return names;
  Handle g(H5Gopen2(file_->id.get(), fmt::format("{}/{}", layout::kTensors, group).c_str(), H5P_DEFAULT));
  if (!g.valid()) bad(path_, fmt::format("tensor group \"{}\" cannot be opened", group));
  H5G_info_t info;
  if (H5Gget_info(g.get(), &info) < 0) bad(path_, fmt::format("listing tensor group \"{}\" failed", group));
  // Stored order; a group written without creation-order tracking (not by kdtrain) lists by name.
  H5_index_t index = H5_INDEX_CRT_ORDER;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(g.get(), ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0 && i == 0 && index == H5_INDEX_CRT_ORDER) {
      H5Eclear2(H5E_DEFAULT);
      index = H5_INDEX_NAME;
      n = H5Lget_name_by_idx(g.get(), ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    }
    if (n < 0) bad(path_, fmt::format("listing tensor group \"{}\" failed", group));
    std::string name(static_cast<std::size_t>(n) + 1, '\0');
    if (H5Lget_name_by_idx(g.get(), ".", index, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0) {
      bad(path_, fmt::format("listing tensor group \"{}\" failed", group));
    }
    name.resize(static_cast<std::size_t>(n));
    names.push_back(std::move(name));
  }
  return names;
}

bool CheckpointReader::has_tensor(const std::string& group, const std::string& name) const {
  return link_exists(file_->id.get(), {layout::kTensors, group, name});
}

namespace {

Handle open_tensor(const std::string& path, hid_t root, const std::string& group, const std::string& name) {
  const std::string who = fmt::format("tensor \"{}/{}\"", group, name);
  KD_CHECK_INPUT(link_exists(root, {layout::kTensors, group, name}), "{}: {} not found in the checkpoint", path, who);
  Handle ds(H5Dopen2(root, fmt::format("{}/{}/{}", layout::kTensors, group, name).c_str(), H5P_DEFAULT));
  if (!ds.valid()) bad(path, who + " is not a dataset");
  return ds;
}

std::vector<std::int64_t> dataset_shape(const std::string& path, const std::string& who, hid_t ds) {
  Handle space(H5Dget_space(ds));
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0) bad(path, who + ": cannot read its shape");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) {
    bad(path, who + ": cannot read its shape");
  }
  return {dims.begin(), dims.end()};
}

}  // namespace

std::vector<std::int64_t> CheckpointReader::shape(const std::string& group, const std::string& name) const {
  Handle ds = open_tensor(path_, file_->id.get(), group, name);
  return dataset_shape(path_, fmt::format("tensor \"{}/{}\"", group, name), ds.get());
}

namespace {

DType dataset_dtype(const std::string& path, const std::string& who, hid_t ds) {
  Handle type(H5Dget_type(ds));
  const auto t = type.valid() ? h5::stored_dtype(type.get()) : std::nullopt;
  KD_CHECK_INPUT(t.has_value(), "{}: {} has an element type kdtrain does not store (HDF5 class {}, {} bytes)", path,
                 who, type.valid() ? static_cast<int>(H5Tget_class(type.get())) : -1,
                 type.valid() ? H5Tget_size(type.get()) : 0);
  return *t;
}

// The tensor's dataset, checked to hold exactly type `want` (HDF5 would otherwise convert a
// float64 or integer dataset silently) and shape `expected`.
Handle open_checked(const std::string& path, hid_t root, const std::string& group, const std::string& name,
                    const std::vector<std::int64_t>& expected, DType want, std::uint64_t& numel) {
  const std::string who = fmt::format("tensor \"{}/{}\"", group, name);
  Handle ds = open_tensor(path, root, group, name);
  const DType got = dataset_dtype(path, who, ds.get());
  KD_CHECK_INPUT(got == want, "{}: {} is {}, expected {}", path, who, dtype_name(got), dtype_name(want));
  const std::vector<std::int64_t> stored = dataset_shape(path, who, ds.get());
  KD_CHECK_INPUT(stored == expected, "{}: {} has shape {} in the checkpoint, expected {}", path, who,
                 layout::shape_text(stored), layout::shape_text(expected));
  numel = 1;
  for (const std::int64_t d : stored) numel *= static_cast<std::uint64_t>(d);
  return ds;
}

}  // namespace

DType CheckpointReader::dtype(const std::string& group, const std::string& name) const {
  Handle ds = open_tensor(path_, file_->id.get(), group, name);
  return dataset_dtype(path_, fmt::format("tensor \"{}/{}\"", group, name), ds.get());
}

void CheckpointReader::read_typed(const std::string& group, const std::string& name,
                                  const std::vector<std::int64_t>& expected_shape, DType want, void* out) const {
  std::int64_t numel = 1;
  for (const std::int64_t d : expected_shape) numel *= d;
  read_range(group, name, expected_shape, want, 0, numel, out);
}

void CheckpointReader::read_block(const std::string& group, const std::string& name,
                                  const std::vector<std::int64_t>& expected_shape, std::int64_t row0,
                                  std::int64_t rows, std::int64_t col0, std::int64_t cols, float* out) const {
  const std::string who = fmt::format("tensor \"{}/{}\"", group, name);
  std::uint64_t numel = 0;
  Handle ds = open_checked(path_, file_->id.get(), group, name, expected_shape, DType::f32, numel);
  const std::vector<std::int64_t>& stored = expected_shape;
  KD_ASSERT(stored.size() == 2 && row0 >= 0 && col0 >= 0 && row0 + rows <= stored[0] && col0 + cols <= stored[1],
            "block [{}+{}, {}+{}] of {}", row0, rows, col0, cols, who);
  if (rows == 0 || cols == 0) return;
  Handle space(H5Dget_space(ds.get()));
  const hsize_t start[2] = {hsize_t(row0), hsize_t(col0)}, count[2] = {hsize_t(rows), hsize_t(cols)};
  Handle mem(H5Screate_simple(2, count, nullptr));
  if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0 ||
      H5Dread(ds.get(), H5T_NATIVE_FLOAT, mem.get(), space.get(), H5P_DEFAULT, out) < 0) {
    bad(path_, fmt::format("{}: reading a block failed (Fletcher-32 checksum mismatch or read error)", who),
        kDamagedHint);
  }
}

}  // namespace kd::ckpt

namespace kd::ckpt {

void CheckpointReader::read_range(const std::string& group, const std::string& name,
                                  const std::vector<std::int64_t>& expected_shape, DType want, std::int64_t begin,
                                  std::int64_t end, void* out) const {
  const std::string who = fmt::format("tensor \"{}/{}\"", group, name);
  std::uint64_t numel = 0;
  Handle ds = open_checked(path_, file_->id.get(), group, name, expected_shape, want, numel);
  const std::vector<std::int64_t>& stored = expected_shape;
  KD_ASSERT(begin >= 0 && begin <= end && std::uint64_t(end) <= numel, "range [{}, {}) of {}", begin, end, who);
  if (begin == end) return;
  // One read per box, its memory space of the box's own shape: HDF5 then copies chunk rows
  // directly (a flat memory space against an N-D selection takes its element-wise path, ~5x slower).
  auto fail_read = [&] {
    bad(path_, fmt::format("{}: reading failed (Fletcher-32 checksum mismatch or read error)", who),
        kDamagedHint);
  };
  if (stored.empty()) {  // a 0-D tensor: [0, 1)
    if (H5Dread(ds.get(), h5::memory_type(want), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) fail_read();
    return;
  }
  auto* dst = static_cast<char*>(out);
  const std::vector<std::uint64_t> dims(stored.begin(), stored.end());
  for (const layout::Block& b : layout::flat_range_blocks(dims, std::uint64_t(begin), std::uint64_t(end))) {
    const std::vector<hsize_t> start(b.start.begin(), b.start.end()), count(b.count.begin(), b.count.end());
    Handle space(H5Dget_space(ds.get()));
    Handle mem(H5Screate_simple(int(count.size()), count.data(), nullptr));
    if (!space.valid() || !mem.valid() ||
        H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
        H5Dread(ds.get(), h5::memory_type(want), mem.get(), space.get(), H5P_DEFAULT, dst) < 0) {
      fail_read();
    }
    std::uint64_t n = 1;
    for (const hsize_t c : count) n *= c;
    dst += n * dtype_size(want);
  }
}

int CheckpointReader::written_by_ranks() const {
  if (!link_exists(file_->id.get(), {layout::kRanks})) return 1;
  Handle g(H5Gopen2(file_->id.get(), layout::kRanks, H5P_DEFAULT));
  H5G_info_t info;
  if (!g.valid() || H5Gget_info(g.get(), &info) < 0) bad(path_, "group /ranks cannot be opened");
  if (info.nlinks == 0) return 1;
  char name[256] = {0};
  if (H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, 0, name, sizeof name, H5P_DEFAULT) < 0) {
    bad(path_, "group /ranks cannot be listed");
  }
  Handle ds(H5Dopen2(g.get(), name, H5P_DEFAULT));
  if (!ds.valid()) bad(path_, fmt::format("/ranks/{} is not a dataset", name));
  const auto shape = dataset_shape(path_, fmt::format("/ranks/{}", name), ds.get());
  KD_CHECK_INPUT(shape.size() == 2 && shape[0] >= 1, "{}: /ranks/{} has shape {}, expected [ranks, n]", path_, name,
                 layout::shape_text(shape));
  return int(shape[0]);
}

std::optional<std::vector<std::int64_t>> CheckpointReader::per_rank(const std::string& key, int rank) const {
  const hid_t root = file_->id.get();
  if (!link_exists(root, {layout::kRanks, key})) return std::nullopt;
  const std::string who = fmt::format("/ranks/{}", key);
  Handle ds(H5Dopen2(root, who.c_str() + 1, H5P_DEFAULT));
  if (!ds.valid()) bad(path_, who + " is not a dataset");
  const auto shape = dataset_shape(path_, who, ds.get());
  KD_CHECK_INPUT(shape.size() == 2, "{}: {} has shape {}, expected [ranks, n]", path_, who, layout::shape_text(shape));
  if (rank >= shape[0]) return std::nullopt;
  std::vector<std::int64_t> row(static_cast<std::size_t>(shape[1]));
  if (row.empty()) return row;
  Handle space(H5Dget_space(ds.get()));
  const hsize_t start[2] = {hsize_t(rank), 0}, count[2] = {1, hsize_t(shape[1])};
  const hsize_t n = hsize_t(shape[1]);
  Handle mem(H5Screate_simple(1, &n, nullptr));
  if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0 ||
      H5Dread(ds.get(), H5T_NATIVE_INT64, mem.get(), space.get(), H5P_DEFAULT, row.data()) < 0) {
    bad(path_, who + ": reading failed (Fletcher-32 checksum mismatch or read error)", kDamagedHint);
  }
  return row;
}

bool CheckpointReader::has_manifest() const { return link_exists(file_->id.get(), {layout::kManifest}); }

std::string CheckpointReader::verify() const {
  const hid_t root = file_->id.get();
  if (!link_exists(root, {layout::kManifest})) return "it has no manifest (an incomplete write, or not written by kdtrain's trainer)";
  std::vector<manifest::Entry> entries;
  try {
    entries = manifest::from_json(read_text(path_, root, layout::kManifest, true), path_ + ":/manifest");
    for (const manifest::Entry& e : entries) {
      std::string bytes;
      if (e.dtype == manifest::kString) {
        bytes = read_text(path_, root, e.path.c_str(), true);
      } else if (e.dtype == manifest::kAttributes) {
        Handle g(H5Oopen(root, e.path.c_str(), H5P_DEFAULT));
        if (!g.valid()) return fmt::format("group {} listed in the manifest cannot be opened{}", e.path, h5::error_detail());
        for (const std::string& name : attr_names(g.get())) {
          Handle a(H5Aopen(g.get(), name.c_str(), H5P_DEFAULT));
          Handle type(a.valid() ? H5Aget_type(a.get()) : H5I_INVALID_HID);
          if (!type.valid()) return fmt::format("attribute {} of {} cannot be read{}", name, e.path, h5::error_detail());
          const std::string what = fmt::format("attribute {} of {}", name, e.path);
          bytes += name + "=" +
                   (H5Tget_class(type.get()) == H5T_INTEGER ? std::to_string(read_int64_attr(path_, g.get(), name, what))
                                                            : read_string_attr(path_, g.get(), name, what)) +
                   "\n";
        }
        if (bytes.size() != e.bytes || manifest::crc32_of(bytes.data(), bytes.size()) != e.slices.front().crc32) {
          return fmt::format("the attributes of {} differ from the manifest's (CRC-32)", e.path);
        }
        continue;
      } else {
        Handle ds(H5Dopen2(root, e.path.c_str(), H5P_DEFAULT));
        if (!ds.valid()) return fmt::format("dataset /{} listed in the manifest is missing{}", e.path, h5::error_detail());
        Handle type(H5Dget_type(ds.get()));
        const auto t = type.valid() ? h5::stored_dtype(type.get()) : std::nullopt;
        if (!t || dtype_name(*t) != e.dtype) return fmt::format("dataset /{} is not of type {}", e.path, e.dtype);
        if (dataset_shape(path_, "/" + e.path, ds.get()) != e.shape) {
          return fmt::format("dataset /{} does not have the manifest's shape {}", e.path, layout::shape_text(e.shape));
        }
        bytes.resize(e.bytes);
        if (e.bytes > 0 && H5Dread(ds.get(), h5::memory_type(*t), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0) {
          return fmt::format("dataset /{} cannot be read (Fletcher-32 checksum mismatch or read error){}", e.path,
                             h5::error_detail());
        }
      }
      if (bytes.size() != e.bytes) return fmt::format("dataset /{} holds {} bytes, the manifest says {}", e.path, bytes.size(), e.bytes);
      const std::uint32_t crc = manifest::crc32_of(bytes.data(), bytes.size());
      if (crc != e.slices.front().crc32) {
        return fmt::format("dataset /{}: CRC-32 {:08x}, the manifest says {:08x}", e.path, crc, e.slices.front().crc32);
      }
    }
  } catch (const InputError& e) {
    return e.what();
  }
  return {};
}

}  // namespace kd::ckpt
