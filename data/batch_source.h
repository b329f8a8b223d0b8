// Where training batches come from: (batch, seq) token ids and their labels
// (the next token; a negative label marks a position without a target).
#pragma once

#include <cstdint>

namespace kd::data {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual void next(std::int32_t* tokens, std::int32_t* labels, int batch, int seq) = 0;
  // Sequences drawn so far: the data cursor a checkpoint stores.
  virtual std::int64_t position() const = 0;
  // Continues as if `sequences` sequences of length `seq` had been drawn (exact resume).
  virtual void seek(std::int64_t sequences, int seq) = 0;
  // A fingerprint of the sampler's random state: a checkpoint stores it per rank and a
  // resume checks that seek() reproduced it (the same data from here on).
  virtual std::uint64_t rng_fingerprint() const = 0;
};

// A source whose sequences can be read by index without drawing the ones before (the
// stateless shard sampler): a data-parallel rank reads only its own.
class IndexedSource : public BatchSource {
 public:
  // Sequence `index` of the stream (the one the index-th draw would give); no state change.
  virtual void sequence(std::int64_t index, std::int32_t* tokens, std::int32_t* labels, int seq) const = 0;
};

}  // namespace kd::data
