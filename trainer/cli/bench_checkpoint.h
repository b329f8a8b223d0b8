// kdtrain bench --checkpoint: the cost of a checkpoint of the bench config's student with
// its optimizer state, on the trainer the bench has just timed.
#pragma once

#include <cstdio>
#include <string>

#include "trainer/config/config.h"
#include "data/batch_source.h"
#include "trainer/train/trainer.h"

namespace kd::cli {

// step-<i>.h5, stall-<i>.h5 and spare-<i>.h5, i < this, and kBenchFloorFile are the files
// bench writes in `dir` (and deletes).
inline constexpr int kBenchCheckpointWrites = 5;
inline constexpr const char* kBenchFloorFile = "floor.bin";
// Reads from disk timed (the median kept): more than the rest, as this VM's disk varies by
// ±40% from one read to the next (scripts/torch_ckpt_ref.py's DISK_REPEATS likewise).
inline constexpr int kBenchDiskReads = 5;

// Times, on every rank of the trainer's Comm: the collective write (median of
// kBenchCheckpointWrites, fsync and rename included), the read of the model and this rank's
// moment shard that a resume does (from disk and from the page cache) and the manifest
// verification; then the stall a checkpoint written in the background causes to training
// (the steps it overlaps, against plain steps timed just before each), with every thread
// training and, where there are two or more, with one left to the writer; and the stall's
// floor: the same bytes written by a bare thread (O_DIRECT, no CRC, no HDF5), what the disk
// costs the training whoever writes. `dir`: "" = a
// fresh directory under $TMPDIR, removed afterwards. Rank 0 prints to `out`.
void bench_checkpoint(Trainer& trainer, const Config& cfg, data::BatchSource& source, const std::string& dir,
                      std::FILE* out);

}  // namespace kd::cli
