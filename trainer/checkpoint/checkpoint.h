// Checkpoints: one HDF5 file holding a run's config, tokenizer, metrics, provenance, integer
// state, per-rank state and named tensors (model, Adam moments, ...), and a manifest with
// every dataset's size and CRC-32. The layout is documented in docs/checkpoint-format.md so
// that h5py/h5dump users can read a file without kdtrain.
//
// Writing is collective and atomic: every rank of a Comm calls write_checkpoint with the
// same tensors (names, shapes, types), each giving the slice of each tensor it writes (its
// ZeRO shard) into the one file. The file is built under `path + ".tmp"`, fsync'ed, then
// renamed over `path`; a failed write removes the .tmp and leaves any previous `path`
// untouched. BackgroundCheckpoint does the same while the training goes on.
// Errors: a write that fails -> RuntimeFailure (exit 3) on every rank; a file that is
// missing, not a kdtrain checkpoint, of another format version or damaged -> InputError
// (exit 2). Both name the path (and the tensor or key concerned).
//
// HDF5 types stay out of this header (trainer/checkpoint/h5_util.h is internal). Not
// thread-safe: Debian's parallel HDF5 is built without its thread-safety lock, so call this
// module from one thread at a time (a background write's own thread never calls HDF5).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/errors.h"

namespace kd::dist {
class Comm;
}
namespace kd::crc32 {
class GrainSums;
}

namespace kd::ckpt {

// A checkpoint whose bytes are not what was written (a checksum or the manifest disagrees,
// HDF5 cannot read it): bad input like any other (exit 2), told apart so that a resume can
// fall back to the checkpoint before it, which a config the checkpoint does not fit cannot.
class DamagedCheckpoint : public InputError {
 public:
  using InputError::InputError;
};

namespace bytes {
class SnapshotMemory;
}
namespace manifest {
struct Entry;
}

// Element types a checkpoint stores: float32 for parameters and optimizer state, float64
// for statistics that must round-trip exactly (observer histograms), integers for
// quantized weights (int8 codes, int4 codes packed two per uint8) and zero points.
enum class DType { f32, f64, i8, u8, i32, i64 };
std::size_t dtype_size(DType t);
const char* dtype_name(DType t);

// A tensor to write: `data` holds the elements [begin, end) of the row-major tensor of
// `shape` and `dtype` (shape {} = one scalar); end < 0 means the whole tensor. In a
// collective write the ranks' ranges must cover the tensor exactly once.
struct TensorView {
  std::string name;  // used verbatim as the dataset name: dots fine, no '/', not "." or ""
  std::vector<std::int64_t> shape;
  const void* data = nullptr;  // may be null only when the range is empty
  DType dtype = DType::f32;
  std::int64_t begin = 0, end = -1;
  // For BackgroundCheckpoint: the data stays as it is until release_state() returns, so the
  // writer reads it in place (the trainer's weights and moments, changed only by the next
  // optimizer update); other views are copied when the write starts.
  bool live = false;
};

struct CheckpointContents {
  std::string kind;                               // e.g. "train"
  std::string config_yaml;                        // effective config text
  std::string tokenizer_json;                     // empty = none (no /tokenizer dataset)
  std::string metrics_jsonl;                      // the run's metrics so far
  std::map<std::string, std::string> provenance;  // kdtrain_version, blas, threads, ...
  std::map<std::string, std::int64_t> state;      // step, skipped_steps, adam_step, data_cursor, ...
  // group -> tensors in the order they are stored (and listed back by tensor_names):
  // "model", "adam_m", "adam_v", later "teacher", masks, ...
  std::map<std::string, std::vector<TensorView>> tensors;
  // Per-rank state, e.g. "data_rng": this rank's row; every rank gives the same keys and
  // lengths, stored as int64 datasets /ranks/<key> of shape [world, n].
  std::map<std::string, std::vector<std::int64_t>> per_rank;
  // CRC-32s of memory the `live` views lie in, taken by its last writer (the optimizer's
  // update, AdamW::StateSums) and true of it until the checkpoint is written: the write takes
  // a live piece's CRC-32 from them (and its ends) instead of reading all its bytes again.
  // This rank's own; none: every byte is read for its CRC-32.
  std::vector<const crc32::GrainSums*> known_crc32;
};

// Cuts the whole tensors of `views` (the same on every rank) into `world` even shares of
// the list's elements, in order, and keeps rank `rank`'s: every rank then writes a part.
void split_among_ranks(std::vector<TensorView>& views, int rank, int world);

// Writing checkpoint `path`: the text fields (kind, config, tokenizer, metrics), provenance
// and state are rank 0's (the others may leave them empty); tensors and per_rank are every
// rank's own. `comm` null = a single process.
//
// How a file is written (docs/checkpoint-format.md, "Writing"): rank 0 lays it out with HDF5
// under `path + ".tmp"` (the texts, attributes and groups, and every dataset contiguous and
// allocated, page-aligned, its bytes not yet written); then each rank writes its tensors'
// bytes at their file offsets with pwrite from several threads, taking each block's CRC-32
// from the same memory as it writes it (no HDF5 there: it is not thread-safe), and
// fdatasyncs; then the ranks' checksums are gathered, rank 0 adds the manifest, fsyncs,
// renames over `path` and fsyncs the directory. Any failure removes the .tmp and leaves a
// previous `path` untouched, on every rank's word.

// Writes `c` to `path` atomically (see above) and returns when it is done. Contents kdtrain
// cannot store (an empty or '/'-containing name, a duplicate tensor, a negative dimension,
// null data, ranges that do not cover a tensor exactly once) are rejected before anything
// touches the disk. Throws RuntimeFailure naming the path on any failure, on every rank.
//
// For the crash tests: KDTRAIN_CHECKPOINT_FAULT=<point>:<n> makes the n-th write of this
// process kill itself (SIGKILL) at <point>: mid-dataset, after-close, after-fsync,
// after-rename or before-dir-fsync; or, at write-error, fail its bytes' write half way as a
// disk would (EIO), reported where a real failure is (docs/checkpoint-format.md).
void write_checkpoint(const std::string& path, const CheckpointContents& c, dist::Comm* comm = nullptr);

// How a background checkpoint keeps the `live` views as they were at start() while the
// training goes on (train.checkpoint_copy). Costs for 2 GB on this machine's 2 cores: the
// write 1.1 s, a copy with its CRCs 0.17 s of a core.
enum class StateCopy {
  // Written in place; release_state() copies what the writer has not yet reached (the
  // caller's threads, each byte's CRC taken on the way) and returns: the least CPU, since
  // the disk's head start is not copied, and the update waits for that copy only.
  at_update,
  // The writer thread copies them all first, then releases them and writes the copy: the
  // update waits only while the copy runs, but the copy takes a core the whole time.
  first,
  // Written in place; release_state() waits until they are written: no copy, no memory,
  // and the update waits for the disk.
  none,
};

// The same write with the training going on meanwhile: start() lays the file out and copies
// what is not `live` (the caller waits for that much), and a thread writes the bytes while
// the caller trains; release_state() returns once the thread no longer reads the live views
// (call it before changing them), how it gets there set by StateCopy; poll() or finish()
// completes the file. Copies of live views go to a snapshot (up to as much memory again as
// this rank's share of them, mapped untouched and kept for the next checkpoint).
// Collective where write_checkpoint is (start, poll, finish: every rank of `comm`, at the same point);
// release_state is local. One write at a time: start() finishes the one in flight first.
// The destructor abandons a write in flight (stops the thread, removes the .tmp): a run that
// fails keeps its previous checkpoint.
class BackgroundCheckpoint {
 public:
  explicit BackgroundCheckpoint(dist::Comm* comm = nullptr, StateCopy copy = StateCopy::at_update);
  ~BackgroundCheckpoint();
  BackgroundCheckpoint(const BackgroundCheckpoint&) = delete;
  BackgroundCheckpoint& operator=(const BackgroundCheckpoint&) = delete;

