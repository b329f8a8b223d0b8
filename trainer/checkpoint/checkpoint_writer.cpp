// write_checkpoint: validate the contents, agree on one header across the ranks, build the
// file under path + ".tmp" (collectively over MPI-IO with several ranks), add the manifest,
// fsync it, rename it over path, fsync the directory. Any failure removes the .tmp, on every
// rank's word: each collective stage ends with the ranks agreeing whether one failed.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/h5_util.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/checkpoint/manifest.h"
#include "trainer/dist/comm.h"
#include "trainer/dist/mpi_handle.h"
#include "base/errors.h"

namespace kd::ckpt {
namespace {

using h5::Handle;
using json = nlohmann::json;

// A fixed-length string's size is stored in 32 bits in the file.
constexpr std::size_t kMaxStringBytes = std::numeric_limits<std::uint32_t>::max();

bool valid_link_name(const std::string& s) { return !s.empty() && s != "." && s.find('/') == std::string::npos; }

std::uint64_t numel_of(const std::vector<std::int64_t>& shape) {
  std::uint64_t n = 1;
  for (const std::int64_t d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

// KDTRAIN_CHECKPOINT_FAULT=<point>:<n>: the n-th checkpoint write of this process kills
// itself at <point> (the crash tests' kill -9 at a chosen moment). {"", 0} when unset.
std::pair<std::string, int> fault_env() {
  const char* env = std::getenv("KDTRAIN_CHECKPOINT_FAULT");
  if (env == nullptr || *env == '\0') return {"", 0};
  const std::string spec(env);
  const auto colon = spec.rfind(':');
  static const std::set<std::string> kPoints = {"mid-dataset", "after-close", "after-fsync", "after-rename",
                                                "before-dir-fsync"};
  int n = 0;
  try {
    n = colon == std::string::npos ? 1 : std::stoi(spec.substr(colon + 1));
  } catch (const std::exception&) {
    n = 0;
  }
  const std::string point = spec.substr(0, colon);
  KD_CHECK_INPUT(kPoints.count(point) && n >= 1,
                 "KDTRAIN_CHECKPOINT_FAULT={}: expected <point>:<n>, point one of mid-dataset, after-close, "
                 "after-fsync, after-rename, before-dir-fsync, n >= 1", spec);
  return {point, n};
}

class Fault {
 public:
  Fault() {
    static int writes = 0;
    ++writes;
    const auto [point, n] = fault_env();
    point_ = point;
    armed_ = n == writes;
  }
  bool armed(const char* point) const { return armed_ && point_ == point; }
  void at(const char* point) const {
    if (armed(point)) ::raise(SIGKILL);
  }

 private:
  std::string point_;
  bool armed_ = false;
};

// The ranks writing one file together (one rank: a plain local write).
class Ranks {
 public:
  explicit Ranks(dist::Comm* comm) : comm_(comm && comm->size() > 1 ? comm : nullptr) {}
  bool parallel() const { return comm_ != nullptr; }
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int size() const { return comm_ ? comm_->size() : 1; }
  dist::Comm& comm() const { return *comm_; }
  bool any(bool mine) const {
    if (!comm_) return mine;
    std::array<double, 1> f{mine ? 1.0 : 0.0};
    comm_->all_reduce_max(f);
    return f[0] > 0;
  }
  // rank 0's text on every rank
  std::string share(std::string text) const {
    if (!comm_) return text;
    std::array<std::int64_t, 1> n{std::int64_t(text.size())};
    comm_->broadcast(n, 0);
    text.resize(std::size_t(n[0]));
    comm_->broadcast(std::span<char>(text.data(), text.size()), 0);
    return text;
  }

 private:
  dist::Comm* comm_;
};

// What every rank writes identically: rank 0's texts, provenance and state.
struct Header {
  std::string kind, config_yaml, tokenizer_json, metrics_jsonl;
  std::map<std::string, std::string> provenance;
  std::map<std::string, std::int64_t> state;
};

Header share_header(const CheckpointContents& c, const Ranks& ranks) {
  if (!ranks.parallel()) return {c.kind, c.config_yaml, c.tokenizer_json, c.metrics_jsonl, c.provenance, c.state};
  std::string text;
  if (ranks.rank() == 0) {
    text = json{{"kind", c.kind}, {"config", c.config_yaml}, {"tokenizer", c.tokenizer_json},
                {"metrics", c.metrics_jsonl}, {"provenance", c.provenance}, {"state", c.state}}
               .dump(-1, ' ', false, json::error_handler_t::replace);
  }
  const json j = json::parse(ranks.share(std::move(text)));
  return {j["kind"], j["config"], j["tokenizer"], j["metrics"], j["provenance"].get<std::map<std::string, std::string>>(),
          j["state"].get<std::map<std::string, std::int64_t>>()};
}

// Every failure is a RuntimeFailure naming the final path, what failed and HDF5's reason.
class Writer {
 public:
  Writer(const std::string& path, const Ranks& ranks) : path_(path), ranks_(ranks) {}

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

  // Runs one step of the write; then the ranks agree whether any failed, and all throw if
  // one did (so every rank leaves the collective write at the same point).
  void stage(const std::string& what, const std::function<void()>& step) const {
    std::string error;
    try {
      step();
    } catch (const RuntimeFailure& e) {
      error = e.what();
    }
    if (ranks_.any(!error.empty())) {
      if (!error.empty()) throw RuntimeFailure(error);
      throw RuntimeFailure(fmt::format("{}: cannot write checkpoint: another rank failed while {}", path_, what));
    }
  }

  // Rejects what HDF5 could not store, or would store wrongly, before the disk is touched.
  void validate(const Header& h, const CheckpointContents& c) const {
    for (const auto* text : {&h.kind, &h.config_yaml, &h.tokenizer_json, &h.metrics_jsonl}) {
      if (text->size() > kMaxStringBytes) fail(fmt::format("a text of {} bytes exceeds the 4 GiB limit", text->size()));
    }
    for (const auto& [key, value] : h.provenance) {
      if (key.empty()) fail("a provenance key is empty");
      if (value.size() > kMaxStringBytes) fail(fmt::format("provenance \"{}\" exceeds the 4 GiB limit", key));
    }
    for (const auto& [key, value] : h.state) {
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
        const std::int64_t end = t.end < 0 ? std::int64_t(numel) : t.end;
        if (t.begin < 0 || t.begin > end || std::uint64_t(end) > numel) {
          fail(fmt::format("{}: range [{}, {}) outside its {} elements", who, t.begin, end, numel));
        }
        if (end > t.begin && t.data == nullptr) {
          fail(fmt::format("{} of shape {} has no data (null pointer)", who, layout::shape_text(t.shape)));
        }
      }
    }
    for (const auto& [key, row] : c.per_rank) {
      if (!valid_link_name(key)) fail(fmt::format("per-rank key \"{}\" is empty, \".\" or contains '/'", key));
    }
  }

  // Every rank holds the same tensors, and their ranges cover each tensor exactly once.
  void check_agreement(const CheckpointContents& c) const {
    std::string sig;
    std::vector<double> covered;
    std::vector<double> numel;
    for (const auto& [group, list] : c.tensors) {
      for (const TensorView& t : list) {
        sig += fmt::format("{}/{}:{}:{};", group, t.name, layout::shape_text(t.shape), int(t.dtype));
        const std::uint64_t n = numel_of(t.shape);
        covered.push_back(double((t.end < 0 ? std::int64_t(n) : t.end) - t.begin));
        numel.push_back(double(n));
      }
    }
    for (const auto& [key, row] : c.per_rank) sig += fmt::format("ranks/{}:{};", key, row.size());
    if (ranks_.parallel()) {
      const bool differs = ranks_.share(sig) != sig;
      if (ranks_.any(differs)) {
        fail(differs ? "this rank's tensors differ from rank 0's (names, shapes or types)"
                     : "another rank's tensors differ from rank 0's (names, shapes or types)");
      }
      ranks_.comm().all_reduce_sum(std::span<double>(covered));
    }
    std::size_t i = 0;
    for (const auto& [group, list] : c.tensors) {
      for (const TensorView& t : list) {
        if (covered[i] != numel[i]) {
          fail(fmt::format("tensor \"{}/{}\": the ranks' ranges cover {} of its {} elements", group, t.name,
                           covered[i], numel[i]));
        }
        ++i;
      }
    }
  }

  void write_file(const std::string& tmp, const Header& h, const CheckpointContents& c, const Fault& fault) {
    const MPI_Comm mpi = ranks_.parallel() ? dist::mpi_handle(ranks_.comm()) : MPI_COMM_NULL;
    if (ranks_.parallel() && mpi == MPI_COMM_NULL) fail("a collective write needs an MPI communicator");
    Handle fapl;
    Handle file;
    stage("creating the file", [&] {
      fapl = h5::file_access_plist(true, mpi);
      if (!fapl.valid()) fail("setting up the file access property list");
      dxpl_ = make(H5Pcreate(H5P_DATASET_XFER), "transfer property list");
      // filtered (Fletcher-32) datasets take parallel writes only as collective transfers
      if (ranks_.parallel()) ok(H5Pset_dxpl_mpio(dxpl_.get(), H5FD_MPIO_COLLECTIVE), "collective transfers");
      Handle fcpl = make(H5Pcreate(H5P_FILE_CREATE), "file creation property list");
      ok(H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "root link order");
      keep_compact(fcpl.get());
      file = make(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), "creating " + tmp);
    });
    const hid_t root = file.get();

    stage("writing the header", [&] {
      write_string_attr(root, layout::kFormatAttr, layout::kFormat);
      write_int64_attr(root, layout::kFormatVersionAttr, layout::kFormatVersion);
      write_string_attr(root, layout::kKindAttr, h.kind);
      write_text(root, layout::kConfig, h.config_yaml);
      if (!h.tokenizer_json.empty()) write_text(root, layout::kTokenizer, h.tokenizer_json);
      write_text(root, layout::kMetrics, h.metrics_jsonl);
      Handle p = create_group(root, layout::kProvenance);
      for (const auto& [key, value] : h.provenance) write_string_attr(p.get(), key, value);
      Handle s = create_group(root, layout::kState);
      for (const auto& [key, value] : h.state) write_int64_attr(s.get(), key, value);
    });
    // the attributes (Fletcher-32 covers none of them), as "name=value" lines in name order
    std::string attrs = fmt::format("{}={}\n{}={}\n{}={}\n", layout::kFormatAttr, layout::kFormat,
                                    layout::kFormatVersionAttr, layout::kFormatVersion, layout::kKindAttr, h.kind);
    add_attributes_entry("/", attrs);
    attrs.clear();
    for (const auto& [key, value] : h.provenance) attrs += fmt::format("{}={}\n", key, value);
    add_attributes_entry(layout::kProvenance, attrs);
    attrs.clear();
    for (const auto& [key, value] : h.state) attrs += fmt::format("{}={}\n", key, value);
    add_attributes_entry(layout::kState, attrs);
    std::size_t total = 0;
    for (const auto& [group, list] : c.tensors) total += list.size();
    const std::size_t middle = total / 2;
    std::size_t index = 0;
    {
      Handle tensors;
      stage("creating /tensors", [&] { tensors = create_group(root, layout::kTensors); });
      for (const auto& [group, list] : c.tensors) {
        Handle g;
        stage("creating tensor group " + group, [&] { g = create_group(tensors.get(), group); });
        for (const TensorView& t : list) {
          const std::string where = fmt::format("{}/{}/{}", layout::kTensors, group, t.name);
          if (index++ == middle && fault.armed("mid-dataset")) write_half_then_die(file.get(), g.get(), where, t, fault);
          stage("writing " + where, [&] { write_tensor(g.get(), where, t); });
        }
      }
    }
    if (!c.per_rank.empty()) {
      Handle g;
      stage("creating /ranks", [&] { g = create_group(root, layout::kRanks); });
      for (const auto& [key, row] : c.per_rank) {
        const std::int64_t n = std::int64_t(row.size()), r = ranks_.rank();
        const TensorView t{key, {ranks_.size(), n}, row.data(), DType::i64, r * n, (r + 1) * n};
        const std::string where = fmt::format("{}/{}", layout::kRanks, key);
        stage("writing " + where, [&] { write_tensor(g.get(), where, t); });
      }
    }
    stage("collecting the checksums", [&] { gather_manifest(); });
    const std::string manifest = ranks_.share(ranks_.rank() == 0 ? manifest::to_json(manifest_) : std::string());
    stage("writing the manifest", [&] { write_text(root, layout::kManifest, manifest); });
    // Every other handle is closed here, so the strict close flushes and releases the file.
    stage("closing the file", [&] {
      dxpl_ = Handle();
      if (!file.close()) fail("closing (flushing) " + tmp);
    });
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
  void sync_dir(const Fault& fault) const {
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail_errno("opening directory " + dir.string() + " to fsync it");
    fault.at("before-dir-fsync");
    const int rc = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    // EINVAL: the file system cannot sync directories; the rename is all it offers.
    if (rc != 0 && errno != EINVAL) fail_errno("fsync of directory " + dir.string());
  }

 private:
  // Links and attributes stay in the object header (checksummed chunks) however many there
  // are: HDF5's dense storage keeps them in fractal-heap blocks without checksums, and a
  // damaged one of those crashes HDF5 1.10 as it lists the group.
  void keep_compact(hid_t gcpl) const {
    ok(H5Pset_link_phase_change(gcpl, kMaxCompact, kMaxCompact - 1), "compact link storage");
    ok(H5Pset_attr_phase_change(gcpl, kMaxCompact, kMaxCompact - 1), "compact attribute storage");
  }
  static constexpr unsigned kMaxCompact = 65535;  // HDF5's limit for both

  Handle create_group(hid_t loc, const std::string& name) const {
    // Creation order is tracked (and indexed) so tensors list back in the order written.
    Handle gcpl = make(H5Pcreate(H5P_GROUP_CREATE), "group creation property list");
    ok(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "group link order");
    keep_compact(gcpl.get());
    return make(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), "creating group " + name);
  }

  void write_string_attr(hid_t loc, const std::string& name, const std::string& value) const {
    if (!h5::write_string_attr(loc, name, value)) fail("writing attribute " + name);
  }

  void write_int64_attr(hid_t loc, const std::string& name, std::int64_t value) const {
    if (!h5::write_int64_attr(loc, name, value)) fail("writing attribute " + name);
  }

  void add_text_entry(const std::string& path, const char* dtype, const std::string& text) {
    manifest::Entry e;
    e.path = path;
    e.dtype = dtype;
    e.bytes = text.size();
    e.slices = {{0, text.size(), manifest::crc32_of(text.data(), text.size())}};
    manifest_.push_back(std::move(e));
  }
  void add_attributes_entry(const std::string& path, const std::string& text) {
    add_text_entry(path, manifest::kAttributes, text);
  }

  // A scalar string dataset; rank 0 writes it (the others take part with nothing selected).
  void write_text(hid_t loc, const std::string& name, const std::string& text) {
    Handle type = h5::string_type(text.size());
    if (!type.valid()) fail("string type for dataset /" + name);
    Handle space = make(H5Screate(H5S_SCALAR), "scalar dataspace");
    Handle ds = make(H5Dcreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "creating dataset /" + name);
    Handle mem = make(H5Screate(H5S_SCALAR), "scalar dataspace");
    if (ranks_.rank() != 0) {
      ok(H5Sselect_none(space.get()), "empty selection");
      ok(H5Sselect_none(mem.get()), "empty selection");
    }
    ok(H5Dwrite(ds.get(), type.get(), mem.get(), space.get(), dxpl_.get(), text.c_str()), "writing dataset /" + name);
    if (name != layout::kManifest) add_text_entry(name, manifest::kString, text);
  }

  Handle create_tensor(hid_t loc, const std::string& where, const TensorView& t) const {
    std::vector<hsize_t> dims(t.shape.begin(), t.shape.end());
    const std::uint64_t numel = numel_of(t.shape);
    Handle space = make(dims.empty() ? H5Screate(H5S_SCALAR)
                                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "dataspace of " + where);
    Handle dcpl = make(H5Pcreate(H5P_DATASET_CREATE), "dataset creation property list");
    // Every element is written, so HDF5 need not write fill values first (MPI-IO allocates early).
    ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "fill time");
    if (!dims.empty() && numel > 0) {  // a scalar or empty tensor cannot be chunked: stored contiguous
      const std::vector<std::uint64_t> chunk64 = layout::chunk_dims({dims.begin(), dims.end()});
      const std::vector<hsize_t> chunk(chunk64.begin(), chunk64.end());
      ok(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "chunking of " + where);
      ok(H5Pset_fletcher32(dcpl.get()), "Fletcher-32 filter of " + where);
    }
    return make(H5Dcreate2(loc, t.name.c_str(), h5::file_type(t.dtype), space.get(), H5P_DEFAULT, dcpl.get(),
                           H5P_DEFAULT),
                "creating " + where);
  }

