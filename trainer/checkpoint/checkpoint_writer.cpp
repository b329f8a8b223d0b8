// write_checkpoint: validate the contents, agree on one header across the ranks, build the
// file under path + ".tmp" (collectively over MPI-IO with several ranks), add the manifest,
// fsync it, rename it over path, fsync the directory. Any failure removes the .tmp, on every
// rank's word: each collective stage ends with the ranks agreeing whether one failed.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <time.h>
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
#include <condition_variable>
#include <mutex>
#include <thread>
#include <omp.h>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/byte_writer.h"
#include "trainer/checkpoint/h5_util.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/checkpoint/manifest.h"
#include "trainer/dist/comm.h"
#include "base/errors.h"
#include "trainer/util/crc32.h"

namespace kd::ckpt {
namespace {

using h5::Handle;
using json = nlohmann::json;

// A fixed-length string's size is stored in 32 bits in the file.
constexpr std::size_t kMaxStringBytes = std::numeric_limits<std::uint32_t>::max();

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

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
  static const std::set<std::string> kPoints = {"mid-dataset", "write-error", "after-close", "after-fsync",
                                                "after-rename", "before-dir-fsync"};
  int n = 0;
  try {
    n = colon == std::string::npos ? 1 : std::stoi(spec.substr(colon + 1));
  } catch (const std::exception&) {
    n = 0;
  }
  const std::string point = spec.substr(0, colon);
  KD_CHECK_INPUT(kPoints.count(point) && n >= 1,
                 "KDTRAIN_CHECKPOINT_FAULT={}: expected <point>:<n>, point one of mid-dataset, write-error, "
                 "after-close, after-fsync, after-rename, before-dir-fsync, n >= 1", spec);
  return {point, n};
}

// KDTRAIN_CHECKPOINT_DIRECT_IO=0: every byte through the page cache (a file system whose
// O_DIRECT misbehaves; the tests of the buffered path). Anything else, or unset: direct I/O
// where the file system takes it.
bool direct_io_allowed() {
  const char* env = std::getenv("KDTRAIN_CHECKPOINT_DIRECT_IO");
  return env == nullptr || std::string(env) != "0";
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

  // HDF5's file access for writing: every object of a page or more starts on a page (large
  // sequential writes of whole pages, the O_DIRECT path of byte_writer.h), and the small
  // metadata (object headers, link heaps) of `datasets` datasets goes into one block of about
  // 1.5 KiB each allocated at once, at the file's start: a reader opening the file from disk
  // then reads it in one sweep rather than in a few hundred reads spread among the tensors
  // (HDF5's default, 2 KiB blocks, placed them between the datasets).
  Handle writing_access(std::size_t datasets) const {
    Handle fapl = h5::file_access_plist(true);
    if (!fapl.valid()) fail("setting up the file access property list");
    ok(H5Pset_alignment(fapl.get(), kAlignment, kAlignment), "file alignment");
    const std::uint64_t meta = (std::uint64_t(64) << 10) + std::uint64_t(datasets) * 1536;
    ok(H5Pset_meta_block_size(fapl.get(), hsize_t((meta + kAlignment - 1) / kAlignment * kAlignment)),
       "metadata block size");
    return fapl;
  }

  // Rank 0 lays the file out under `tmp` with HDF5 (serially, the sec2 driver): the header,
  // every text, and every tensor and per-rank dataset created contiguous and allocated at
  // once, aligned to pages, nothing of their bytes written. Returns the datasets' file
  // offsets in the order of the contents (tensors group by group, then per-rank keys);
  // -1 for an empty one. The other ranks return an empty list.
  std::vector<std::int64_t> lay_out(const std::string& tmp, const Header& h, const CheckpointContents& c) {
    std::vector<std::int64_t> offsets;
    if (ranks_.rank() != 0) return offsets;
    std::size_t datasets = c.per_rank.size();
    for (const auto& [group, list] : c.tensors) datasets += list.size();
    Handle fapl = writing_access(datasets);
    Handle fcpl = make(H5Pcreate(H5P_FILE_CREATE), "file creation property list");
    ok(H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "root link order");
    keep_compact(fcpl.get());
    Handle file = make(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), "creating " + tmp);
    const hid_t root = file.get();
    write_string_attr(root, layout::kFormatAttr, layout::kFormat);
    write_int64_attr(root, layout::kFormatVersionAttr, layout::kFormatVersion);
    write_string_attr(root, layout::kKindAttr, h.kind);
    write_text(root, layout::kConfig, h.config_yaml);
    if (!h.tokenizer_json.empty()) write_text(root, layout::kTokenizer, h.tokenizer_json);
    write_text(root, layout::kMetrics, h.metrics_jsonl);
    {
      Handle p = create_group(root, layout::kProvenance);
      for (const auto& [key, value] : h.provenance) write_string_attr(p.get(), key, value);
      Handle s = create_group(root, layout::kState);
      for (const auto& [key, value] : h.state) write_int64_attr(s.get(), key, value);
      Handle tensors = create_group(root, layout::kTensors);
      for (const auto& [group, list] : c.tensors) {
        Handle g = create_group(tensors.get(), group);
        for (const TensorView& t : list) {
          offsets.push_back(create_tensor(g.get(), fmt::format("{}/{}/{}", layout::kTensors, group, t.name), t.name,
                                          t.shape, t.dtype));
        }
      }
      if (!c.per_rank.empty()) {
        Handle g = create_group(root, layout::kRanks);
        for (const auto& [key, row] : c.per_rank) {
          offsets.push_back(create_tensor(g.get(), fmt::format("{}/{}", layout::kRanks, key), key,
                                          {ranks_.size(), std::int64_t(row.size())}, DType::i64));
        }
      }
    }
    if (!file.close()) fail("closing (flushing) " + tmp);
    return offsets;
  }

