#include "trainer/distill/bf16_teacher.h"

#include <sys/mman.h>
#include <unistd.h>

#include "kernels/common/bf16.h"
#include "kernels/kernels.h"
#include "base/errors.h"

namespace kd {

namespace {
std::size_t slot_index(int layer, LinearInput site) {
  return layer < 0 ? 0 : 1 + std::size_t(layer) * kLinearInputsPerLayer + std::size_t(site);
}
}  // namespace

Bf16Teacher::Bf16Teacher(const LlamaLayout& layout, const float* params) : layout_(layout) {
  const ModelSpec& s = layout.spec();
  const std::size_t d = s.d_model;
  slots_.resize(1 + std::size_t(s.n_layers) * kLinearInputsPerLayer);
  std::size_t at = 0;
  auto add = [&](int layer, LinearInput site, std::size_t offset, std::size_t count) {
    slots_[slot_index(layer, site)] = Slot{offset, at, count};
    at += count;
  };
  add(-1, LinearInput::head, layout.head(), std::size_t(s.vocab) * d);
  for (int l = 0; l < s.n_layers; ++l) {
    const auto& L = layout.layers()[std::size_t(l)];
    add(l, LinearInput::qkv, L.wqkv, std::size_t(s.qkv_dim()) * d);
    add(l, LinearInput::o, L.wo, d * std::size_t(s.q_dim()));
    add(l, LinearInput::gate_up, L.wgu, 2 * std::size_t(s.d_ff) * d);
    add(l, LinearInput::down, L.wdown, d * std::size_t(s.d_ff));
  }
  w_.resize(at);
  for (const Slot& sl : slots_) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < sl.count; ++i) w_[sl.bf16_offset + i] = common::to_bf16(params[sl.float_offset + i]);
  }
}

const Bf16Teacher::Slot& Bf16Teacher::slot(int layer, LinearInput site) const {
  const std::size_t i = slot_index(layer, site);
  KD_ASSERT(i < slots_.size() && slots_[i].count > 0, "no bf16 weight for layer {} site {}", layer, int(site));
  return slots_[i];
}

void Bf16Teacher::backward(int, LinearInput, float*, const float*, int, int) {
  KD_ASSERT(false, "a bf16 teacher is frozen: no backward");
}

bool Bf16Teacher::linear(int layer, LinearInput site, float* y, float* x, const float*, int rows, int n, int k,
                         bool accumulate) {
  const Slot& s = slot(layer, site);
  KD_ASSERT(s.count == std::size_t(n) * std::size_t(k), "bf16 weight of {} values for a {}x{} layer", s.count, n, k);
  kern::linear_forward_bf16(y, x, w_.data() + s.bf16_offset, rows, n, k, accumulate);
  return true;
}

std::size_t Bf16Teacher::release_float_linears(float* params) const {
  const std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
  std::size_t released = 0;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.count == 0) continue;
    if (i == 0 && layout_.head() == layout_.embed()) continue;  // tied: the embedding lookup reads it
    // the whole pages inside [begin, end): the pages at the ends may hold other tensors
    const auto begin = reinterpret_cast<std::uintptr_t>(params + s.float_offset);
    const auto end = reinterpret_cast<std::uintptr_t>(params + s.float_offset + s.count);
    const std::uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    if (last <= first) continue;
    if (madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) == 0) released += last - first;
  }
  return released;
}

}  // namespace kd