  // Writes this rank's elements [begin, end) of an open dataset (collectively: every rank
  // calls it, an empty range selecting nothing).
  void write_range(hid_t ds, const std::string& where, const TensorView& t, std::uint64_t begin,
                   std::uint64_t end) const {
    const std::uint64_t n = end - begin;
    if (begin == 0 && n == numel_of(t.shape)) {  // the whole tensor: HDF5's direct path, no selection to map
      ok(H5Dwrite(ds, h5::memory_type(t.dtype), H5S_ALL, H5S_ALL, dxpl_.get(), t.data), "writing " + where);
      return;
    }
    Handle space = make(H5Dget_space(ds), "dataspace of " + where);
    const hsize_t mem_n = std::max<hsize_t>(n, 1);
    Handle mem = make(H5Screate_simple(1, &mem_n, nullptr), "memory dataspace");
    if (n == 0) {
      ok(H5Sselect_none(space.get()), "empty selection");
      ok(H5Sselect_none(mem.get()), "empty selection");
    } else if (!t.shape.empty()) {
      const std::vector<std::uint64_t> dims(t.shape.begin(), t.shape.end());
      bool first = true;
      for (const layout::Block& b : layout::flat_range_blocks(dims, begin, end)) {
        const std::vector<hsize_t> start(b.start.begin(), b.start.end()), count(b.count.begin(), b.count.end());
        ok(H5Sselect_hyperslab(space.get(), first ? H5S_SELECT_SET : H5S_SELECT_OR, start.data(), nullptr,
                               count.data(), nullptr),
           "selecting the slice of " + where);
        first = false;
      }
    }
    ok(H5Dwrite(ds, h5::memory_type(t.dtype), mem.get(), space.get(), dxpl_.get(), t.data), "writing " + where);
  }