  // The manifest entries of every text and attribute group (the same on every rank) and of
  // every dataset, with this rank's pieces: its range of each tensor cut at the CRC blocks,
  // going to `offsets` (lay_out's, the same on every rank).
  std::vector<bytes::Piece> plan(const Header& h, const CheckpointContents& c, const std::vector<std::int64_t>& offsets) {
    auto text_entry = [&](const char* name, const std::string& text) { add_text_entry(name, manifest::kString, text); };
    text_entry(layout::kConfig, h.config_yaml);
    if (!h.tokenizer_json.empty()) text_entry(layout::kTokenizer, h.tokenizer_json);
    text_entry(layout::kMetrics, h.metrics_jsonl);
    // the attributes, as "name=value" lines in name order
    std::string attrs = fmt::format("{}={}\n{}={}\n{}={}\n", layout::kFormatAttr, layout::kFormat,
                                    layout::kFormatVersionAttr, layout::kFormatVersion, layout::kKindAttr, h.kind);
    add_text_entry("/", manifest::kAttributes, attrs);
    attrs.clear();
    for (const auto& [key, value] : h.provenance) attrs += fmt::format("{}={}\n", key, value);
    add_text_entry(layout::kProvenance, manifest::kAttributes, attrs);
    attrs.clear();
    for (const auto& [key, value] : h.state) attrs += fmt::format("{}={}\n", key, value);
    add_text_entry(layout::kState, manifest::kAttributes, attrs);

    std::vector<bytes::Piece> pieces;
    std::size_t index = 0;
    auto add = [&](const std::string& where, const TensorView& t) {
      const std::uint64_t numel = numel_of(t.shape), es = dtype_size(t.dtype);
      const std::uint64_t begin = std::uint64_t(t.begin), end = t.end < 0 ? numel : std::uint64_t(t.end);
      manifest::Entry e;
      e.path = where;
      e.dtype = dtype_name(t.dtype);
      e.shape = t.shape;
      e.bytes = numel * es;
      const std::vector<std::uint64_t> bounds = manifest::block_bounds(e.dtype, t.shape, e.bytes);
      e.slices = manifest::cut_slices(bounds, begin * es, (end - begin) * es);
      if (e.slices.empty()) e.slices.push_back({begin * es, 0, crc32::of(nullptr, 0)});
      const std::int64_t at = offsets[index++];
      for (std::size_t k = 0; k < e.slices.size(); ++k) {
        const manifest::Slice& s = e.slices[k];
        if (s.bytes == 0) continue;
        if (at < 0) fail(where + " has no place in the file");
        bytes::Piece p{manifest_.size(), k, std::uint64_t(at) + s.offset, s.bytes,
                       static_cast<const char*>(t.data) + (s.offset - begin * es), t.live};
        for (const crc32::GrainSums* known : c.known_crc32) {
          if (p.live && known->covers(p.src, p.bytes)) p.known = known;
        }
        pieces.push_back(p);
      }
      manifest_.push_back(std::move(e));
    };
    for (const auto& [group, list] : c.tensors) {
      for (const TensorView& t : list) add(fmt::format("{}/{}/{}", layout::kTensors, group, t.name), t);
    }
    for (const auto& [key, row] : c.per_rank) {
      const std::int64_t n = std::int64_t(row.size()), r = ranks_.rank();
      add(fmt::format("{}/{}", layout::kRanks, key), {key, {ranks_.size(), n}, row.data(), DType::i64, r * n, (r + 1) * n});
    }
    return pieces;
  }

