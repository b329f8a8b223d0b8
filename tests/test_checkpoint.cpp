// HDF5 checkpoints (trainer/checkpoint): a bit-exact round trip of every part, stored tensor
// order, the chunk/filter layout, atomic overwrite (a failed write leaves the previous file
// untouched and no .tmp), every malformed or damaged file an InputError naming the path and
// the part, and (when /usr/bin/python3 has h5py) the file read by h5py without kdtrain.
// Runs without MPI_Init: one process, HDF5's default sec2 driver, from the parallel build.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/temp_files.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/layout.h"
#include "base/errors.h"

namespace {

using kdtest::TempDir;
using kdtest::slurp;
using kdtest::write_bytes;

using kd::InputError;
using kd::RuntimeFailure;
using kd::ckpt::CheckpointContents;
using kd::ckpt::CheckpointReader;
using kd::ckpt::TensorView;
using kd::ckpt::write_checkpoint;

const std::string kH5pyScript = std::string(KD_FIXTURES_DIR) + "/../checkpoint_h5py_check.py";

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

// Owns the float buffers behind a CheckpointContents' TensorViews.
struct Tensors {
  std::vector<std::vector<float>> buffers;
  const float* add(std::vector<float> v) {
    buffers.push_back(std::move(v));
    return buffers.back().data();
  }
};

std::vector<float> pattern(std::int64_t n, float scale, float offset) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[std::size_t(i)] = offset + scale * static_cast<float>(i);
  return v;
}

// Values whose bits must survive: signed zeros, subnormals, infinities, a NaN payload, extremes.
std::vector<float> special_values() {
  const std::uint32_t nan_bits = 0x7FC12345u;
  float payload_nan;
  std::memcpy(&payload_nan, &nan_bits, 4);
  return {0.0f, -0.0f, std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), payload_nan,
          std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(), 1.0f / 3.0f};
}

std::string big_metrics() {
  std::string s;
  for (int step = 0; step < 40000; ++step) {
    s += "{\"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(10.0 / (step + 1)) +
         ", \"note\": \"ü→✓\"}\n";
  }
  return s;  // ~2.4 MB
}

struct Fixture {
  Tensors store;
  CheckpointContents c;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> model_shapes;
};

// Every part filled: non-ASCII text, a multi-megabyte metrics string, extreme int64 state,
// four tensor groups with 0-D..3-D shapes, an empty tensor and one tensor over one chunk.
void fill(Fixture& f) {
  CheckpointContents& c = f.c;
  c.kind = "train";
  c.config_yaml = "model:\n  d_model: 64  # naïve Ελληνικά 日本語 🙂\nrun:\n  name: \"ü\"\n";
  c.tokenizer_json = "{\"format\": \"kdtrain-bpe\", \"merges\": [[32, 116]], \"note\": \"Кириллица\"}";
  c.metrics_jsonl = big_metrics();
  c.provenance = {{"kdtrain_version", "0.1.0"}, {"blas", "OpenBLAS 0.3.21 (openmp)"}, {"threads", "2"},
                  {"host", "nœud-7"}, {"empty", ""}};
  c.state = {{"step", 1234},
             {"skipped_steps", 0},
             {"adam_step", 1230},
             {"data_cursor", 987654321012345},
             {"negative", -42},
             {"max", std::numeric_limits<std::int64_t>::max()},
             {"min", std::numeric_limits<std::int64_t>::min()}};
  // Deliberately not in name order: tensor_names must return this order.
  f.model_shapes = {{"model.layers.1.mlp.up_proj.weight", {12, 8}},
                    {"model.layers.0.self_attn.q_proj.weight", {8, 8}},
                    {"model.norm.weight", {8}},
                    {"lm_head.weight", {1100, 1000}},  // 1.1M elements: two chunks of [1048, 1000]
                    {"model.rope.cache", {2, 3, 4}},
                    {"special", {10}},
                    {"scalar", {}},
                    {"empty", {0, 5}}};
  float scale = 0.001f;
  for (const char* group : {"model", "adam_m", "adam_v"}) {
    std::vector<TensorView>& list = c.tensors[group];
    for (const auto& [name, shape] : f.model_shapes) {
      std::vector<float> v = name == "special" ? special_values() : pattern(numel(shape), scale, -1.5f);
      list.push_back({name, shape, numel(shape) == 0 ? nullptr : f.store.add(std::move(v))});
    }
    scale *= 1.7f;
  }
  c.tensors["teacher"].push_back({"model.embed_tokens.weight", {16, 4}, f.store.add(pattern(64, 0.25f, 3.0f))});
}