  void write_tensor(hid_t loc, const std::string& where, const TensorView& t) {
    Handle ds = create_tensor(loc, where, t);
    const std::uint64_t numel = numel_of(t.shape);
    const std::uint64_t begin = std::uint64_t(t.begin), end = t.end < 0 ? numel : std::uint64_t(t.end);
    if (numel > 0) write_range(ds.get(), where, t, begin, end);
    const std::uint64_t bytes = (end - begin) * dtype_size(t.dtype), total = numel * dtype_size(t.dtype);
    const std::vector<std::uint64_t> bounds = manifest::block_bounds(dtype_name(t.dtype), t.shape, total);
    manifest::Entry e;
    e.path = where;
    e.dtype = dtype_name(t.dtype);
    e.shape = t.shape;
    e.bytes = total;
    e.slices = manifest::slices_of(bounds, begin * dtype_size(t.dtype), t.data, bytes);
    manifest_.push_back(std::move(e));
  }

  // The crash test's "mid-dataset": the first half of this rank's slice reaches the file,
  // then the process dies.
  void write_half_then_die(hid_t file, hid_t loc, const std::string& where, const TensorView& t, const Fault& fault) {
    Handle ds = create_tensor(loc, where, t);
    const std::uint64_t numel = numel_of(t.shape);
    const std::uint64_t begin = std::uint64_t(t.begin), end = t.end < 0 ? numel : std::uint64_t(t.end);
    if (numel > 0) write_range(ds.get(), where, t, begin, begin + (end - begin) / 2);
    H5Fflush(file, H5F_SCOPE_GLOBAL);
    fault.at("mid-dataset");
  }

