#include "trainer/optim/adamw.h"

#include <algorithm>
#include <cmath>

#include "base/errors.h"

namespace kd {

template <class T>
AdamW<T>::AdamW(const ParamTable& table, const OptimSection& o, double quant_scale_lr_ratio,
                std::size_t shard_begin, std::size_t shard_end)
    : o_(o), begin_(shard_begin) {
  const std::size_t end = shard_end == 0 ? table.total() : shard_end;
  KD_ASSERT(begin_ <= end, "AdamW shard [{}, {})", begin_, end);
  m_.resize(end - begin_, "AdamW's first moments");
  v_.resize(end - begin_, "AdamW's second moments");
  for (const auto& t : table.tensors()) {
    const std::size_t lo = std::max(t.offset, begin_), hi = std::min(t.offset + t.numel, end);
    if (lo >= hi) continue;  // outside the shard
    const bool decayed = t.has(kDecayed) && !t.has(kAuxiliary);
    const double ratio = t.has(kQuantScale) ? quant_scale_lr_ratio : 1.0;
    if (!ranges_.empty() && ranges_.back().end == lo - begin_ && ranges_.back().decayed == decayed &&
        ranges_.back().lr_ratio == ratio) {
      ranges_.back().end = hi - begin_;
    } else {
      ranges_.push_back({lo - begin_, hi - begin_, decayed, ratio});
    }
    KD_ASSERT(ranges_.back().begin >= (ranges_.size() > 1 ? ranges_[ranges_.size() - 2].end : 0),
              "the parameter table's tensors are not in the buffer's order ({})", t.name);
  }
  range_steps_.resize(ranges_.size());
}

template <class T>
void AdamW<T>::step(T* params, const T* grads, double lr, double grad_scale, StateSums* sums) {
  ++t_;
  kern::AdamWStep base{};
  base.beta1 = o_.beta1;
  base.beta2 = o_.beta2;
  base.eps = o_.eps;
  base.bias_correction1 = 1.0 - std::pow(o_.beta1, double(t_));
  base.bias_correction2 = 1.0 - std::pow(o_.beta2, double(t_));
  base.grad_scale = grad_scale;
  std::vector<kern::AdamWStep>& per_range = range_steps_;  // sized at construction: no allocation a step
  for (std::size_t i = 0; i < ranges_.size(); ++i) {
    per_range[i] = base;
    per_range[i].weight_decay = ranges_[i].decayed ? o_.weight_decay : 0.0;
    per_range[i].lr = lr * ranges_[i].lr_ratio;
  }
  if (sums == nullptr) {
    for (std::size_t i = 0; i < ranges_.size(); ++i) {
      const Range& r = ranges_[i];
      kern::adamw_update<T>(params + r.begin, grads + r.begin, m_.data() + r.begin, v_.data() + r.begin,
                            r.end - r.begin, per_range[i]);
    }
    return;
  }
  // Grain by grain: each thread updates a grain of every range it meets, then takes the
  // grain's CRC-32s of params, m and v from the cache (the update is bound by memory, and
  // the CRCs fill its stalls: ~0 s more here, against 0.08 s of a core to read 2 GB again).
  const std::size_t n = m_.size();
  sums->params.reset(params, n * sizeof(T));
  sums->m.reset(m_.data(), n * sizeof(T));
  sums->v.reset(v_.data(), n * sizeof(T));
  const std::size_t per = crc32::GrainSums::kGrain / sizeof(T);
  const std::int64_t grains = std::int64_t(sums->m.grains());
#pragma omp parallel for schedule(static)
  for (std::int64_t k = 0; k < grains; ++k) {
    const std::size_t lo = std::size_t(k) * per, hi = std::min(n, lo + per);
    // the first range that ends after lo, and those after it that begin before hi
    std::size_t i = std::size_t(std::partition_point(ranges_.begin(), ranges_.end(),
                                                     [&](const Range& r) { return r.end <= lo; }) -
                                ranges_.begin());
    for (; i < ranges_.size() && ranges_[i].begin < hi; ++i) {
      const std::size_t a = std::max(lo, ranges_[i].begin), b = std::min(hi, ranges_[i].end);
      kern::adamw_update_on_caller<T>(params + a, grads + a, m_.data() + a, v_.data() + a, b - a, per_range[i]);
    }
    const std::uint64_t bytes = (hi - lo) * sizeof(T);
    sums->params.grain(std::uint64_t(k)) = crc32::of(params + lo, bytes);
    sums->m.grain(std::uint64_t(k)) = crc32::of(m_.data() + lo, bytes);
    sums->v.grain(std::uint64_t(k)) = crc32::of(v_.data() + lo, bytes);
  }
}

template <class T>
double global_norm(const T* grads, std::size_t n) {
  return std::sqrt(kern::sum_squares<T>(grads, n));
}

double clip_factor(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  const double c = max_norm / (norm + 1e-6);
  return c < 1.0 ? c : 1.0;
}

template class AdamW<float>;
template class AdamW<double>;
template double global_norm<float>(const float*, std::size_t);
template double global_norm<double>(const double*, std::size_t);

}  // namespace kd
