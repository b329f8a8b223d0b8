// A frozen teacher whose linear weights are held in bfloat16 (teacher.bf16): half their
// memory. A LinearHook that runs every linear layer of the teacher's frozen forward (q/k/v,
// o, gate/up, down, the head) from its bf16 copy with kern::linear_forward_bf16; the
// float32 copies of those weights are then released (release_float_linears), so only
// the embedding and the norms stay in float32. The teacher's logits change by the
// rounding of its weights to 8 significant bits.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/model/linear_hook.h"
#include "trainer/model/llama.h"

namespace kd {

class Bf16Teacher final : public LinearHook<float> {
 public:
  // params: the teacher's float32 weights (laid out by `layout`), converted here.
  Bf16Teacher(const LlamaLayout& layout, const float* params);
  // Returns the float32 pages of the linear weights (tied: not the head) to the system;
  // `params` must be the buffer given above (reading those elements afterwards gives 0).
  // Returns the bytes released.
  std::size_t release_float_linears(float* params) const;
  std::size_t bytes() const { return w_.size() * sizeof(std::uint16_t); }
  // A layer's bf16 weight (n, k), row-major; the head at layer -1.
  const std::uint16_t* weight(int layer, LinearInput site) const { return w_.data() + slot(layer, site).bf16_offset; }

  const float* forward(int, LinearInput, float* x, float*, int, int) override { return x; }
  void backward(int, LinearInput, float*, const float*, int, int) override;
  bool linear(int layer, LinearInput site, float* y, float* x, const float* w, int rows, int n, int k,
              bool accumulate) override;

 private:
  struct Slot {
    std::size_t float_offset = 0, bf16_offset = 0, count = 0;
  };
  const Slot& slot(int layer, LinearInput site) const;
  const LlamaLayout& layout_;
  std::vector<Slot> slots_;  // (layer + 1) · kLinearInputsPerLayer + site; the head at layer -1
  std::vector<std::uint16_t> w_;
};

}  // namespace kd