  // Collects the ranks' slice CRCs into every rank's manifest entries: each rank's pieces
  // (entry, offset, bytes, crc; a variable count, exact in double) summed into one list.
  void gather_manifest() {
    if (!ranks_.parallel()) return;
    const std::size_t world = std::size_t(ranks_.size()), me = std::size_t(ranks_.rank());
    auto shared = [&](const manifest::Entry& e) {  // the same on every rank, written by rank 0
      return e.dtype == manifest::kString || e.dtype == manifest::kAttributes;
    };
    std::vector<double> counts(world, 0.0);
    for (const manifest::Entry& e : manifest_) {
      if (!shared(e)) counts[me] += double(e.slices.size());
    }
    ranks_.comm().all_reduce_sum(std::span<double>(counts));
    std::size_t first = 0, total = 0;
    for (std::size_t r = 0; r < world; ++r) {
      if (r < me) first += std::size_t(counts[r]);
      total += std::size_t(counts[r]);
    }
    std::vector<double> all(total * 4, 0.0);
    std::size_t at = first;
    for (std::size_t i = 0; i < manifest_.size(); ++i) {
      if (shared(manifest_[i])) continue;
      for (const manifest::Slice& s : manifest_[i].slices) {
        double* row = &all[at++ * 4];
        row[0] = double(i);
        row[1] = double(s.offset);
        row[2] = double(s.bytes);
        row[3] = double(s.crc32);
      }
    }
    ranks_.comm().all_reduce_sum(std::span<double>(all));
    for (manifest::Entry& e : manifest_) {
      if (!shared(e)) e.slices.clear();
    }
    for (std::size_t k = 0; k < total; ++k) {
      const double* row = &all[k * 4];
      manifest_[std::size_t(row[0])].slices.push_back(
          {std::uint64_t(row[1]), std::uint64_t(row[2]), std::uint32_t(row[3])});
    }
  }

