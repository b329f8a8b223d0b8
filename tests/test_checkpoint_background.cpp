// Checkpoints written in the background (ckpt::BackgroundCheckpoint) and the byte path under
// every checkpoint write (trainer/checkpoint/byte_writer.h): what is read in place and what is
// copied, when the file appears under its name, a write abandoned or failing, the page-cache
// fallback where direct I/O is refused; the CRC-32s the optimizer's update hands the writer
// (crc32::GrainSums, CheckpointContents::known_crc32); and the manifest's CRC-32 (ISA-L)
// against zlib's.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "base/errors.h"
#include "tests/support/temp_files.h"
#include "trainer/checkpoint/byte_writer.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/manifest.h"
#include "trainer/util/crc32.h"

namespace {

using kd::ckpt::BackgroundCheckpoint;
using kd::ckpt::CheckpointContents;
using kd::ckpt::CheckpointReader;
using kd::ckpt::StateCopy;
using kd::ckpt::TensorView;
using kdtest::slurp;
using kdtest::TempDir;
using kdtest::write_bytes;

// Three tensors: "live" (read in place until release_state) of 3M floats, several CRC blocks
// and O_DIRECT pieces, with an odd length; "shifted", live too, 3 floats into its memory (so
// its bytes and their place in the file differ in alignment: the copies' unaligned edges);
// "copied" (copied at start) of 1000 floats.
struct Fixture {
  std::vector<float> live = std::vector<float>(3'000'001), copied = std::vector<float>(1000),
                     shifted = std::vector<float>(3 + 123'457);
  Fixture() {
    std::iota(live.begin(), live.end(), 0.5f);
    std::iota(copied.begin(), copied.end(), -7.25f);
    std::iota(shifted.begin(), shifted.end(), 1e6f);
  }
  CheckpointContents contents() const {
    CheckpointContents c;
    c.kind = "train";
    c.config_yaml = "model: {}\n";
    c.state = {{"step", 3}};
    TensorView l{"live", {std::int64_t(live.size())}, live.data()};
    l.live = true;
    TensorView sh{"shifted", {std::int64_t(shifted.size() - 3)}, shifted.data() + 3};
    sh.live = true;
    c.tensors["model"] = {l, TensorView{"copied", {10, 100}, copied.data()}, sh};
    c.per_rank["data_rng"] = {11, 12};
    return c;
  }
};

// Contents of one live tensor `name` holding `values`.
CheckpointContents one_live_tensor(const std::string& name, std::vector<float>& values) {
  CheckpointContents c;
  c.kind = "train";
  c.config_yaml = "model: {}\n";
  TensorView v{name, {std::int64_t(values.size())}, values.data()};
  v.live = true;
  c.tensors["model"] = {v};
  return c;
}

std::vector<float> read_all(const std::string& path, const std::string& name, std::int64_t n,
                            const std::vector<std::int64_t>& shape) {
  std::vector<float> out(std::size_t(n), 0.0f);
  CheckpointReader(path).read("model", name, shape, out.data());
  return out;
}

// The same bytes as zlib's crc32 at every length and alignment tried, and continued
// across a split (the writer's pieces, the reader's blocks).
TEST(CheckpointCrc, IsaLAgreesWithZlib) {
  std::mt19937 rng(7);
  std::vector<unsigned char> bytes(1 << 20);
  for (auto& b : bytes) b = static_cast<unsigned char>(rng());
  for (const std::size_t n : {0u, 1u, 3u, 15u, 16u, 17u, 63u, 64u, 255u, 4096u, 65537u, 1u << 20}) {
    for (const std::size_t at : {0u, 1u, 7u}) {
      if (at + n > bytes.size()) continue;
      const std::uint32_t want = std::uint32_t(::crc32(::crc32(0, nullptr, 0), bytes.data() + at, uInt(n)));
      EXPECT_EQ(kd::crc32::of(bytes.data() + at, n), want) << n << " bytes at " << at;
      const std::size_t cut = n / 3;
      EXPECT_EQ(kd::crc32::extend(kd::crc32::of(bytes.data() + at, cut), bytes.data() + at + cut, n - cut), want);
    }
  }
}

// zlib's CRC-32 of n bytes at p: the reference.
std::uint32_t zlib_crc(const void* p, std::size_t n) {
  return std::uint32_t(::crc32(::crc32(0, nullptr, 0), static_cast<const Bytef*>(p), uInt(n)));
}

// The sums of `bytes` bytes at `base`, each grain's CRC-32 from zlib.
kd::crc32::GrainSums sums_of(const void* base, std::uint64_t bytes, std::uint64_t grain) {
  kd::crc32::GrainSums s;
  s.reset(base, bytes, grain);
  for (std::uint64_t k = 0; k < s.grains(); ++k) {
    s.grain(k) = zlib_crc(static_cast<const char*>(base) + k * grain, std::min(grain, bytes - k * grain));
  }
  return s;
}

// Any range of a summed region gets zlib's CRC-32 from the grains and its ends: ranges within
// one grain, across one bound, from and to the region's ends (its last grain shorter), empty,
// whole, and seeded random ones; covers() refuses ranges that leave the region.
TEST(CheckpointCrc, GrainSumsGiveEveryRangesCrc) {
  std::mt19937 rng(11);
  std::vector<unsigned char> bytes(300'013);
  for (auto& b : bytes) b = static_cast<unsigned char>(rng());
  const std::uint64_t grain = 4096, n = bytes.size();
  const kd::crc32::GrainSums s = sums_of(bytes.data(), n, grain);
  EXPECT_EQ(s.grains(), (n + grain - 1) / grain);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges{
      {0, 0}, {0, n}, {0, 1}, {n - 1, 1}, {n, 0}, {5, 100}, {4000, 200}, {4096, 4096}, {4096, 8192},
      {0, grain * 73}, {grain * 73, n - grain * 73}, {grain * 73 + 1, n - grain * 73 - 1}, {17, n - 17}, {1, n - 2}};
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t a = rng() % (n + 1);
    ranges.push_back({a, rng() % (n - a + 1)});
  }
  for (const auto& [at, len] : ranges) {
    ASSERT_TRUE(s.covers(bytes.data() + at, len)) << at << "+" << len;
    EXPECT_EQ(s.of(bytes.data() + at, len), zlib_crc(bytes.data() + at, len)) << len << " bytes at " << at;
  }
  EXPECT_FALSE(s.covers(bytes.data() + 1, n));
  EXPECT_FALSE(s.covers(bytes.data() + n + 1, 0));
  EXPECT_FALSE(s.covers(bytes.data() - 1, 2));
  EXPECT_FALSE(kd::crc32::GrainSums().covers(bytes.data(), 0));  // nothing summed yet
}

const char* name_of(StateCopy copy) {
  switch (copy) {
    case StateCopy::at_update: return "copying what is not yet written at release_state";
    case StateCopy::first: return "the writer copying the state first";
    case StateCopy::none: return "writing it in place";
  }
  return "";
}

// A non-live tensor changed right after start() and the live ones changed after
// release_state() are all stored as they were at start(): in each StateCopy mode, and with
// release_state() called at once (at_update: nearly everything taken back) and after the
// writer had a head start of 2 and 20 ms (part written in place, the rest taken back).
TEST(BackgroundCheckpoint, StoresTheStateAtStart) {
  for (const auto& [copy, head_start_us] : std::vector<std::pair<StateCopy, int>>{
           {StateCopy::at_update, 0}, {StateCopy::at_update, 2000}, {StateCopy::at_update, 20000},
           {StateCopy::first, 0}, {StateCopy::none, 0}}) {
    SCOPED_TRACE(fmt::format("{}, release_state after {} us", name_of(copy), head_start_us));
    TempDir dir;
    Fixture f;
    const std::vector<float> live0 = f.live, copied0 = f.copied;
    const std::vector<float> shifted0(f.shifted.begin() + 3, f.shifted.end());
    const std::string path = dir.file("ckpt.h5");
    BackgroundCheckpoint bg(nullptr, copy);
    bg.start(path, f.contents());
    EXPECT_TRUE(bg.in_flight());
    EXPECT_EQ(bg.path(), path);
    std::fill(f.copied.begin(), f.copied.end(), 99.0f);  // copied at start: may change at once
    ::usleep(useconds_t(head_start_us));
    bg.release_state();
    const std::uint64_t taken_back = bg.stats().taken_back_bytes;
    if (copy != StateCopy::at_update) {
      EXPECT_EQ(taken_back, 0u);
    }
    EXPECT_LE(taken_back, (live0.size() + shifted0.size()) * 4);
    bg.release_state();  // again, as each step's gate does until the write completes: nothing left
    EXPECT_EQ(bg.stats().taken_back_bytes, taken_back);
    std::fill(f.live.begin(), f.live.end(), -1.0f);  // the writer is done with them
    std::fill(f.shifted.begin(), f.shifted.end(), -2.0f);
    bg.finish();
    EXPECT_FALSE(bg.in_flight());
    EXPECT_EQ(CheckpointReader(path).verify(), "");
    EXPECT_EQ(read_all(path, "live", std::int64_t(live0.size()), {std::int64_t(live0.size())}), live0);
    const std::int64_t ns = std::int64_t(shifted0.size());
    EXPECT_EQ(read_all(path, "shifted", ns, {ns}), shifted0);
    EXPECT_EQ(read_all(path, "copied", 1000, {10, 100}), copied0);
    EXPECT_EQ(*CheckpointReader(path).per_rank("data_rng", 0), (std::vector<std::int64_t>{11, 12}));
    EXPECT_EQ(bg.stats().copied_bytes, 1000u * 4 + 2 * 8);  // "copied" and the per-rank row
    EXPECT_GT(bg.stats().writer_cpu_s, 0.0);
  }
}

// The live views' CRC-32s taken from sums their writer gave (CheckpointContents::
// known_crc32, as the optimizer's update gives them), in each StateCopy mode and in a plain
// write_checkpoint: the file verifies and holds the state. With one grain's sum made wrong,
// the file does not verify, naming the tensor: the write used the sums, and took that grain's
// bytes from nowhere else.
TEST(BackgroundCheckpoint, KnownCrcsAreTheOnesWritten) {
  constexpr std::uint64_t kGrain = kd::crc32::GrainSums::kGrain;
  for (const bool wrong : {false, true}) {
    for (const auto& [copy, head_start_us] : std::vector<std::pair<StateCopy, int>>{
             {StateCopy::at_update, 0}, {StateCopy::at_update, 20000}, {StateCopy::first, 0},
             {StateCopy::none, 0}, {StateCopy::none, -1}}) {
      SCOPED_TRACE(fmt::format("{}{}{}", head_start_us < 0 ? "write_checkpoint" : name_of(copy),
                               head_start_us > 0 ? ", release_state after 20 ms" : "", wrong ? ", a wrong sum" : ""));
      TempDir dir;
      Fixture f;
      const std::vector<float> live0 = f.live;
      kd::crc32::GrainSums live_sums = sums_of(f.live.data(), f.live.size() * 4, kGrain);
      const kd::crc32::GrainSums shifted_sums = sums_of(f.shifted.data(), f.shifted.size() * 4, kGrain);
      if (wrong) live_sums.grain(live_sums.grains() / 2) ^= 1;
      CheckpointContents c = f.contents();
      c.known_crc32 = {&shifted_sums, &live_sums};
      const std::string path = dir.file("ckpt.h5");
      if (head_start_us < 0) {
        kd::ckpt::write_checkpoint(path, c);
      } else {
        BackgroundCheckpoint bg(nullptr, copy);
        bg.start(path, c);
        ::usleep(useconds_t(head_start_us));
        bg.release_state();
        std::fill(f.live.begin(), f.live.end(), -1.0f);
        bg.finish();
      }
      const std::string problem = CheckpointReader(path).verify();
      if (wrong) {
        EXPECT_NE(problem.find("tensors/model/live"), std::string::npos) << problem;
      } else {
        EXPECT_EQ(problem, "");
        EXPECT_EQ(read_all(path, "live", std::int64_t(live0.size()), {std::int64_t(live0.size())}), live0);
      }
    }
  }
}

// StateCopy::at_update with the state taken back at seeded random moments of a 64 MB write,
// through O_DIRECT (one writer thread) and the page cache (several, claiming pieces in
// parallel), the live memory overwritten as soon as release_state() returns: every file holds
// the state of start(), whatever part was written in place and whatever part copied.
TEST(BackgroundCheckpoint, TakenBackAtAnyMomentTheFileHoldsTheStateAtStart) {
  std::mt19937 rng(26);
  std::vector<float> state(std::size_t(16) << 20);
  for (const bool direct : {true, false}) {
    if (!direct) ::setenv("KDTRAIN_CHECKPOINT_DIRECT_IO", "0", 1);
    for (int round = 0; round < 4; ++round) {
      SCOPED_TRACE(fmt::format("{}, round {}", direct ? "O_DIRECT" : "page cache", round));
      for (std::size_t i = 0; i < state.size(); ++i) state[i] = float(i % 1000003) + 0.25f * float(round);
      const std::vector<float> want = state;
      TempDir dir;
      const std::string path = dir.file("ckpt.h5");
      BackgroundCheckpoint bg(nullptr, StateCopy::at_update);
      bg.start(path, one_live_tensor("state", state));
      ::usleep(useconds_t(rng() % (direct ? 40000 : 4000)));  // the page cache takes 64 MB in ~20 ms
      bg.release_state();
      std::fill(state.begin(), state.end(), -3.0f);
      bg.finish();
      EXPECT_EQ(CheckpointReader(path).verify(), "");
      EXPECT_EQ(read_all(path, "state", std::int64_t(want.size()), {std::int64_t(want.size())}), want);
      EXPECT_LE(bg.stats().taken_back_bytes, want.size() * 4);
    }
  }
  ::unsetenv("KDTRAIN_CHECKPOINT_DIRECT_IO");
}

// The child of ASnapshotThatDoesNotFitIsRefusedAtStart: 0 when all is as it should be, else
// which check failed.
int snapshot_refusal(const std::string& path) {
  std::vector<float> big(std::size_t(64) << 20, 1.0f);  // 256 MB, live
  const CheckpointContents c = one_live_tensor("big", big);
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0;
  statm >> pages;
  rlimit lim{};
  lim.rlim_cur = lim.rlim_max = rlim_t(pages * std::uint64_t(::sysconf(_SC_PAGESIZE)) + (std::uint64_t(64) << 20));
  if (::setrlimit(RLIMIT_AS, &lim) != 0) return 3;
  try {
    BackgroundCheckpoint bg;
    bg.start(path, c);
    return 4;  // the snapshot fitted
  } catch (const kd::RuntimeFailure& e) {
    const std::string msg = e.what();
    for (const char* want : {path.c_str(), "cannot write checkpoint", "snapshot", "checkpoint_copy: none"}) {
      if (msg.find(want) == std::string::npos) return 5;
    }
  }
  if (std::filesystem::exists(path) || std::filesystem::exists(path + ".tmp")) return 6;
  BackgroundCheckpoint in_place(nullptr, StateCopy::none);
  in_place.start(path, c);
  in_place.finish();
  return CheckpointReader(path).verify().empty() ? 0 : 7;
}

// A snapshot the address space cannot hold (RLIMIT_AS just above what the process has) is a
// runtime failure at start() naming the file, the size and the way out
// (train.checkpoint_copy: none); nothing is left on disk, and the same contents are written
// in place. In a child process: the limit stays with it.
TEST(BackgroundCheckpoint, ASnapshotThatDoesNotFitIsRefusedAtStart) {
  // the child re-runs this binary: a plain fork would inherit OpenMP's thread pool of the
  // tests before (its threads gone in the child), and its first parallel region would hang
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  EXPECT_EXIT(std::_Exit(snapshot_refusal(path)), ::testing::ExitedWithCode(0), "");
}

// Each piece's place in a snapshot is congruent to its file offset modulo the page (so its
// whole pages are written with O_DIRECT as they lie), the places do not overlap, and pieces
// not taken get none.
TEST(BackgroundCheckpoint, SnapshotPlacesAreCongruentToTheFile) {
  using kd::ckpt::bytes::Piece;
  std::vector<Piece> pieces;
  std::mt19937 rng(3);
  std::uint64_t file = 8192;
  for (int i = 0; i < 200; ++i) {
    Piece p;
    p.bytes = 1 + rng() % 20000;
    p.file_offset = file + rng() % 5000;
    file = p.file_offset + p.bytes;
    pieces.push_back(p);
  }
  std::vector<bool> take(pieces.size());
  for (std::size_t i = 0; i < take.size(); ++i) take[i] = i % 7 != 3;
  std::uint64_t total = 0;
  const std::vector<std::uint64_t> at = kd::ckpt::bytes::snapshot_places(pieces, take, total);
  ASSERT_EQ(at.size(), pieces.size());
  std::uint64_t end = 0;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (!take[i]) {
      EXPECT_EQ(at[i], ~std::uint64_t{0}) << i;
      continue;
    }
    EXPECT_EQ(at[i] % 4096, pieces[i].file_offset % 4096) << i;
    EXPECT_GE(at[i], end) << i;
    end = at[i] + pieces[i].bytes;
  }
  EXPECT_EQ(total, end);
}

// The file appears under its name only once poll() or finish() completes it; until then a
// previous file of that name is what a reader sees.
TEST(BackgroundCheckpoint, TheFileAppearsWhenComplete) {
  TempDir dir;
  Fixture f;
  const std::string path = dir.file("ckpt.h5");
  write_bytes(path, "previous");
  BackgroundCheckpoint bg;
  bg.start(path, f.contents());
  EXPECT_EQ(slurp(path), "previous");
  EXPECT_TRUE(std::filesystem::exists(path + ".tmp"));
  int polls = 0;
  while (!bg.poll()) {
    EXPECT_EQ(slurp(path), "previous");
    ++polls;
    ::usleep(1000);
  }
  EXPECT_FALSE(bg.in_flight());
  EXPECT_FALSE(bg.poll());  // nothing in flight
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(CheckpointReader(path).verify(), "") << polls << " polls";
}

// A write in flight when its owner goes away (a run that failed) is abandoned: no .tmp, the
// previous file untouched. A second start() completes the first write before it begins.
TEST(BackgroundCheckpoint, AbandonedOrOverlappedWrites) {
  TempDir dir;
  Fixture f;
  const std::string path = dir.file("ckpt.h5"), second = dir.file("next.h5");
  write_bytes(path, "previous");
  {
    BackgroundCheckpoint bg;
    bg.start(path, f.contents());
  }
  EXPECT_EQ(slurp(path), "previous");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  BackgroundCheckpoint bg;
  bg.start(path, f.contents());
  bg.start(second, f.contents());
  EXPECT_EQ(CheckpointReader(path).verify(), "");
  bg.finish();
  EXPECT_EQ(CheckpointReader(second).verify(), "");
}

// Bad contents are refused by start() itself, before the disk is touched.
TEST(BackgroundCheckpoint, BadContentsAreRefusedAtStart) {
  TempDir dir;
  Fixture f;
  CheckpointContents c = f.contents();
  c.tensors["model"][1].name = "a/b";
  BackgroundCheckpoint bg;
  EXPECT_THROW(bg.start(dir.file("ckpt.h5"), c), kd::RuntimeFailure);
  EXPECT_FALSE(bg.in_flight());
  EXPECT_FALSE(std::filesystem::exists(dir.file("ckpt.h5.tmp")));
}

// The writer thread's failure (KDTRAIN_CHECKPOINT_FAULT=write-error: the n-th write's disk
// write fails half way with EIO) is reported where the run learns of it, at finish(),
// naming the file, the dataset and the error; nothing is left. (ctest runs each test in its
// own process, so this write is the process's first.)
TEST(BackgroundCheckpoint, WriterFailureIsReportedAtCompletion) {
  TempDir dir;
  Fixture f;
  const std::string path = dir.file("ckpt.h5");
  write_bytes(path, "previous");
  ::setenv("KDTRAIN_CHECKPOINT_FAULT", "write-error:1", 1);
  BackgroundCheckpoint bg;
  bg.start(path, f.contents());
  ::unsetenv("KDTRAIN_CHECKPOINT_FAULT");
  try {
    bg.finish();
    ADD_FAILURE() << "a failed write completed";
  } catch (const kd::RuntimeFailure& e) {
    const std::string msg = e.what();
    for (const char* want : {path.c_str(), "cannot write checkpoint", "tensors/model/", "Input/output error"}) {
      EXPECT_NE(msg.find(want), std::string::npos) << want << " in " << msg;
    }
  }
  EXPECT_FALSE(bg.in_flight());
  EXPECT_EQ(slurp(path), "previous");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// Without direct I/O (KDTRAIN_CHECKPOINT_DIRECT_IO=0, as where a file system refuses it) every
// byte goes through the page cache, from several threads: the same tensors, verified.
TEST(BackgroundCheckpoint, WritesThroughThePageCache) {
  TempDir dir;
  Fixture f;
  const std::string direct = dir.file("direct.h5"), cached = dir.file("cached.h5");
  kd::ckpt::write_checkpoint(direct, f.contents());
  ::setenv("KDTRAIN_CHECKPOINT_DIRECT_IO", "0", 1);
  kd::ckpt::write_checkpoint(cached, f.contents());
  ::unsetenv("KDTRAIN_CHECKPOINT_DIRECT_IO");
  EXPECT_EQ(CheckpointReader(cached).verify(), "");
  const std::int64_t n = std::int64_t(f.live.size());
  EXPECT_EQ(read_all(cached, "live", n, {n}), read_all(direct, "live", n, {n}));
  EXPECT_EQ(read_all(cached, "copied", 1000, {10, 100}), f.copied);
  const std::int64_t ns = std::int64_t(f.shifted.size() - 3);
  EXPECT_EQ(read_all(cached, "shifted", ns, {ns}), read_all(direct, "shifted", ns, {ns}));
}

}  // namespace
