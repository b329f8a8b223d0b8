// CheckpointReader: opens a checkpoint, checks it is one kdtrain can read, and reads its
// parts on demand, each checked against the manifest as it is read (checked_read.h). Every
// failure is an InputError naming the path and the part.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "trainer/checkpoint/checked_read.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/h5_util.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/checkpoint/manifest.h"
#include "base/errors.h"
#include "base/files.h"
#include "trainer/util/crc32.h"

namespace kd::ckpt {

struct CheckpointReader::File {
  h5::Handle id;
  bool has_manifest = false;
  std::map<std::string, manifest::Entry> manifest;  // by dataset path, e.g. "tensors/model/x"
};

namespace {

using h5::Handle;

constexpr const char* kDamagedHint =
    "the file is damaged (a bad disk, an interrupted copy or transfer); resume from the checkpoint before it";

// "path: what (HDF5: its reason); hint: ..."
// (DamagedCheckpoint with kDamagedHint)
[[noreturn]] void bad(const std::string& path, const std::string& what, const char* hint = nullptr) {
  std::string msg = fmt::format("{}: {}{}{}{}", path, what, h5::error_detail(), hint ? "; hint: " : "", hint ? hint : "");
  if (hint == kDamagedHint) throw DamagedCheckpoint(std::move(msg));
  throw InputError(std::move(msg));
}

// KD_CHECK_INPUT for what only damage explains
#define KD_CHECK_INTACT(cond, ...)                                                \
  do {                                                                             \
    if (!(cond)) throw ::kd::ckpt::DamagedCheckpoint(::fmt::format(__VA_ARGS__)); \
  } while (0)

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
  KD_CHECK_INPUT(!path.empty(), "a checkpoint path is empty");
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
  load_manifest();
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

std::string CheckpointReader::text(const char* name, bool required) const {
  std::string t = read_text(path_, file_->id.get(), name, required);
  if (const manifest::Entry* e = entry(name)) {
    const std::uint32_t crc = crc32::of(t.data(), t.size());
    const std::uint32_t want = manifest::whole_crc32(*e);
    KD_CHECK_INTACT(t.size() == e->bytes && crc == want,
                   "{}: dataset /{} does not match the manifest ({} bytes, CRC-32 {:08x}; the manifest says {} "
                   "bytes, {:08x}): changed after the file was written, or damaged; hint: {}",
                   path_, name, t.size(), crc, e->bytes, want, kDamagedHint);
  }
  return t;
}

namespace {

// A group's attributes as the manifest checksums them: "name=value\n" lines in name order.
std::string attributes_text(const std::string& path, hid_t g, const std::string& where) {
  std::string bytes;
  for (const std::string& name : attr_names(g)) {
    Handle a(H5Aopen(g, name.c_str(), H5P_DEFAULT));
    Handle type(a.valid() ? H5Aget_type(a.get()) : H5I_INVALID_HID);
    if (!type.valid()) bad(path, fmt::format("attribute {} of {} cannot be read", name, where), kDamagedHint);
    const std::string what = fmt::format("attribute {} of {}", name, where);
    bytes += name + "=" +
             (H5Tget_class(type.get()) == H5T_INTEGER ? std::to_string(read_int64_attr(path, g, name, what))
                                                      : read_string_attr(path, g, name, what)) +
             "\n";
  }
  return bytes;
}

// Checks a group's attributes against their manifest entry.
void check_attributes(const std::string& path, hid_t root, const manifest::Entry& e) {
  Handle g(H5Oopen(root, e.path.c_str(), H5P_DEFAULT));
  if (!g.valid()) bad(path, fmt::format("group {} listed in the manifest cannot be opened", e.path), kDamagedHint);
  const std::string bytes = attributes_text(path, g.get(), e.path);
  const std::uint32_t want = manifest::whole_crc32(e);
  KD_CHECK_INTACT(bytes.size() == e.bytes && crc32::of(bytes.data(), bytes.size()) == want,
                 "{}: the attributes of {} differ from the manifest's (CRC-32): changed after the file was written, "
                 "or damaged; hint: {}", path, e.path == "/" ? "the root" : "/" + e.path, kDamagedHint);
}

// Every object of the file with what it is: datasets and groups with attributes.
struct Listing {
  std::vector<std::string> datasets, groups_with_attributes;
};

Listing list_objects(const std::string& path, hid_t root) {
  Listing out;
  const herr_t rc = H5Ovisit2(
      root, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
        auto* l = static_cast<Listing*>(data);
        const std::string n = std::string(name) == "." ? "/" : name;
        if (info->type == H5O_TYPE_DATASET) l->datasets.push_back(n);
        if (info->type == H5O_TYPE_GROUP && info->num_attrs > 0) l->groups_with_attributes.push_back(n);
        return 0;
      },
      &out, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS);
  if (rc < 0) bad(path, "listing the file's objects failed", kDamagedHint);
  return out;
}

bool warned_unverified(const std::string& path) {
  static std::set<std::string> warned;  // once per file per process (readers are made on one thread)
  return !warned.insert(path).second;
}

}  // namespace

void CheckpointReader::load_manifest() {
  const hid_t root = file_->id.get();
  if (!link_exists(root, {layout::kManifest})) {
    if (!warned_unverified(path_)) {
      std::fprintf(stderr,
                   "kdtrain: warning: %s has no manifest (written by an older kdtrain, or an incomplete write): what "
                   "is read from it is checked only by HDF5's Fletcher-32 checksums; `kdtrain inspect --verify %s` "
                   "reads it all\n",
                   path_.c_str(), path_.c_str());
    }
    return;
  }
  for (manifest::Entry& e : manifest::from_json(read_text(path_, root, layout::kManifest, true), path_ + ":/manifest")) {
    const std::string key = e.path;
    KD_CHECK_INPUT(file_->manifest.emplace(key, std::move(e)).second, "{}: the manifest lists {} twice", path_, key);
  }
  file_->has_manifest = true;
  // Nothing the manifest does not cover: a dataset added (or a layer grafted on) after the
  // write, or a manifest cut short, would otherwise be read unchecked.
  const Listing objects = list_objects(path_, root);
  for (const std::string& d : objects.datasets) {
    if (d == layout::kManifest) continue;
    const auto it = file_->manifest.find(d);
    KD_CHECK_INTACT(it != file_->manifest.end() && it->second.dtype != manifest::kAttributes,
                   "{}: dataset /{} is not in the checkpoint's manifest (added after the file was written, or "
                   "the manifest is damaged); hint: {}", path_, d, kDamagedHint);
  }
  for (const std::string& g : objects.groups_with_attributes) {
    const auto it = file_->manifest.find(g);
    KD_CHECK_INTACT(it != file_->manifest.end() && it->second.dtype == manifest::kAttributes,
                   "{}: the attributes of {} are not in the checkpoint's manifest; hint: {}", path_,
                   g == "/" ? "the root" : "/" + g, kDamagedHint);
  }
  for (const auto& [name, e] : file_->manifest) {  // small: format, kind, state, provenance
    if (e.dtype == manifest::kAttributes) check_attributes(path_, root, e);
  }
}

const manifest::Entry* CheckpointReader::entry(const std::string& ds_path) const {
  const auto it = file_->manifest.find(ds_path);
  return it == file_->manifest.end() ? nullptr : &it->second;
}

std::string CheckpointReader::config_yaml() const { return text(layout::kConfig, true); }
std::string CheckpointReader::tokenizer_json() const { return text(layout::kTokenizer, false); }
std::string CheckpointReader::metrics_jsonl() const { return text(layout::kMetrics, true); }

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

bool CheckpointReader::is_auxiliary(const std::string& name) {
  return name.rfind("quant.", 0) == 0 || name.rfind("distill.", 0) == 0;
}

void CheckpointReader::expect_only(const std::string& group, const std::vector<std::string>& expected,
                                   const std::string& model) const {
  const std::set<std::string> known(expected.begin(), expected.end());
  for (const std::string& name : tensor_names(group)) {
    KD_CHECK_INPUT(known.count(name) > 0 || is_auxiliary(name),
                   "{}: tensor \"{}/{}\" is not one of {} ({} tensors): a checkpoint of another model (an extra "
                   "layer?); check n_layers and the other model sizes",
                   path_, group, name, model, expected.size());
  }
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

// A dataset's type and shape against its manifest entry: the CRCs cover the bytes the
// manifest describes, so a dataset reshaped or retyped after the write is refused first.
void check_against_entry(const std::string& path, const manifest::Entry& e, DType got,
                         const std::vector<std::int64_t>& stored, const std::string& who) {
  KD_CHECK_INTACT(e.dtype == dtype_name(got) && e.shape == stored,
                 "{}: {} is {} of shape {}, the manifest says {} of shape {}: changed after the file was written; "
                 "hint: {}", path, who, dtype_name(got), layout::shape_text(stored), e.dtype,
                 layout::shape_text(e.shape), kDamagedHint);
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
  const std::string ds_path = fmt::format("{}/{}/{}", layout::kTensors, group, name);
  const std::uint64_t width = std::uint64_t(stored[1]);
  if (col0 == 0 && std::uint64_t(cols) == width) {  // whole rows: one run of elements
    read_range(group, name, expected_shape, DType::f32, row0 * cols, (row0 + rows) * cols, out);
    return;
  }
  if (const manifest::Entry* e = entry(ds_path)) {
    check_against_entry(path_, *e, DType::f32, stored, who);
    // The chunks holding the rows, read whole and checked; their columns [col0, col0 + cols) copied.
    const std::uint64_t first = std::uint64_t(row0) * width, last = std::uint64_t(row0 + rows) * width;
    const std::string problem = checked::visit_blocks(
        ds.get(), *e, {stored.begin(), stored.end()}, DType::f32, first, last,
        [&](std::uint64_t at, const char* data, std::uint64_t n) {
          const auto* v = reinterpret_cast<const float*>(data);
          for (std::uint64_t r = at / width; r * width < at + n; ++r) {  // the rows this block holds
            if (r < std::uint64_t(row0) || r >= std::uint64_t(row0 + rows)) continue;
            const std::uint64_t c0 = std::max(r * width + std::uint64_t(col0), at);
            const std::uint64_t c1 = std::min(r * width + std::uint64_t(col0 + cols), at + n);
            for (std::uint64_t i = c0; i < c1; ++i) {
              out[(r - std::uint64_t(row0)) * std::uint64_t(cols) + (i - r * width - std::uint64_t(col0))] = v[i - at];
            }
          }
        });
    if (!problem.empty()) bad(path_, fmt::format("{}: {}", who, problem), kDamagedHint);
    return;
  }
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
  const std::vector<std::uint64_t> dims(stored.begin(), stored.end());
  if (const manifest::Entry* e = entry(fmt::format("{}/{}/{}", layout::kTensors, group, name))) {
    check_against_entry(path_, *e, want, stored, who);
    const std::string problem = checked::read_range(ds.get(), *e, dims, want, std::uint64_t(begin), std::uint64_t(end), out);
    if (!problem.empty()) bad(path_, fmt::format("{}: {}", who, problem), kDamagedHint);
    return;
  }
  if (!checked::read_flat(ds.get(), dims, want, std::uint64_t(begin), std::uint64_t(end), out)) {
    bad(path_, fmt::format("{}: reading failed (Fletcher-32 checksum mismatch or read error)", who), kDamagedHint);
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
  const std::vector<std::uint64_t> dims(shape.begin(), shape.end());
  const std::uint64_t begin = std::uint64_t(rank) * dims[1], end = begin + dims[1];
  std::string problem;
  if (const manifest::Entry* e = entry(who.substr(1))) {
    check_against_entry(path_, *e, dataset_dtype(path_, who, ds.get()), shape, who);
    problem = checked::read_range(ds.get(), *e, dims, DType::i64, begin, end, row.data());
  } else if (!checked::read_flat(ds.get(), dims, DType::i64, begin, end, row.data())) {
    problem = "reading failed (Fletcher-32 checksum mismatch or read error)";
  }
  if (!problem.empty()) bad(path_, who + ": " + problem, kDamagedHint);
  return row;
}

bool CheckpointReader::has_manifest() const { return file_->has_manifest; }

std::string CheckpointReader::verify() const {
  if (!file_->has_manifest) return "it has no manifest (an incomplete write, or not written by kdtrain's trainer)";
  const hid_t root = file_->id.get();
  try {
    // the texts and attributes, then the datasets in the order of their bytes in the file:
    // one sweep from disk (the manifest lists them by name, and in that order the reads
    // jumped back and forth through the file, each jump asking for a new read-ahead)
    struct Dataset {
      haddr_t offset;  // HADDR_UNDEF (chunked, older files) sorts last
      Handle ds;
      const manifest::Entry* entry;
    };
    std::vector<Dataset> datasets;
    for (const auto& [path, e] : file_->manifest) {
      if (e.dtype == manifest::kString) {
        text(e.path.c_str(), true);
      } else if (e.dtype == manifest::kAttributes) {
        check_attributes(path_, root, e);
      } else {
        Handle ds(H5Dopen2(root, e.path.c_str(), H5P_DEFAULT));
        if (!ds.valid()) return fmt::format("dataset /{} listed in the manifest is missing{}", e.path, h5::error_detail());
        const haddr_t offset = H5Dget_offset(ds.get());
        datasets.push_back({offset, std::move(ds), &e});
      }
    }
    std::stable_sort(datasets.begin(), datasets.end(), [](const Dataset& a, const Dataset& b) { return a.offset < b.offset; });
    for (const Dataset& d : datasets) {
      const manifest::Entry& e = *d.entry;
      const Handle& ds = d.ds;
      const std::string who = "dataset /" + e.path;
      const std::vector<std::int64_t> shape = dataset_shape(path_, who, ds.get());
      const DType t = dataset_dtype(path_, who, ds.get());
      check_against_entry(path_, e, t, shape, who);
      // through a few MiB of buffers, whatever the tensor's size
      const std::string problem = checked::check_all(ds.get(), e, {shape.begin(), shape.end()}, t);
      if (!problem.empty()) return fmt::format("{}: {}{}", who, problem, h5::error_detail());
    }
  } catch (const InputError& e) {
    return e.what();
  }
  return {};
}

}  // namespace kd::ckpt