  // The errors of write_checkpoint, those of the bytes' write at poll()/finish().
  void start(const std::string& path, const CheckpointContents& c);
  void release_state();
  // True when the write in flight finished on every rank and the file is now complete
  // (renamed, synced); false while a rank's bytes are still being written, or when none is
  // in flight. A failed write throws RuntimeFailure on every rank.
  bool poll();
  void finish();  // waits for the write in flight, then completes it (nothing when none)
  bool in_flight() const;
  const std::string& path() const;  // of the write in flight; "" when none

  // Seconds of the last write: start() (the layout, the copy), the waits in release_state()
  // (with at_update, its copying), and finish() (the manifest, fsync, rename); the CPU time
  // of the writing thread (its copy, CRCs and system calls: what it takes from cores the
  // training may use); the bytes start() copied, and those release_state() took back.
  struct Stats {
    double start_s = 0, release_wait_s = 0, finish_s = 0, writer_cpu_s = 0;
    std::uint64_t copied_bytes = 0, taken_back_bytes = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  friend void write_checkpoint(const std::string&, const CheckpointContents&, dist::Comm*);
  void begin(const std::string& path, const CheckpointContents& c, bool copy_unstable);
  struct Write;
  dist::Comm* comm_;
  StateCopy copy_;
  std::unique_ptr<Write> write_;
  std::unique_ptr<bytes::SnapshotMemory> snapshot_;  // the copies, kept for the next checkpoint
  Stats stats_;
};

// InputError when KDTRAIN_CHECKPOINT_FAULT is set but malformed (checked before a run starts).
void check_fault_env();

// An open checkpoint. Every accessor reads the file on demand and checks what it reads
// against the manifest in the same pass (texts and attributes whole, a tensor's HDF5 chunks
// that the read touches: docs/checkpoint-format.md); errors are InputErrors that name the
// path and the thing read. Opening checks the manifest lists every dataset of the file and
// the attributes (kind, state, provenance) match it. A file without a manifest (an older
// kdtrain's) is read unchecked, with a warning on stderr naming `kdtrain inspect --verify`.
class CheckpointReader {
 public:
  // InputError: missing file, not HDF5 (or truncated), not a kdtrain checkpoint (no or a
  // different `format` attribute), unsupported `format_version`.
  explicit CheckpointReader(const std::string& path);
  ~CheckpointReader();
  CheckpointReader(CheckpointReader&&) noexcept;  // a moved-from reader may only be destroyed or assigned
  CheckpointReader& operator=(CheckpointReader&&) noexcept;
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const std::string& path() const { return path_; }
  std::string kind() const;
  std::string config_yaml() const;
  std::string tokenizer_json() const;  // "" when the checkpoint has none
  std::string metrics_jsonl() const;
  std::map<std::string, std::string> provenance() const;
  std::int64_t state(const std::string& key) const;  // InputError naming the key if absent
  bool has_state(const std::string& key) const;

