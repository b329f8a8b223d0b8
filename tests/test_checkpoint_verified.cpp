// Every checkpoint read is checked against the manifest in the same pass (issue 20): a tensor
// edited in place (HDF5 recomputes its Fletcher-32, the manifest's CRC is stale), a text or
// an attribute changed, a dataset the manifest does not list, a manifest cut short — each is
// an InputError naming the file and the dataset, for whole reads, a ZeRO rank's range and a
// tensor-parallel rank's block alike; a read of chunks that are intact still succeeds. A
// file without a manifest (an older kdtrain's) is read with a warning.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/errors.h"
#include "tests/support/temp_files.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/layout.h"
#include "trainer/checkpoint/manifest.h"

namespace {

using kd::InputError;
using kd::ckpt::CheckpointContents;
using kd::ckpt::CheckpointReader;
using kd::ckpt::DType;
using kdtest::TempDir;

constexpr std::int64_t kRows = 1100, kCols = 1000;  // two chunks: rows [0, 1048) and [1048, 1100)

float value(std::int64_t i) { return 0.5f + 0.001f * float(i % 4099); }

// A checkpoint with a two-chunk tensor "big", a small one, state, a tokenizer and a config.
struct Written {
  TempDir dir;
  std::string path = dir.file("ckpt.h5");
  std::vector<float> big = std::vector<float>(std::size_t(kRows * kCols));
  std::vector<float> small = std::vector<float>(64);
  Written() {
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = value(std::int64_t(i));
    for (std::size_t i = 0; i < small.size(); ++i) small[i] = float(i);
    CheckpointContents c;
    c.kind = "train";
    c.config_yaml = "model:\n  norm_eps: 1e-05\n";
    c.tokenizer_json = "{\"format\": \"kdtrain-bpe\"}";
    c.metrics_jsonl = "{\"step\": 1}\n";
    c.state = {{"step", 7}};
    c.provenance = {{"kdtrain_version", "test"}};
    c.tensors["model"] = {{"big", {kRows, kCols}, big.data()}, {"small", {8, 8}, small.data()}};
    kd::ckpt::write_checkpoint(path, c);
  }
};

// Runs `edit` on the file opened for writing with HDF5 itself (as h5py would).
template <class F>
void edit_file(const std::string& path, F edit) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  edit(f);
  ASSERT_GE(H5Fclose(f), 0);
}

// Sets element `at` of a float32 dataset in place: HDF5 recomputes the chunk's Fletcher-32.
void set_element(const std::string& path, const char* dataset, std::uint64_t at, float v) {
  edit_file(path, [&](hid_t f) {
    const hid_t ds = H5Dopen2(f, dataset, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    const hid_t space = H5Dget_space(ds);
    const int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[2] = {1, 1};
    H5Sget_simple_extent_dims(space, dims, nullptr);
    hsize_t start[2] = {rank == 2 ? at / dims[1] : at, rank == 2 ? at % dims[1] : 0}, count[2] = {1, 1};
    ASSERT_GE(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr), 0);
    const hsize_t one = 1;
    const hid_t mem = H5Screate_simple(1, &one, nullptr);
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, &v), 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(ds);
  });
}

// Replaces a root text dataset with `text` (a fixed-length string, as kdtrain writes).
void replace_text(const std::string& path, const char* name, const std::string& text) {
  edit_file(path, [&](hid_t f) {
    ASSERT_GE(H5Ldelete(f, name, H5P_DEFAULT), 0);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, text.size());
    H5Tset_cset(type, H5T_CSET_UTF8);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t ds = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    ASSERT_GE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()), 0);
    H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(type);
  });
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

void expect_mentions(const std::string& message, std::initializer_list<std::string> parts) {
  for (const std::string& p : parts) EXPECT_NE(message.find(p), std::string::npos) << "missing \"" << p << "\" in: " << message;
}

std::vector<float> read_range(const CheckpointReader& r, std::int64_t b, std::int64_t e) {
  std::vector<float> out(std::size_t(e - b));
  r.read_range("model", "big", {kRows, kCols}, DType::f32, b, e, out.data());
  return out;
}

