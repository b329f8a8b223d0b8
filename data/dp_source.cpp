#include "data/dp_source.h"

#include <algorithm>

namespace kd::data {

DataParallelSource::DataParallelSource(BatchSource& inner, int rank, int world)
    : inner_(inner), indexed_(dynamic_cast<const IndexedSource*>(&inner)), rank_(rank), world_(world) {}

void DataParallelSource::next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) {
  const std::size_t n = std::size_t(batch) * std::size_t(seq);
  if (indexed_) {
    const std::int64_t first = inner_.position() + std::int64_t(rank_) * batch;
    for (int b = 0; b < batch; ++b) {
      indexed_->sequence(first + b, tokens + std::size_t(b) * seq, labels + std::size_t(b) * seq, seq);
    }
    inner_.seek(inner_.position() + std::int64_t(batch) * world_, seq);
    return;
  }
  all_tokens_.resize(n * std::size_t(world_));
  all_labels_.resize(n * std::size_t(world_));
  inner_.next(all_tokens_.data(), all_labels_.data(), batch * world_, seq);
  std::copy_n(all_tokens_.data() + n * std::size_t(rank_), n, tokens);
  std::copy_n(all_labels_.data() + n * std::size_t(rank_), n, labels);
}

}  // namespace kd::data
