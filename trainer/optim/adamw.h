// AdamW over a parameter table: weight decay only on tensors flagged kDecayed (never on
// norms, auxiliary tensors). It may own a shard [begin, end) of the flat buffer only
// (ZeRO stage 1: each data-parallel rank updates its contiguous shard); its moments then
// hold that shard, element i of them being element begin + i of the buffer.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "trainer/optim/optim_section.h"
#include "trainer/model/param_table.h"
#include "trainer/util/aligned_buffer.h"
#include "trainer/util/crc32.h"

namespace kd {

template <class T>
class AdamW {
 public:
  // Tensors flagged kQuantScale learn at lr · quant_scale_lr_ratio: a scale is orders of
  // magnitude smaller than the weights, and Adam's step size ignores the gradient's scale.
  // shard_end = 0: the whole buffer. A shard may run past the table's end (the padding
  // that makes the buffer divide into equal shards): those elements are not updated.
  AdamW(const ParamTable& table, const OptimSection& o, double quant_scale_lr_ratio = 1.0,
        std::size_t shard_begin = 0, std::size_t shard_end = 0);
  // The CRC-32s of what an update leaves in the shard of the weights and in the moments,
  // per grain of each (trainer/util/crc32.h), taken while the update has the grain in the
  // cache: a checkpoint of that state then does not read it from memory again for its
  // checksums (trainer/checkpoint/byte_writer.h). Each region is the whole shard.
  struct StateSums {
    crc32::GrainSums params, m, v;
  };
  // One update with learning rate lr; grad_scale multiplies every gradient (clipping).
  // params and grads hold the shard (element 0 = element shard_begin of the buffer).
  // `sums` (when not null) gets the CRC-32s of params, m and v as the update leaves them;
  // the update itself is the same, bit for bit.
  void step(T* params, const T* grads, double lr, double grad_scale, StateSums* sums = nullptr);
  std::size_t shard_begin() const { return begin_; }
  std::size_t shard_size() const { return m_.size(); }
  std::int64_t steps_taken() const { return t_; }
  void set_steps_taken(std::int64_t t) { t_ = t; }  // resume: bias corrections continue
  T* m() { return m_.data(); }
  T* v() { return v_.data(); }

 private:
  struct Range {
    std::size_t begin, end;
    bool decayed;
    double lr_ratio;
  };
  OptimSection o_;
  std::size_t begin_ = 0;
  std::vector<Range> ranges_;  // shard-relative, in order; tensors with the same decay and lr ratio merged
  std::vector<kern::AdamWStep> range_steps_;  // each range's step settings, refilled by step()
  AlignedBuffer<T> m_, v_;
  std::int64_t t_ = 0;
};

// Global L2 norm of the gradients (double, deterministic) and the torch-style clip
// factor: max_norm / (norm + 1e-6) when that is < 1, else 1.
template <class T>
double global_norm(const T* grads, std::size_t n);
double clip_factor(double norm, double max_norm);

}  // namespace kd