// Reads every tensor back and compares it bit by bit with what was written.
void expect_tensors_equal(const CheckpointReader& r, const CheckpointContents& c) {
  for (const auto& [group, list] : c.tensors) {
    std::vector<std::string> names;
    for (const TensorView& t : list) names.push_back(t.name);
    EXPECT_EQ(r.tensor_names(group), names) << group;
    for (const TensorView& t : list) {
      ASSERT_TRUE(r.has_tensor(group, t.name)) << group << "/" << t.name;
      EXPECT_EQ(r.shape(group, t.name), t.shape) << group << "/" << t.name;
      const std::size_t n = static_cast<std::size_t>(numel(t.shape));
      std::vector<float> back(n + 1, 7.0f);  // +1: a guard element that must stay untouched
      r.read(group, t.name, t.shape, back.data());
      if (n > 0) {
        EXPECT_EQ(std::memcmp(back.data(), t.data, n * sizeof(float)), 0) << group << "/" << t.name;
      }
      EXPECT_EQ(back[n], 7.0f) << group << "/" << t.name;
    }
  }
}

// Runs f, expects an exception of type E whose message contains every needle.
template <class E>
void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << needles.front();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "\"" << n << "\" not in: " << msg;
  }
}

std::string minimal(const std::string& path, float value = 1.0f) {
  static std::vector<float> data(6);
  std::fill(data.begin(), data.end(), value);
  CheckpointContents c;
  c.kind = "train";
  c.config_yaml = "a: 1\n";
  c.metrics_jsonl = "";
  c.state = {{"step", 5}};
  c.tensors["model"] = {{"w", {2, 3}, data.data()}};
  write_checkpoint(path, c);
  return slurp(path);
}

// A few C-API edits of a written file, for the error tests.
void set_root_int64(const std::string& path, const char* name, std::int64_t v) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Adelete(f, name), 0);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
  H5Aclose(a);
  H5Sclose(space);
  ASSERT_GE(H5Fclose(f), 0);
}

TEST(CheckpointLayout, ChunkDims) {
  using kd::ckpt::layout::chunk_dims;
  EXPECT_EQ(chunk_dims({10}), (std::vector<std::uint64_t>{10}));
  EXPECT_EQ(chunk_dims({1u << 20}), (std::vector<std::uint64_t>{1u << 20}));
  EXPECT_EQ(chunk_dims({(1u << 20) + 1}), (std::vector<std::uint64_t>{1u << 20}));
  EXPECT_EQ(chunk_dims({1100, 1000}), (std::vector<std::uint64_t>{1048, 1000}));
  EXPECT_EQ(chunk_dims({32000, 4096}), (std::vector<std::uint64_t>{256, 4096}));
  EXPECT_EQ(chunk_dims({4, 4, 8}), (std::vector<std::uint64_t>{4, 4, 8}));
  EXPECT_EQ(chunk_dims({64, 128, 1024}), (std::vector<std::uint64_t>{8, 128, 1024}));
  // A row over 2^20 elements is itself split, so a chunk never exceeds 4 MiB.
  EXPECT_EQ(chunk_dims({3, 5u << 20}), (std::vector<std::uint64_t>{1, 1u << 20}));
  EXPECT_EQ(chunk_dims({7, 3000, 1000}), (std::vector<std::uint64_t>{1, 1048, 1000}));
}