TEST(CheckpointChunks, BoundsAreTheHdf5Chunks) {
  using kd::ckpt::layout::chunk_bounds;
  using kd::ckpt::layout::chunk_count;
  EXPECT_EQ(chunk_bounds({1100, 1000}), (std::vector<std::uint64_t>{0, 1048000, 1100000}));
  EXPECT_EQ(chunk_bounds({10}), (std::vector<std::uint64_t>{0, 10}));
  EXPECT_EQ(chunk_bounds({}), (std::vector<std::uint64_t>{0, 1}));
  EXPECT_EQ(chunk_bounds({0, 5}), (std::vector<std::uint64_t>{0}));
  EXPECT_EQ(chunk_bounds({2, 3000, 1000}),
            (std::vector<std::uint64_t>{0, 1048000, 2096000, 3000000, 4048000, 5096000, 6000000}));
  EXPECT_EQ(chunk_bounds({3, 5u << 20}).size(), 3u * 5u + 1u);
  for (const auto& dims : std::vector<std::vector<std::uint64_t>>{{1100, 1000}, {2, 3000, 1000}, {3, 5u << 20}, {7}, {}}) {
    EXPECT_EQ(chunk_count(dims) + 1, chunk_bounds(dims).size());
  }
}

// A manifest names one CRC per chunk; a file written with one CRC per dataset (before chunk
// CRCs) still reads: from_json makes it one block.
TEST(CheckpointChunks, ManifestCarriesChunkCrcsAndReadsTheOldForm) {
  Written w;
  const CheckpointReader r(w.path);
  EXPECT_EQ(r.verify(), "");
  namespace m = kd::ckpt::manifest;
  const auto entries = m::from_json(
      "{\"datasets\": [{\"path\": \"tensors/model/x\", \"dtype\": \"float32\", \"shape\": [1100, 1000], "
      "\"bytes\": 4400000, \"crc32\": \"0000abcd\"}]}",
      "test");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].bounds, (std::vector<std::uint64_t>{0, 4400000}));
  EXPECT_EQ(entries[0].block_crc32, (std::vector<std::uint32_t>{0xabcd}));
  // a size that contradicts the shape, a count of chunk CRCs that does not match
  expect_mentions(error_of([] {
                    m::from_json("{\"datasets\": [{\"path\": \"p\", \"dtype\": \"float32\", \"shape\": [4294967296, "
                                 "4294967296], \"bytes\": 0, \"crc32\": \"0\"}]}",
                                 "test");
                  }),
                  {"test", "\"p\""});
  expect_mentions(error_of([] {
                    m::from_json("{\"datasets\": [{\"path\": \"q\", \"dtype\": \"float32\", \"shape\": [1100, 1000], "
                                 "\"bytes\": 4400000, \"crc32\": \"0\", \"chunk_crc32\": [\"0\"]}]}",
                                 "test");
                  }),
                  {"test", "\"q\"", "1 chunk CRCs for 2 chunks"});
}

// Ranges within, across and at the chunk bound read back exactly.
TEST(CheckpointVerifiedRead, RangesAndBlocksReadExactly) {
  Written w;
  const CheckpointReader r(w.path);
  for (const auto& [b, e] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {0, kRows * kCols}, {0, 1000}, {17, 1048000}, {1047990, 1048010}, {1048000, 1100000}, {1048001, 1099999}, {5, 6}}) {
    const std::vector<float> got = read_range(r, b, e);
    for (std::int64_t i = b; i < e; ++i) ASSERT_EQ(got[std::size_t(i - b)], value(i)) << "range [" << b << ", " << e << ")";
  }
  // a tensor-parallel column block over both chunks
  std::vector<float> block(std::size_t(kRows * 300));
  r.read_block("model", "big", {kRows, kCols}, 0, kRows, 500, 300, block.data());
  for (std::int64_t i = 0; i < kRows; ++i) {
    for (std::int64_t j = 0; j < 300; ++j) ASSERT_EQ(block[std::size_t(i * 300 + j)], value(i * kCols + 500 + j));
  }
}