  const std::string& dataset_of(const bytes::Piece& p) const { return manifest_[p.entry].path; }

  // The written pieces' CRC-32s into their manifest slices.
  void record(const std::vector<bytes::Piece>& pieces, const std::vector<std::uint32_t>& crc32) {
    for (std::size_t i = 0; i < pieces.size(); ++i) manifest_[pieces[i].entry].slices[pieces[i].slice].crc32 = crc32[i];
  }

  // Every rank's checksums into the manifest; rank 0 adds it to the file, last.
  void write_manifest(const std::string& tmp) {
    stage("collecting the checksums", [&] { gather_manifest(); });
    stage("writing the manifest", [&] {
      if (ranks_.rank() != 0) return;
      const std::string text = manifest::to_json(manifest_);
      Handle fapl = writing_access(1);
      Handle file = make(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, fapl.get()), "reopening " + tmp);
      write_text(file.get(), layout::kManifest, text);
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
  static constexpr hsize_t kAlignment = 4096;     // a page

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
    e.slices = {{0, text.size(), crc32::of(text.data(), text.size())}};
    manifest_.push_back(std::move(e));
  }
  // A scalar string dataset (rank 0 alone writes the file's structure).
  void write_text(hid_t loc, const std::string& name, const std::string& text) const {
    Handle type = h5::string_type(text.size());
    if (!type.valid()) fail("string type for dataset /" + name);
    Handle space = make(H5Screate(H5S_SCALAR), "scalar dataspace");
    Handle ds = make(H5Dcreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "creating dataset /" + name);
    ok(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text.c_str()), "writing dataset /" + name);
  }

  // A dataset of `shape` stored contiguous and allocated now (its bytes come later, by
  // pwrite at the returned offset); -1 when it has no bytes.
  std::int64_t create_tensor(hid_t loc, const std::string& where, const std::string& name,
                             const std::vector<std::int64_t>& shape, DType dtype) const {
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    Handle space = make(dims.empty() ? H5Screate(H5S_SCALAR)
                                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "dataspace of " + where);
    Handle dcpl = make(H5Pcreate(H5P_DATASET_CREATE), "dataset creation property list");
    ok(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "layout of " + where);
    ok(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "allocation of " + where);
    // every byte is written, so HDF5 need not write fill values first
    ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "fill time");
    Handle ds = make(H5Dcreate2(loc, name.c_str(), h5::file_type(dtype), space.get(), H5P_DEFAULT, dcpl.get(),
                                H5P_DEFAULT),
                     "creating " + where);
    if (numel_of(shape) == 0) return -1;
    const haddr_t at = H5Dget_offset(ds.get());
    if (at == HADDR_UNDEF) fail("no file space for " + where);
    return std::int64_t(at);
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

// One checkpoint on its way: the laid-out file, this rank's pieces and the thread writing them.
struct BackgroundCheckpoint::Write {
  Write(const std::string& p, dist::Comm* comm) : path(p), tmp(p + ".tmp"), ranks(comm), writer(p, ranks) {}
  std::string path, tmp;
  Fault fault;
  Ranks ranks;
  Writer writer;  // refers to `ranks`
  std::vector<bytes::Piece> pieces;
  int fd = -1, direct_fd = -1;
  std::thread thread;
  std::atomic<bool> stop{false}, done{false};
  std::mutex m;
  std::condition_variable cv;
  bool released = false;
  bool live = false;  // some piece is read in place (release_state waits for it or takes it back)
  std::unique_ptr<bytes::Handover> handover;  // StateCopy::at_update's
  bytes::Result result;
  double writer_cpu_s = 0;  // the thread's CPU time

