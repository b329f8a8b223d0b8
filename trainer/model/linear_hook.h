// What happens at each linear layer: its input is transformed on the way in (fake
// quantization in QAT, observation in PTQ calibration), or the hook runs the layer
// itself (integer GEMMs of a quantized model). The model calls the hook at
// every site; trainer/quant implements it. Sites are named by the layer and the linear
// they feed; q/k/v share one input, gate/up share one input.
#pragma once

namespace kd {

enum class LinearInput : int { qkv = 0, o = 1, gate_up = 2, down = 3, head = 4 };
inline constexpr int kLinearInputsPerLayer = 4;  // head is once per model (layer -1)

template <class T>
class LinearHook {
 public:
  virtual ~LinearHook() = default;
  // Returns what the linear reads. With a `buf` (rows, cols) (training: the backward
  // needs the untransformed x) the hook fills buf, a plain copy where the site is off, and
  // returns it; with buf null (frozen forward) it transforms x in place and returns x.
  virtual const T* forward(int layer, LinearInput site, T* x, T* buf, int rows, int cols) = 0;
  // dx holds the gradient w.r.t. what forward returned; turn it, in place, into the
  // gradient w.r.t. x (x: the untransformed input the forward saw).
  virtual void backward(int layer, LinearInput site, T* dx, const T* x, int rows, int cols) = 0;
  // Frozen forward only: y (rows, n) (+)= the linear layer of weight w (n, k) applied to x,
  // computed by the hook itself (integer inference); false lets the model run forward()
  // and the fp32 GEMM.
  virtual bool linear(int layer, LinearInput site, T* y, T* x, const T* w, int rows, int n, int k,
                      bool accumulate) {
    (void)layer, (void)site, (void)y, (void)x, (void)w, (void)rows, (void)n, (void)k, (void)accumulate;
    return false;
  }
};

}  // namespace kd