// A value edited in place in the second chunk: every read touching that chunk is refused,
// naming the file and tensor; reads of the first chunk alone still succeed.
TEST(CheckpointVerifiedRead, TensorEditedInPlaceIsRefused) {
  Written w;
  set_element(w.path, "tensors/model/big", 1050000, 123.0f);
  const CheckpointReader r(w.path);
  std::vector<float> all(std::size_t(kRows * kCols));
  expect_mentions(error_of([&] { r.read("model", "big", {kRows, kCols}, all.data()); }),
                  {w.path, "model/big", "CRC-32", "the manifest says"});
  expect_mentions(error_of([&] { read_range(r, 1047000, 1049000); }), {w.path, "model/big"});
  expect_mentions(error_of([&] { read_range(r, 1060000, 1060001); }), {w.path, "model/big"});
  EXPECT_EQ(read_range(r, 0, 1048000)[7], value(7));
  std::vector<float> block(std::size_t(kRows * 10));
  expect_mentions(error_of([&] { r.read_block("model", "big", {kRows, kCols}, 0, kRows, 0, 10, block.data()); }),
                  {w.path, "model/big"});
  expect_mentions(error_of([&] { r.read_block("model", "big", {kRows, kCols}, 1040, 20, 0, kCols, block.data()); }),
                  {w.path, "model/big"});
  r.read_block("model", "big", {kRows, kCols}, 0, 10, 0, 10, block.data());  // the first chunk: fine
  std::vector<float> small(64);
  r.read("model", "small", {8, 8}, small.data());
  EXPECT_NE(r.verify().find("tensors/model/big"), std::string::npos) << r.verify();
}

// With both chunks edited, every read and the whole-file check name the first one, though the
// blocks are read and checked in parallel.
TEST(CheckpointVerifiedRead, TheFirstDamagedBlockIsNamed) {
  Written w;
  set_element(w.path, "tensors/model/big", 1050000, 123.0f);
  set_element(w.path, "tensors/model/big", 3, 7.0f);
  const CheckpointReader r(w.path);
  const std::string first = "bytes [0, " + std::to_string(1048 * kCols * 4) + ")";
  std::vector<float> all(std::size_t(kRows * kCols));
  expect_mentions(error_of([&] { r.read("model", "big", {kRows, kCols}, all.data()); }), {w.path, "model/big", first});
  expect_mentions(r.verify(), {"tensors/model/big", first});
}

// One changed character of the stored config (the same length: the file's structure is
// unchanged), of the tokenizer, of a state attribute.
TEST(CheckpointVerifiedRead, TextsAndAttributesAreChecked) {
  {
    Written w;
    replace_text(w.path, "config", "model:\n  norm_eps: 1e-06\n");
    const CheckpointReader r(w.path);
    expect_mentions(error_of([&] { r.config_yaml(); }), {w.path, "/config", "does not match the manifest"});
    EXPECT_EQ(r.tokenizer_json(), "{\"format\": \"kdtrain-bpe\"}");
  }
  {
    Written w;
    replace_text(w.path, "tokenizer", "{\"format\": \"kdtrain-bpx\"}");
    expect_mentions(error_of([&] { CheckpointReader(w.path).tokenizer_json(); }), {w.path, "/tokenizer"});
  }
  {
    Written w;
    edit_file(w.path, [](hid_t f) {
      const hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
      const hid_t a = H5Aopen(g, "step", H5P_DEFAULT);
      const std::int64_t v = 8;
      ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
      H5Aclose(a);
      H5Gclose(g);
    });
    expect_mentions(error_of([&] { CheckpointReader r(w.path); }), {w.path, "/state", "manifest"});
  }
}

