// write_checkpoint: validate the contents, build the file under path + ".tmp", fsync it,
// rename it over path, fsync the directory. Any failure removes the .tmp.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/h5_util.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/util/errors.h"

namespace kd::ckpt {
namespace {

using h5::Handle;

// A fixed-length string's size is stored in 32 bits in the file.
constexpr std::size_t kMaxStringBytes = std::numeric_limits<std::uint32_t>::max();

bool valid_link_name(const std::string& s) { return !s.empty() && s != "." && s.find('/') == std::string::npos; }

// Every failure is a RuntimeFailure naming the final path, what failed and HDF5's reason.
class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw RuntimeFailure(fmt::format("{}: cannot write checkpoint: {}{}", path_, what, h5::error_detail()));
  }
  [[noreturn]] void fail_errno(const std::string& what) const {
    throw RuntimeFailure(fmt::format("{}: cannot write checkpoint: {}: {}", path_, what, std::strerror(errno)));
  }
  Handle make(hid_t id, const std::string& what) const {
    if (id < 0) fail(what);
    return Handle(id);
  }
  void ok(herr_t status, const std::string& what) const {
    if (status < 0) fail(what);
  }

  // Rejects what HDF5 could not store, or would store wrongly, before the disk is touched.
  void validate(const CheckpointContents& c) const {
    for (const auto* text : {&c.kind, &c.config_yaml, &c.tokenizer_json, &c.metrics_jsonl}) {
      if (text->size() > kMaxStringBytes) fail(fmt::format("a text of {} bytes exceeds the 4 GiB limit", text->size()));
    }
    for (const auto& [key, value] : c.provenance) {
      if (key.empty()) fail("a provenance key is empty");
      if (value.size() > kMaxStringBytes) fail(fmt::format("provenance \"{}\" exceeds the 4 GiB limit", key));
    }
    for (const auto& [key, value] : c.state) {
      if (key.empty()) fail("a state key is empty");
    }
    for (const auto& [group, list] : c.tensors) {
      if (!valid_link_name(group)) fail(fmt::format("tensor group name \"{}\" is empty, \".\" or contains '/'", group));
      std::set<std::string> seen;
      for (const TensorView& t : list) {
        const std::string who = fmt::format("tensor \"{}/{}\"", group, t.name);
        if (!valid_link_name(t.name)) fail(who + ": the name is empty, \".\" or contains '/'");
        if (!seen.insert(t.name).second) fail(who + " appears twice in its group");
        std::uint64_t numel = 1;
        for (const std::int64_t d : t.shape) {
          if (d < 0) fail(fmt::format("{} has a negative dimension in shape {}", who, layout::shape_text(t.shape)));
          if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel)) {
            fail(fmt::format("{}: shape {} overflows", who, layout::shape_text(t.shape)));
          }
        }
        if (numel > 0 && t.data == nullptr) {
          fail(fmt::format("{} of shape {} has no data (null pointer)", who, layout::shape_text(t.shape)));
        }
      }
    }
  }

  void write_file(const std::string& tmp, const CheckpointContents& c) const {
    Handle fapl = h5::file_access_plist(true);
    if (!fapl.valid()) fail("setting up the file access property list");
    Handle fcpl = make(H5Pcreate(H5P_FILE_CREATE), "file creation property list");
    ok(H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "root link order");
    Handle file = make(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), "creating " + tmp);
    const hid_t root = file.get();

    write_string_attr(root, layout::kFormatAttr, layout::kFormat);
    write_int64_attr(root, layout::kFormatVersionAttr, layout::kFormatVersion);
    write_string_attr(root, layout::kKindAttr, c.kind);
    write_string_dataset(root, layout::kConfig, c.config_yaml);
    if (!c.tokenizer_json.empty()) write_string_dataset(root, layout::kTokenizer, c.tokenizer_json);
    write_string_dataset(root, layout::kMetrics, c.metrics_jsonl);
    {
      Handle g = create_group(root, layout::kProvenance);
      for (const auto& [key, value] : c.provenance) write_string_attr(g.get(), key, value);
    }
    {
      Handle g = create_group(root, layout::kState);
      for (const auto& [key, value] : c.state) write_int64_attr(g.get(), key, value);
    }
    {
      Handle tensors = create_group(root, layout::kTensors);
      for (const auto& [group, list] : c.tensors) {
        Handle g = create_group(tensors.get(), group);
        for (const TensorView& t : list) write_tensor(g.get(), group, t);
      }
    }
    // Every other handle is closed here, so the strict close flushes and releases the file.
    if (!file.close()) fail("closing (flushing) " + tmp);
  }

  // Flushes the file's data to the device, then (after the rename) the directory entry.
  void sync_file(const std::string& file) const {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_errno("opening " + file + " to fsync it");
    const int rc = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    if (rc != 0) fail_errno("fsync of " + file);
  }
  void sync_dir() const {
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail_errno("opening directory " + dir.string() + " to fsync it");
    const int rc = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    // EINVAL: the file system cannot sync directories; the rename is all it offers.
    if (rc != 0 && errno != EINVAL) fail_errno("fsync of directory " + dir.string());
  }

 private:
  Handle create_group(hid_t loc, const std::string& name) const {
    // Creation order is tracked (and indexed) so tensors list back in the order written.
    Handle gcpl = make(H5Pcreate(H5P_GROUP_CREATE), "group creation property list");
    ok(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "group link order");
    return make(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), "creating group " + name);
  }

  void write_string_attr(hid_t loc, const std::string& name, const std::string& value) const {
    if (!h5::write_string_attr(loc, name, value)) fail("writing attribute " + name);
  }

  void write_int64_attr(hid_t loc, const std::string& name, std::int64_t value) const {
    if (!h5::write_int64_attr(loc, name, value)) fail("writing attribute " + name);
  }

  void write_string_dataset(hid_t loc, const std::string& name, const std::string& text) const {
    Handle type = h5::string_type(text.size());
    if (!type.valid()) fail("string type for dataset /" + name);
    Handle space = make(H5Screate(H5S_SCALAR), "scalar dataspace");
    Handle ds = make(H5Dcreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "creating dataset /" + name);
    ok(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text.c_str()), "writing dataset /" + name);
  }

  void write_tensor(hid_t loc, const std::string& group, const TensorView& t) const {
    const std::string who = fmt::format("tensor \"{}/{}\"", group, t.name);
    std::vector<hsize_t> dims(t.shape.begin(), t.shape.end());
    std::uint64_t numel = 1;
    for (const hsize_t d : dims) numel *= d;
    Handle space = make(dims.empty() ? H5Screate(H5S_SCALAR)
                                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "dataspace of " + who);
    Handle dcpl = make(H5Pcreate(H5P_DATASET_CREATE), "dataset creation property list");
    // Every element is written, so HDF5 need not write fill values first (MPI-IO allocates early).
    ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "fill time");
    if (!dims.empty() && numel > 0) {  // a scalar or empty tensor cannot be chunked: stored contiguous
      const std::vector<std::uint64_t> chunk64 = layout::chunk_dims({dims.begin(), dims.end()});
      const std::vector<hsize_t> chunk(chunk64.begin(), chunk64.end());
      ok(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "chunking of " + who);
      ok(H5Pset_fletcher32(dcpl.get()), "Fletcher-32 filter of " + who);
    }
    Handle ds = make(H5Dcreate2(loc, t.name.c_str(), h5::file_type(t.dtype), space.get(), H5P_DEFAULT, dcpl.get(),
                                H5P_DEFAULT),
                     "creating " + who);
    if (numel > 0) ok(H5Dwrite(ds.get(), h5::memory_type(t.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data), "writing " + who);
  }

  std::string path_;
};

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointContents& c) {
  h5::silence_errors();
  const Writer w(path);
  w.validate(c);
  const std::string tmp = path + ".tmp";
  try {
    w.write_file(tmp, c);
    w.sync_file(tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) w.fail_errno("renaming " + tmp + " over it");
  } catch (...) {
    ::unlink(tmp.c_str());  // never a directory: unlink refuses those
    throw;
  }
  w.sync_dir();
}

}  // namespace kd::ckpt