  std::string path_;
  const Ranks& ranks_;
  Handle dxpl_;  // H5P_DEFAULT (invalid) for one rank, collective transfers for several
  std::vector<manifest::Entry> manifest_;
};

}  // namespace

void check_fault_env() { fault_env(); }

void split_among_ranks(std::vector<TensorView>& views, int rank, int world) {
  std::uint64_t total = 0;
  for (const TensorView& t : views) total += numel_of(t.shape);
  const std::uint64_t share = (total + std::uint64_t(world) - 1) / std::uint64_t(world);
  const std::uint64_t lo = std::min(total, share * std::uint64_t(rank)), hi = std::min(total, lo + share);
  std::uint64_t at = 0;  // the list's element where this tensor starts
  for (TensorView& t : views) {
    const std::uint64_t n = numel_of(t.shape);
    const std::uint64_t b = std::clamp(lo, at, at + n) - at, e = std::clamp(hi, at, at + n) - at;
    t.data = static_cast<const char*>(t.data) + b * dtype_size(t.dtype);
    t.begin = std::int64_t(b);
    t.end = std::int64_t(std::max(b, e));
    at += n;
  }
}

void write_checkpoint(const std::string& path, const CheckpointContents& c, dist::Comm* comm) {
  h5::silence_errors();
  const Fault fault;
  const Ranks ranks(comm);
  Writer w(path, ranks);
  const Header h = share_header(c, ranks);
  w.stage("checking the contents", [&] { w.validate(h, c); });
  w.check_agreement(c);
  const std::string tmp = path + ".tmp";
  try {
    w.write_file(tmp, h, c, fault);
    fault.at("after-close");
    w.stage("syncing the file", [&] { w.sync_file(tmp); });
    fault.at("after-fsync");
    w.stage("renaming the file", [&] {
      if (ranks.rank() == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) w.fail_errno("renaming " + tmp + " over it");
    });
  } catch (...) {
    if (ranks.rank() == 0) ::unlink(tmp.c_str());  // never a directory: unlink refuses those
    throw;
  }
  fault.at("after-rename");
  w.stage("syncing the directory", [&] {
    if (ranks.rank() == 0) w.sync_dir(fault);
  });
}

}  // namespace kd::ckpt
