// The data-parallel sampler: rank r of W takes its slice of every global batch, so the W
// ranks together see exactly the sequences one process would (the global batch does not
// depend on the world size), and no two ranks see the same one. A global batch of B
// sequences at the cursor p is split in rank order into W contiguous runs, the first
// B mod W ranks taking one sequence more (uneven when W does not divide B): rank r gets
// p + first(r) … p + first(r) + local(r) − 1.
// The cursor (position) counts global sequences, the same on every rank, so a checkpoint's
// data cursor means the same whatever the world size.
// An IndexedSource is read at the rank's indices only; any other source (synthetic
// streams) is drawn whole and sliced, which costs W× the generation but gives the same data.
#pragma once

#include <vector>

#include "data/batch_source.h"

namespace kd::data {

class DataParallelSource : public BatchSource {
 public:
  // global_batch ≥ world: every rank gets at least one sequence.
  DataParallelSource(BatchSource& inner, int rank, int world, int global_batch);
  // Sequences of each rank when `global` are split over `world` ranks.
  static std::vector<int> split(int global, int world);
  int local_batch() const { return counts_[std::size_t(rank_)]; }
  // batch: this rank's micro-batch, local_batch().
  void next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) override;
  std::int64_t position() const override { return inner_.position(); }
  void seek(std::int64_t sequences, int seq) override { inner_.seek(sequences, seq); }
  std::uint64_t rng_fingerprint() const override { return inner_.rng_fingerprint(); }

 private:
  BatchSource& inner_;
  const IndexedSource* indexed_;
  int rank_, world_, global_;
  std::vector<int> counts_;
  std::int64_t first_ = 0;  // this rank's first sequence within a global batch
  std::vector<std::int32_t> all_tokens_, all_labels_;  // a non-indexed source's global batch
};

}  // namespace kd::data