  void close_fd() {
    if (fd >= 0) ::close(fd);
    if (direct_fd >= 0) ::close(direct_fd);
    fd = direct_fd = -1;
  }
  // Stops and joins the thread; rank 0 removes the .tmp (never a directory: unlink refuses those).
  void abandon(int rank) {
    stop = true;
    if (thread.joinable()) thread.join();
    close_fd();
    if (rank == 0) ::unlink(tmp.c_str());
  }
};

BackgroundCheckpoint::BackgroundCheckpoint(dist::Comm* comm, StateCopy copy)
    : comm_(comm && comm->size() > 1 ? comm : nullptr), copy_(copy) {}

BackgroundCheckpoint::~BackgroundCheckpoint() {
  if (write_) write_->abandon(Ranks(comm_).rank());
}

bool BackgroundCheckpoint::in_flight() const { return write_ != nullptr; }

const std::string& BackgroundCheckpoint::path() const {
  static const std::string none;
  return write_ ? write_->path : none;
}

void BackgroundCheckpoint::start(const std::string& path, const CheckpointContents& c) { begin(path, c, true); }

void BackgroundCheckpoint::begin(const std::string& path, const CheckpointContents& c, bool copy_unstable) {
  finish();  // one write at a time
  h5::silence_errors();
  const double t0 = omp_get_wtime();
  auto w = std::make_unique<Write>(path, comm_);
  const Ranks& ranks = w->ranks;
  Writer& wr = w->writer;
  const Header h = share_header(c, ranks);
  wr.stage("checking the contents", [&] { wr.validate(h, c); });
  wr.check_agreement(c);
  try {
    std::vector<std::int64_t> offsets;
    wr.stage("laying out the file", [&] { offsets = wr.lay_out(w->tmp, h, c); });
    if (ranks.parallel()) {  // rank 0's offsets on every rank
      std::array<std::int64_t, 1> n{std::int64_t(offsets.size())};
      ranks.comm().broadcast(n, 0);
      offsets.resize(std::size_t(n[0]));
      ranks.comm().broadcast(std::span<std::int64_t>(offsets), 0);
    }
    wr.stage("planning the writes", [&] { w->pieces = wr.plan(h, c, offsets); });
    // What may change before the writer is done with it (everything but the `live` views
    // and with them the per-rank rows) is copied now, while the caller waits. The live views
    // get places for copies too unless they are written in place only: the writer copies
    // them there first (StateCopy::first), or release_state() those it has not yet written
    // (at_update). Each place is congruent to its file offset modulo the page: O_DIRECT
    // writes it as it is.
    std::vector<bool> take(w->pieces.size());
    for (std::size_t i = 0; i < w->pieces.size(); ++i) {
      w->live = w->live || w->pieces[i].live;
      take[i] = copy_unstable && (copy_ != StateCopy::none || !w->pieces[i].live);
    }
    std::uint64_t total = 0;
    const std::vector<std::uint64_t> at = bytes::snapshot_places(w->pieces, take, total);
    if (!snapshot_) snapshot_ = std::make_unique<bytes::SnapshotMemory>();
    char* base = nullptr;
    wr.stage("reserving memory for the copies", [&] {
      try {
        if (total) base = snapshot_->reserve(total);
      } catch (const RuntimeFailure& e) {
        throw RuntimeFailure(fmt::format("{}: cannot write checkpoint: {}", path, e.what()));
      }
    });
    std::vector<std::size_t> now;
    for (std::size_t i = 0; i < w->pieces.size(); ++i) {
      if (!take[i]) continue;
      if (w->pieces[i].live) {
        w->pieces[i].copy = base + at[i];
      } else {
        now.push_back(i);
      }
    }
    const std::int64_t n = std::int64_t(now.size());
    std::uint64_t copied = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : copied)
    for (std::int64_t k = 0; k < n; ++k) {
      const std::size_t i = now[std::size_t(k)];
      bytes::Piece& p = w->pieces[i];
      std::memcpy(base + at[i], p.src, p.bytes);
      p.src = base + at[i];
      copied += p.bytes;
    }
    stats_.copied_bytes = copied;
    wr.stage("opening the file", [&] {
      w->fd = ::open(w->tmp.c_str(), O_WRONLY | O_CLOEXEC);
      if (w->fd < 0) wr.fail_errno("opening " + w->tmp + " to write the tensors");
      if (direct_io_allowed()) w->direct_fd = ::open(w->tmp.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT);  // -1: buffered
    });
    if (copy_unstable && copy_ == StateCopy::at_update && w->live) {
      w->handover = std::make_unique<bytes::Handover>(w->pieces.size());
    }
  } catch (...) {
    w->abandon(w->ranks.rank());
    throw;
  }
  const std::int64_t half = std::int64_t(w->pieces.size() / 2);
  const std::int64_t die_after = w->fault.armed("mid-dataset") ? half : -1;
  const std::int64_t fail_after = w->fault.armed("write-error") ? half : -1;
  // One thread with direct I/O (it waits on the device, not the CPU: a second one measured
  // slower, 1.12 s against 0.84 s for 2 GB, and takes a core from training); through the page
  // cache the copies are the work, so the run's threads share it.
  bytes::WriteOptions o;
  o.threads = w->direct_fd >= 0 ? 1 : std::max(1, omp_get_max_threads());
  o.direct_fd = w->direct_fd;
  o.direct_mem_align = bytes::direct_memory_alignment(w->direct_fd);
  o.handover = w->handover.get();
  o.die_after = die_after;
  o.fail_after = fail_after;
  Write* raw = w.get();
  o.read_done = [raw] {
    std::lock_guard lock(raw->m);
    raw->released = true;
    raw->cv.notify_all();
  };
  raw->thread = std::thread([raw, o] {
    const double cpu0 = thread_cpu_seconds();
    raw->result = bytes::write_pieces(raw->fd, raw->pieces, o, raw->stop);
    raw->writer_cpu_s = thread_cpu_seconds() - cpu0;
    raw->done = true;
  });
  write_ = std::move(w);
  stats_.start_s = omp_get_wtime() - t0;
  stats_.release_wait_s = 0;
  stats_.taken_back_bytes = 0;
}