  // The group's tensors in stored order; empty when the group is absent.
  std::vector<std::string> tensor_names(const std::string& group) const;
  bool has_tensor(const std::string& group, const std::string& name) const;
  // InputError naming the first tensor of `group` that is neither among `expected` nor a
  // training-only auxiliary: a checkpoint of another model (an extra layer) is refused by
  // name, not partly read. `model` says what the names come from ("the config's model").
  void expect_only(const std::string& group, const std::vector<std::string>& expected, const std::string& model) const;
  // Training-only parameters stored beside the weights in group "model": QAT's learned scales
  // ("quant.<layer>.weight_scale") and the feature loss's projections ("distill.feature_proj.<i>.weight").
  // Readers that do not train them (eval, export, a float resume) pass them by.
  static bool is_auxiliary(const std::string& name);
  std::vector<std::int64_t> shape(const std::string& group, const std::string& name) const;
  // Reads the tensor into `out` (prod(expected_shape) floats). InputError naming the path,
  // group and tensor on: a missing tensor, a shape other than expected_shape (both printed),
  // a dtype other than float32, a Fletcher-32 checksum failure or any other read error.
  void read(const std::string& group, const std::string& name,
            const std::vector<std::int64_t>& expected_shape, float* out) const {
    read_typed(group, name, expected_shape, DType::f32, out);
  }
  // The same for the other stored types; the dataset's type must be exactly `dtype`.
  // A block of rows [row0, row0 + rows) × columns [col0, col0 + cols) of a 2-D float32
  // tensor of shape expected_shape, into `out` (rows × cols, row-major): a tensor-parallel
  // rank reads only its shard. The same errors as read().
  void read_block(const std::string& group, const std::string& name, const std::vector<std::int64_t>& expected_shape,
                  std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols, float* out) const;
  void read_typed(const std::string& group, const std::string& name,
                  const std::vector<std::int64_t>& expected_shape, DType dtype, void* out) const;
  DType dtype(const std::string& group, const std::string& name) const;
  // Elements [begin, end) of a tensor of expected_shape and type `dtype`, into `out`
  // (end - begin elements): a rank reads only its ZeRO shard of the moments.
  void read_range(const std::string& group, const std::string& name, const std::vector<std::int64_t>& expected_shape,
                  DType dtype, std::int64_t begin, std::int64_t end, void* out) const;
  // Row `rank` of the per-rank dataset /ranks/<key>; nullopt when absent or when the file
  // was written by fewer ranks.
  std::optional<std::vector<std::int64_t>> per_rank(const std::string& key, int rank) const;
  int written_by_ranks() const;  // rows of /ranks datasets; 1 for a file without them

  // Checks every dataset the manifest lists against its size and CRC-32 (reading all of
  // them; Fletcher-32 checks the chunks on the way). "" when all is well, else what is
  // wrong, naming the dataset. A file without a manifest (written before it existed, or
  // not by kdtrain's trainer) is reported as such.
  std::string verify() const;
  bool has_manifest() const;

 private:
  void load_manifest();
  // The manifest's entry of dataset `ds_path` (e.g. "tensors/model/x"); null without a manifest.
  const manifest::Entry* entry(const std::string& ds_path) const;
  std::string text(const char* name, bool required) const;  // a text dataset, checked

  struct File;  // the open HDF5 file (h5_util.h)
  std::string path_;
  std::unique_ptr<File> file_;
};

}  // namespace kd::ckpt