// A dataset the manifest does not list: one added after the write (an extra layer), or a
// manifest cut short.
TEST(CheckpointVerifiedRead, DatasetsTheManifestDoesNotListAreRefused) {
  {
    Written w;
    edit_file(w.path, [](hid_t f) {
      const hsize_t dims[2] = {8, 8};
      const hid_t space = H5Screate_simple(2, dims, nullptr);
      const hid_t ds = H5Dcreate2(f, "tensors/model/layers.9.extra", H5T_IEEE_F32LE, space, H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT);
      ASSERT_GE(ds, 0);
      H5Dclose(ds);
      H5Sclose(space);
    });
    expect_mentions(error_of([&] { CheckpointReader r(w.path); }),
                    {w.path, "/tensors/model/layers.9.extra", "not in the checkpoint's manifest"});
  }
  {
    Written w;
    std::string manifest;
    {
      const CheckpointReader r(w.path);
      ASSERT_TRUE(r.has_manifest());
    }
    // the manifest rewritten without its entry for "small"
    edit_file(w.path, [&](hid_t f) {
      const hid_t ds = H5Dopen2(f, "manifest", H5P_DEFAULT);
      const hid_t type = H5Dget_type(ds);
      manifest.assign(H5Tget_size(type), '\0');
      ASSERT_GE(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, manifest.data()), 0);
      H5Tclose(type);
      H5Dclose(ds);
    });
    while (!manifest.empty() && manifest.back() == '\0') manifest.pop_back();
    const std::size_t at = manifest.find("\"tensors/model/small\"");
    ASSERT_NE(at, std::string::npos);
    const std::size_t open = manifest.rfind('{', at), close = manifest.find('}', at);
    manifest.erase(open, close - open + 1);
    const std::size_t comma = manifest.rfind(',', open);  // the separator before it
    manifest.erase(comma, 1);
    replace_text(w.path, "manifest", manifest);
    expect_mentions(error_of([&] { CheckpointReader r(w.path); }), {w.path, "/tensors/model/small", "manifest"});
  }
}

// The manifest text of a file, and the file with its manifest replaced.
std::string manifest_text(const std::string& path) {
  std::string text;
  edit_file(path, [&](hid_t f) {
    const hid_t ds = H5Dopen2(f, "manifest", H5P_DEFAULT);
    const hid_t type = H5Dget_type(ds);
    text.assign(H5Tget_size(type), '\0');
    H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data());
    H5Tclose(type);
    H5Dclose(ds);
  });
  while (!text.empty() && text.back() == '\0') text.pop_back();
  return text;
}

// A file written before chunk CRCs (one CRC per dataset): every read still checks, a partial
// read by reading its tensor whole.
TEST(CheckpointVerifiedRead, ManifestsWithoutChunkCrcsStillCheckPartialReads) {
  Written w;
  nlohmann::json m = nlohmann::json::parse(manifest_text(w.path));
  int dropped = 0;
  for (auto& d : m["datasets"]) dropped += int(d.erase("chunk_crc32"));
  ASSERT_EQ(dropped, 1);  // "big", the one tensor of two chunks
  replace_text(w.path, "manifest", m.dump());
  {
    const CheckpointReader r(w.path);
    EXPECT_EQ(r.verify(), "");
    EXPECT_EQ(read_range(r, 1047990, 1048010)[3], value(1047993));
    std::vector<float> block(std::size_t(kRows * 2));
    r.read_block("model", "big", {kRows, kCols}, 0, kRows, 998, 2, block.data());
    EXPECT_EQ(block[5], value(2 * kCols + 999));
  }
  set_element(w.path, "tensors/model/big", 1050000, 123.0f);
  const CheckpointReader r(w.path);
  expect_mentions(error_of([&] { read_range(r, 0, 10); }), {w.path, "model/big", "bytes [0, 4400000)"});
}

// A file without a manifest (an older kdtrain's): read, with one warning naming inspect --verify.
TEST(CheckpointVerifiedRead, NoManifestReadsWithAWarning) {
  Written w;
  edit_file(w.path, [](hid_t f) { ASSERT_GE(H5Ldelete(f, "manifest", H5P_DEFAULT), 0); });
  testing::internal::CaptureStderr();
  const CheckpointReader r(w.path);
  const std::string err = testing::internal::GetCapturedStderr();
  expect_mentions(err, {w.path, "no manifest", "kdtrain inspect --verify"});
  EXPECT_FALSE(r.has_manifest());
  EXPECT_EQ(read_range(r, 1047990, 1048010)[3], value(1047993));
  EXPECT_EQ(r.config_yaml(), "model:\n  norm_eps: 1e-05\n");
}

}  // namespace
