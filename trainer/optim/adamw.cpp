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
  }
}

template <class T>
void AdamW<T>::step(T* params, const T* grads, double lr, double grad_scale) {
  ++t_;
  kern::AdamWStep s{};
  s.lr = lr;
  s.beta1 = o_.beta1;
  s.beta2 = o_.beta2;
  s.eps = o_.eps;
  s.bias_correction1 = 1.0 - std::pow(o_.beta1, double(t_));
  s.bias_correction2 = 1.0 - std::pow(o_.beta2, double(t_));
  s.grad_scale = grad_scale;
  for (const auto& r : ranges_) {
    s.weight_decay = r.decayed ? o_.weight_decay : 0.0;
    s.lr = lr * r.lr_ratio;
    kern::adamw_update<T>(params + r.begin, grads + r.begin, m_.data() + r.begin,
                              v_.data() + r.begin, r.end - r.begin, s);
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
