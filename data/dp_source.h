// The data-parallel sampler: rank r of W takes its slice of every global batch, so the W
// ranks together see exactly the sequences one process would (the global batch does not
// depend on the world size), and no two ranks see the same one. A global batch of
// B_local · W sequences starting at the cursor p: rank r gets p + r·B_local … p + (r+1)·B_local − 1.
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
  DataParallelSource(BatchSource& inner, int rank, int world);
  // batch: this rank's micro-batch (the global one is batch · world).
  void next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) override;
  std::int64_t position() const override { return inner_.position(); }
  void seek(std::int64_t sequences, int seq) override { inner_.seek(sequences, seq); }

 private:
  BatchSource& inner_;
  const IndexedSource* indexed_;
  int rank_, world_;
  std::vector<std::int32_t> all_tokens_, all_labels_;  // a non-indexed source's global batch
};

}  // namespace kd::data