TEST(Checkpoint, RoundTripIsBitExact) {
  TempDir dir;
  Fixture f;
  fill(f);
  const std::string path = dir.file("ckpt.h5");
  write_checkpoint(path, f.c);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const CheckpointReader r(path);
  EXPECT_EQ(r.path(), path);
  EXPECT_EQ(r.kind(), "train");
  EXPECT_EQ(r.config_yaml(), f.c.config_yaml);
  EXPECT_EQ(r.tokenizer_json(), f.c.tokenizer_json);
  EXPECT_EQ(r.metrics_jsonl(), f.c.metrics_jsonl);
  EXPECT_EQ(r.provenance(), f.c.provenance);
  for (const auto& [key, value] : f.c.state) {
    EXPECT_TRUE(r.has_state(key)) << key;
    EXPECT_EQ(r.state(key), value) << key;
  }
  EXPECT_FALSE(r.has_state("nope"));
  expect_tensors_equal(r, f.c);
  EXPECT_TRUE(r.tensor_names("absent_group").empty());
  EXPECT_FALSE(r.has_tensor("absent_group", "x"));
  EXPECT_FALSE(r.has_tensor("model", "absent"));

  // The reader is movable; the moved-to one reads the same file.
  CheckpointReader moved = CheckpointReader(path);
  EXPECT_EQ(moved.state("step"), 1234);
}

// Writing closes everything it opens; a reader holds one file until it is destroyed.
TEST(Checkpoint, NoHdf5ObjectLeftOpen) {
  TempDir dir;
  Fixture f;
  fill(f);
  const std::string path = dir.file("ckpt.h5");
  write_checkpoint(path, f.c);
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
  {
    const CheckpointReader r(path);
    expect_tensors_equal(r, f.c);
    (void)r.provenance();
    (void)r.metrics_jsonl();
    EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 1);  // the file itself
  }
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST(Checkpoint, EmptyPartsAndNoTokenizer) {
  TempDir dir;
  const std::string path = dir.file("empty.h5");
  CheckpointContents c;  // everything empty, no tensor group at all
  write_checkpoint(path, c);
  const CheckpointReader r(path);
  EXPECT_EQ(r.kind(), "");
  EXPECT_EQ(r.config_yaml(), "");
  EXPECT_EQ(r.tokenizer_json(), "");
  EXPECT_EQ(r.metrics_jsonl(), "");
  EXPECT_TRUE(r.provenance().empty());
  EXPECT_TRUE(r.tensor_names("model").empty());
  // (Opened a second time while the reader holds it: the reader uses HDF5's default access.)
  // An empty tokenizer is an absent dataset, not an empty one.
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  EXPECT_EQ(H5Lexists(file, "tokenizer", H5P_DEFAULT), 0);
  EXPECT_GT(H5Lexists(file, "metrics", H5P_DEFAULT), 0);
  H5Fclose(file);
}

// The stored layout, checked with the C API: contiguous, unfiltered, page-aligned float32
// datasets (docs/checkpoint-format.md), string types.
TEST(Checkpoint, LayoutOnDisk) {
  TempDir dir;
  Fixture f;
  fill(f);
  const std::string path = dir.file("layout.h5");
  write_checkpoint(path, f.c);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);

  const hid_t ds = H5Dopen2(file, "tensors/model/lm_head.weight", H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  const hid_t dcpl = H5Dget_create_plist(ds);
  ASSERT_EQ(H5Pget_layout(dcpl), H5D_CONTIGUOUS);
  EXPECT_EQ(H5Pget_nfilters(dcpl), 0);
  const haddr_t offset = H5Dget_offset(ds);
  ASSERT_NE(offset, HADDR_UNDEF);
  EXPECT_EQ(offset % 4096, 0u);
  EXPECT_EQ(H5Dget_storage_size(ds), 1100u * 1000u * 4u);
  const hid_t type = H5Dget_type(ds);
  EXPECT_GT(H5Tequal(type, H5T_IEEE_F32LE), 0);
  H5Tclose(type);
  H5Pclose(dcpl);
  H5Dclose(ds);

  const hid_t cfg = H5Dopen2(file, "config", H5P_DEFAULT);
  const hid_t ctype = H5Dget_type(cfg);
  EXPECT_EQ(H5Tget_class(ctype), H5T_STRING);
  EXPECT_EQ(H5Tis_variable_str(ctype), 0);
  EXPECT_EQ(H5Tget_cset(ctype), H5T_CSET_UTF8);
  EXPECT_EQ(H5Tget_size(ctype), f.c.config_yaml.size());
  H5Tclose(ctype);
  H5Dclose(cfg);
  ASSERT_GE(H5Fclose(file), 0);
}