void BackgroundCheckpoint::release_state() {
  if (!write_ || !write_->live) return;
  const double t0 = omp_get_wtime();
  if (write_->handover) {
    stats_.taken_back_bytes += write_->handover->take_back(write_->pieces);
  } else {
    std::unique_lock lock(write_->m);
    write_->cv.wait(lock, [&] { return write_->released; });
  }
  stats_.release_wait_s += omp_get_wtime() - t0;
}

bool BackgroundCheckpoint::poll() {
  if (!write_) return false;
  if (Ranks(comm_).any(!write_->done.load())) return false;
  finish();
  return true;
}

void BackgroundCheckpoint::finish() {
  if (!write_) return;
  const double t0 = omp_get_wtime();
  std::unique_ptr<Write> w = std::move(write_);
  const Ranks& ranks = w->ranks;
  Writer& wr = w->writer;
  try {
    w->thread.join();
    stats_.writer_cpu_s = w->writer_cpu_s;
    w->close_fd();
    wr.stage("writing the tensors", [&] {
      const bytes::Result& r = w->result;
      if (r.error.empty()) return;
      if (r.failed_piece < 0) wr.fail(fmt::format("{}: {}", w->tmp, r.error));
      wr.fail(fmt::format("{}: {}: {}", w->tmp, wr.dataset_of(w->pieces[std::size_t(r.failed_piece)]), r.error));
    });
    wr.record(w->pieces, w->result.crc32);
    wr.write_manifest(w->tmp);
    w->fault.at("after-close");
    wr.stage("syncing the file", [&] {
      if (ranks.rank() == 0) wr.sync_file(w->tmp);
    });
    w->fault.at("after-fsync");
    wr.stage("renaming the file", [&] {
      if (ranks.rank() == 0 && ::rename(w->tmp.c_str(), w->path.c_str()) != 0) wr.fail_errno("renaming " + w->tmp + " over it");
    });
  } catch (...) {
    w->abandon(ranks.rank());
    throw;
  }
  w->fault.at("after-rename");
  wr.stage("syncing the directory", [&] {
    if (ranks.rank() == 0) wr.sync_dir(w->fault);
  });
  stats_.finish_s = omp_get_wtime() - t0;
}

void write_checkpoint(const std::string& path, const CheckpointContents& c, dist::Comm* comm) {
  BackgroundCheckpoint b(comm);
  b.begin(path, c, false);  // the caller waits: every view stays as it is until finish
  b.finish();
}

}  // namespace kd::ckpt
