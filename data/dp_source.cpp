#include "data/dp_source.h"

#include <algorithm>

#include "base/errors.h"

namespace kd::data {

DataParallelSource::DataParallelSource(BatchSource& inner, int rank, int world, int global_batch)
    : inner_(inner),
      indexed_(dynamic_cast<const IndexedSource*>(&inner)),
      rank_(rank),
      world_(world),
      global_(global_batch),
      counts_(split(global_batch, world)) {
  KD_ASSERT(rank >= 0 && rank < world && global_batch >= world, "data-parallel rank {} of {} with a global batch of {}",
            rank, world, global_batch);
  for (int r = 0; r < rank; ++r) first_ += counts_[std::size_t(r)];
}

std::vector<int> DataParallelSource::split(int global, int world) {
  std::vector<int> c(std::size_t(world), global / world);
  for (int r = 0; r < global % world; ++r) ++c[std::size_t(r)];
  return c;
}

void DataParallelSource::next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) {
  KD_ASSERT(batch == local_batch(), "data-parallel rank {} asked for {} sequences, owns {}", rank_, batch,
            local_batch());
  const std::size_t n = std::size_t(batch) * std::size_t(seq);
  if (indexed_) {
    const std::int64_t first = inner_.position() + first_;
    for (int b = 0; b < batch; ++b) {
      indexed_->sequence(first + b, tokens + std::size_t(b) * seq, labels + std::size_t(b) * seq, seq);
    }
    inner_.seek(inner_.position() + global_, seq);
    return;
  }
  all_tokens_.resize(std::size_t(global_) * std::size_t(seq));
  all_labels_.resize(all_tokens_.size());
  inner_.next(all_tokens_.data(), all_labels_.data(), global_, seq);
  const std::size_t at = std::size_t(first_) * std::size_t(seq);
  std::copy_n(all_tokens_.data() + at, n, tokens);
  std::copy_n(all_labels_.data() + at, n, labels);
}

}  // namespace kd::data