TEST(Checkpoint, OverwriteReplacesTheFile) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  minimal(path, 1.0f);
  // A .tmp left by a crashed run is simply replaced.
  write_bytes(path + ".tmp", "stale half-written checkpoint");
  minimal(path, 2.0f);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const CheckpointReader r(path);
  std::vector<float> w(6);
  r.read("model", "w", {2, 3}, w.data());
  EXPECT_EQ(w[0], 2.0f);
}

// A write that fails leaves the previous checkpoint byte for byte, and no .tmp.
TEST(Checkpoint, FailedWriteLeavesPreviousFileIntact) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  const std::string before = minimal(path);
  std::vector<float> data(6, 3.0f);

  auto attempt = [&](std::vector<TensorView> tensors, const std::vector<std::string>& needles) {
    CheckpointContents c;
    c.kind = "train";
    c.tensors["model"] = std::move(tensors);
    expect_error<RuntimeFailure>([&] { write_checkpoint(path, c); }, needles);
    EXPECT_EQ(slurp(path), before);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  };
  attempt({{"ok", {2, 3}, data.data()}, {"w", {2, 3}, nullptr}}, {path, "model/w", "null"});
  attempt({{"w", {2, -3}, data.data()}}, {path, "model/w", "negative"});
  attempt({{"w", {2, 3}, data.data()}, {"w", {6}, data.data()}}, {path, "model/w", "twice"});
  attempt({{"a/b", {6}, data.data()}}, {path, "model/a/b", "'/'"});
  attempt({{"", {6}, data.data()}}, {path, "empty"});
}

// A genuine I/O failure in the middle of writing: a file-size limit (effective even for root)
// makes HDF5's write fail with EFBIG after the .tmp has been created and partly written.
TEST(Checkpoint, IoFailureMidWriteRemovesTmp) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  const std::string before = minimal(path);
  std::vector<float> big(1u << 20, 0.5f);  // 4 MiB
  CheckpointContents c;
  c.kind = "train";
  c.tensors["model"] = {{"big", {1024, 1024}, big.data()}};

  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of the signal
  struct rlimit small = saved;
  small.rlim_cur = 256 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  try {
    write_checkpoint(path, c);
    ADD_FAILURE() << "write past the file-size limit succeeded";
  } catch (const RuntimeFailure& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    // the layout allocates the whole file (HDF5 extends it as it closes): the limit is hit there
    EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(slurp(path), before);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Checkpoint, WriteIntoMissingDirectoryIsRuntimeFailure) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/ckpt.h5");
  expect_error<RuntimeFailure>([&] { minimal(path); }, {path, "creating"});
}

TEST(CheckpointErrors, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("absent.h5");
  expect_error<InputError>([&] { CheckpointReader r(path); }, {path, "not found"});
}

TEST(CheckpointErrors, NotHdf5) {
  TempDir dir;
  const std::string path = dir.file("text.h5");
  write_bytes(path, "model:\n  d_model: 64\n");
  expect_error<InputError>([&] { CheckpointReader r(path); }, {path, "not an HDF5 file"});
}

TEST(CheckpointErrors, Truncated) {
  TempDir dir;
  const std::string path = dir.file("cut.h5");
  Fixture f;
  fill(f);
  write_checkpoint(path, f.c);
  const std::string bytes = slurp(path);
  write_bytes(path, bytes.substr(0, bytes.size() / 2));
  expect_error<InputError>([&] { CheckpointReader r(path); }, {path, "damaged"});
}

TEST(CheckpointErrors, Hdf5WithoutFormatAttribute) {
  TempDir dir;
  const std::string path = dir.file("other.h5");
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t g = H5Gcreate2(f, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Gclose(g);
  ASSERT_GE(H5Fclose(f), 0);
  expect_error<InputError>([&] { CheckpointReader r(path); }, {path, "not a kdtrain checkpoint", "format"});
}

TEST(CheckpointErrors, OtherFormatString) {
  TempDir dir;
  const std::string path = dir.file("other.h5");
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, 5);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(H5Awrite(a, type, "keras"), 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  ASSERT_GE(H5Fclose(f), 0);
  expect_error<InputError>([&] { CheckpointReader r(path); }, {path, "not a kdtrain checkpoint", "\"keras\""});
}

TEST(CheckpointErrors, WrongFormatVersion) {
  TempDir dir;
  const std::string path = dir.file("v2.h5");
  minimal(path);
  set_root_int64(path, "format_version", 2);
  expect_error<InputError>([&] { CheckpointReader r(path); }, {path, "format_version 2", "reads version 1"});
}

TEST(CheckpointErrors, MissingTensorAndState) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  minimal(path);
  const CheckpointReader r(path);
  std::vector<float> out(6);
  expect_error<InputError>([&] { r.read("model", "v", {2, 3}, out.data()); }, {path, "model/v", "not found"});
  expect_error<InputError>([&] { r.read("teacher", "w", {2, 3}, out.data()); }, {path, "teacher/w", "not found"});
  expect_error<InputError>([&] { r.shape("model", "v"); }, {path, "model/v"});
  expect_error<InputError>([&] { r.state("data_cursor"); }, {path, "\"data_cursor\""});
}

TEST(CheckpointErrors, ShapeMismatchPrintsBoth) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  minimal(path);
  const CheckpointReader r(path);
  std::vector<float> out(6);
  expect_error<InputError>([&] { r.read("model", "w", {3, 2}, out.data()); }, {path, "model/w", "[2, 3]", "[3, 2]"});
  expect_error<InputError>([&] { r.read("model", "w", {6}, out.data()); }, {path, "model/w", "[2, 3]", "[6]"});
}

TEST(CheckpointErrors, WrongDtype) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  minimal(path);
  {  // HDF5 would convert a float64 dataset silently; a file without a manifest (whose
     // entries would refuse the type first) still gets the type checked
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "manifest", H5P_DEFAULT), 0);
    const hsize_t dims[2] = {2, 3};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t ds = H5Dcreate2(f, "tensors/model/d", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const double v[6] = {1, 2, 3, 4, 5, 6};
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(ds);
    H5Sclose(space);
    ASSERT_GE(H5Fclose(f), 0);
  }
  const CheckpointReader r(path);
  std::vector<float> out(6);
  expect_error<InputError>([&] { r.read("model", "d", {2, 3}, out.data()); }, {path, "model/d", "expected float32"});
}

// Where in the file adam_v/lm_head.weight's elements 3000..3015 are stored: they occur once
// (the other tensors of its group, same pattern, are shorter; the other groups use other scales).
std::size_t lm_head_moment_offset(const std::string& file_bytes, const TensorView& t) {
  EXPECT_EQ(t.name, "lm_head.weight");
  const std::string needle(reinterpret_cast<const char*>(static_cast<const float*>(t.data) + 3000), 64);
  const std::size_t at = file_bytes.find(needle);
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(file_bytes.find(needle, at + 1), std::string::npos);
  return at;
}

// Flips one byte inside a tensor's stored bytes: the manifest's CRC-32 must refuse it.
TEST(CheckpointErrors, CorruptedPayloadFailsChecksum) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  Fixture f;
  fill(f);
  write_checkpoint(path, f.c);
  const TensorView& t = f.c.tensors["adam_v"][3];
  std::string bytes = slurp(path);
  const std::size_t at = lm_head_moment_offset(bytes, t);
  ASSERT_FALSE(HasFailure());
  bytes[at + 17] ^= 0x10;
  write_bytes(path, bytes);

  const CheckpointReader r(path);
  std::vector<float> out(static_cast<std::size_t>(numel(t.shape)));
  expect_error<InputError>([&] { r.read("adam_v", t.name, t.shape, out.data()); },
                           {path, "adam_v/lm_head.weight", "CRC-32"});
  // The other tensors still read.
  r.read("model", t.name, t.shape, out.data());
  EXPECT_EQ(std::memcmp(out.data(), f.c.tensors["model"][3].data, out.size() * 4), 0);
}

// The manifest: a whole file verifies; a flipped byte in a tensor's data and in the config
// text (both caught by the manifest's CRC-32s) make verify() name the dataset.
TEST(CheckpointManifest, VerifyNamesTheDamagedDataset) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  Fixture f;
  fill(f);
  write_checkpoint(path, f.c);
  const std::string whole = slurp(path);
  {
    const CheckpointReader r(path);
    ASSERT_TRUE(r.has_manifest());
    EXPECT_EQ(r.verify(), "");
  }
  std::string bytes = whole;
  const std::size_t at = lm_head_moment_offset(bytes, f.c.tensors["adam_v"][3]);
  ASSERT_FALSE(HasFailure());
  bytes[at + 17] ^= 0x10;
  write_bytes(path, bytes);
  EXPECT_NE(CheckpointReader(path).verify().find("tensors/adam_v/lm_head.weight"), std::string::npos)
      << CheckpointReader(path).verify();

  bytes = whole;
  const std::size_t text = bytes.find("naïve");
  ASSERT_NE(text, std::string::npos);
  bytes[text + 1] = 'X';
  write_bytes(path, bytes);
  const std::string problem = CheckpointReader(path).verify();
  EXPECT_NE(problem.find("/config does not match the manifest"), std::string::npos) << problem;
}

// A flat range of a row-major tensor as hyperslab boxes: every range of small shapes, the
// boxes' elements in order are exactly the range, and there are at most 2·rank − 1 of them.
TEST(CheckpointLayout, FlatRangeBlocksTileTheRange) {
  using kd::ckpt::layout::flat_range_blocks;
  const std::vector<std::vector<std::uint64_t>> shapes = {{7}, {3, 5}, {2, 3, 4}, {1, 6}, {4, 1, 3}, {2, 2, 2, 3}};
  for (const auto& dims : shapes) {
    std::uint64_t total = 1;
    for (auto d : dims) total *= d;
    for (std::uint64_t b = 0; b <= total; ++b) {
      for (std::uint64_t e = b; e <= total; ++e) {
        const auto blocks = flat_range_blocks(dims, b, e);
        std::vector<std::uint64_t> got;
        for (const auto& blk : blocks) {
          ASSERT_EQ(blk.start.size(), dims.size());
          // the box's elements in row-major order
          std::vector<std::uint64_t> idx(dims.size(), 0);
          std::uint64_t n = 1;
          for (auto c : blk.count) n *= c;
          for (std::uint64_t k = 0; k < n; ++k) {
            std::uint64_t rem = k, flat = 0;
            for (std::size_t j = dims.size(); j-- > 0;) {
              idx[j] = blk.start[j] + rem % blk.count[j];
              rem /= blk.count[j];
            }
            for (std::size_t j = 0; j < dims.size(); ++j) flat = flat * dims[j] + idx[j];
            got.push_back(flat);
          }
        }
        std::vector<std::uint64_t> want(e - b);
        std::iota(want.begin(), want.end(), b);
        ASSERT_EQ(got, want) << "dims rank " << dims.size() << " [" << b << ", " << e << ")";
        EXPECT_LE(blocks.size(), 2 * dims.size() - 1);
      }
    }
  }
  EXPECT_EQ(flat_range_blocks({}, 0, 1).size(), 1u);
  EXPECT_TRUE(flat_range_blocks({}, 0, 0).empty());
}

// split_among_ranks: the ranks' shares cover every tensor exactly once, in order, and each
// view's data points at its first element.
TEST(CheckpointLayout, SplitAmongRanksCoversEachTensorOnce) {
  std::vector<float> a(10), b(7), c(1);
  for (int world : {1, 2, 3, 4, 7, 20}) {
    std::vector<std::int64_t> covered(3, 0);
    for (int r = 0; r < world; ++r) {
      std::vector<TensorView> v = {{"a", {2, 5}, a.data()}, {"b", {7}, b.data()}, {"c", {}, c.data()}};
      kd::ckpt::split_among_ranks(v, r, world);
      for (std::size_t i = 0; i < v.size(); ++i) {
        ASSERT_LE(v[i].begin, v[i].end);
        covered[i] += v[i].end - v[i].begin;
        const float* base = i == 0 ? a.data() : i == 1 ? b.data() : c.data();
        if (v[i].end > v[i].begin) {
          EXPECT_EQ(static_cast<const float*>(v[i].data), base + v[i].begin);
        }
      }
    }
    EXPECT_EQ(covered, (std::vector<std::int64_t>{10, 7, 1})) << world << " ranks";
  }
}

// The file read by h5py, i.e. by a user without kdtrain (skipped when h5py is absent).
TEST(Checkpoint, ReadableByH5py) {
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with h5py not available (Debian: python3-h5py)";
  }
  TempDir dir;
  Fixture f;
  fill(f);
  const std::string path = dir.file("h5py.h5");
  write_checkpoint(path, f.c);
  const std::string cmd = "/usr/bin/python3 " + kH5pyScript + " " + path;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
