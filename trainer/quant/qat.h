// Quantization-aware training: the quantizers of one student, their schedule and state.
//
// Weights: before a step's forward passes, every planned weight is fake-quantized into a
// shadow copy of the parameter buffer, which the forward and backward read; after the
// micro-batches, the accumulated gradient w.r.t. the quantized weight goes through the
// straight-through estimator (or LSQ) to the real weight. Inputs of linear layers: this
// object is the model's LinearHook, fake-quantizing each planned input on the way in.
//
// Schedule (PyTorch's enable_observer / enable_fake_quant / freeze pattern), at step t:
//   observers run        while freeze_observers == 0 or t < freeze_observers
//   fake quantization on when t >= fake_quant_start (before: the model runs in float)
// Weight scales follow the current weights while observers run (minmax or MSE per scale
// slot) and then stay fixed; scales taken from a quantized init checkpoint are held from
// the start (hold_weight_scales). Static (:tensor) input scales come from the activation
// observer; :token scales are computed from each row at run time. With learn_scales
// (LSQ), scales are auxiliary parameters "quant.<layer>.weight_scale" / ".input_scale",
// initialised once from the calibrators when fake quantization starts and trained from
// then on; observers never overwrite them afterwards.
//
// The state (scales, zero points, observer statistics and histograms, which LSQ scales
// were initialised) is checkpointed in group "quant" (docs/checkpoint-format.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/dist/comm.h"
#include "trainer/model/llama.h"
#include "trainer/quant/quant_plan.h"
#include "trainer/util/aligned_buffer.h"

namespace kd::quant {

class QatState final : public LinearHook<float> {
 public:
  // Declares the LSQ scale tensors in `table` (auxiliary): before the optimizer is built.
  QatState(const QuantPlan& plan, ParamTable& table);

  // Before a training step's forward passes: sets the phase for `step`, updates weight
  // scales, returns the parameters the forward must read (the shadow copy, or params
  // itself before fake quantization starts). grads: where LSQ input-scale gradients go.
  const float* begin_step(std::int64_t step, float* params, float* grads);
  // After the step's micro-batches: gradients w.r.t. quantized weights → real weights
  // (STE mask, LSQ scale gradients). Before the optimizer step. While observers run, the
  // input statistics of the step (every micro-batch; with a data-parallel group, every
  // rank's, reduced over it: a collective) are merged into the observers as one batch;
  // the next step's begin_step computes the scales from them. So the first step with
  // fake quantization on and no statistics yet runs the static inputs in float.
  void end_step(const float* params, float* grads, dist::Comm* group = nullptr);
  // Evaluation with the current quantizers (no observing): the parameters to read.
  const float* begin_eval(float* params);
  void end_eval() { training_ = true; }
  // PTQ: forward passes after this only observe (float model); finish_calibration then
  // computes every scale from the observers and the weights.
  void begin_calibration(float* params);
  void finish_calibration();

  // A weight's scales fixed by the quantized checkpoint the run starts from (train.init_from
  // of a `kdtrain ptq` result, e.g. GPTQ's or AWQ's own scales): they are held — the weight
  // calibrator never recomputes them, so fake quantization keeps the method's grid while
  // the weights train under it (ModelOpt's QAT after calibration); with LSQ they are the
  // learned scales' start. zero: unshifted (FakeQuant's). false, changing nothing, when the
  // run plans another format or scale count for the module (its calibrator then decides).
  bool hold_weight_scales(const std::string& module, const kern::QuantFormat& format, const std::vector<float>& scale,
                          const std::vector<std::int32_t>& zero, float* params);

  // On-policy sampling inside a step (trainer/distill/on_policy.h): between these the hook
  // fake-quantizes inputs as the step does but observes nothing (the samples are not the
  // step's data), and leaves the step's parameters and gradients alone.
  void begin_sampling() { sampling_ = true; }
  void end_sampling() { sampling_ = false; }

  bool fake_quant_on() const { return fake_quant_; }
  bool observing() const { return observing_; }
  const QuantPlan& plan() const { return plan_; }

  // LinearHook
  const float* forward(int layer, LinearInput site, float* x, float* buf, int rows, int cols) override;
  void backward(int layer, LinearInput site, float* dx, const float* x, int rows, int cols) override;

  // What a training step does at one linear input, for a backend that applies it on its
  // own memory (the CUDA backend: trainer/quant/qat_cuda.h). Mirrors forward()/backward()
  // in training: observe (the step observer must see x), then pass x through unchanged, or
  // fake-quantize it with the site's static scale (or its LSQ scale at params + lsq), or
  // with scales computed per row (dynamic formats).
  struct TrainSite {
    const kern::QuantFormat* format = nullptr;  // null: no quantizer here (pass through)
    bool observe = false;
    bool quantize = false;  // false: pass through (before fake quantization, or no statistics yet)
    bool dynamic = false;   // per-row scales from x itself
    std::size_t lsq = SIZE_MAX;  // the LSQ scale in the flat buffer (static sites)
    float scale = 1.0f;          // the static scale without LSQ
    std::int32_t zero = 0;
    float lsq_grad_factor = 0;   // LSQ's gradient scale for (rows, cols) inputs
  };
  TrainSite train_site(int layer, LinearInput site, int rows, int cols) const;
  // The step observer of a static site sees x (rows·cols values on the host).
  void observe_step_input(int layer, LinearInput site, const float* x, std::size_t n);

  // Checkpoint group "quant": views into this object (valid until it changes).
  std::vector<ckpt::TensorView> state_tensors() const;
  // Restores what state_tensors wrote; InputError naming the tensor when it does not fit
  // this plan (another quant config).
  void load_state(const ckpt::CheckpointReader& r);

  // Current scales/zero points of a weight (for PTQ export) by module name; null if absent.
  struct WeightQuant {
    const float* scale;
    const std::int32_t* zero;
    std::size_t count;
  };
  WeightQuant weight_quant(const std::string& module, const float* params) const;
  // Static input scale / zero point of a layer's input (PTQ export); false if not static.
  bool input_quant(const std::string& module, const float* params, float* scale, std::int32_t* zero) const;
  // One line per quantized layer: format, scales (for logs).
  std::string summary() const;

 private:
  struct WeightSite {
    WeightPlan plan;
    std::size_t offset = 0;            // the weight in the flat buffer
    std::size_t lsq = SIZE_MAX;        // its scale tensor (LSQ) in the flat buffer
    std::vector<float> scale;          // non-LSQ scales (LSQ: read from params)
    std::vector<std::int32_t> zero;
    bool calibrated = false;           // scales computed at least once (LSQ: initialised)
    bool held = false;                 // from the init checkpoint: never recomputed
  };
  struct InputSite {
    InputPlan plan;
    std::size_t lsq = SIZE_MAX;
    float scale = 1.0f;
    std::int32_t zero = 0;
    std::unique_ptr<Observer> observer;       // :tensor formats
    std::unique_ptr<Observer> step_observer;  // what the current step saw (minmax or histogram)
    bool calibrated = false;
    bool dirty = false;                  // observed since the scale was last computed
    std::vector<float> row_scale;        // :token scratch
    std::vector<std::int32_t> row_zero;
  };

  void calibrate_weight(WeightSite& w, const float* params, float* scale_out);
  const float* begin_eval_weights(float* params);  // the shadow copy (fake quantization on)
  InputSite* site(int layer, LinearInput s);
  const InputSite* site(int layer, LinearInput s) const;
  const float* scale_of(const InputSite& s) const;
  void update_input_scale(InputSite& s);  // from its observer (non-LSQ)
  void init_lsq_input(InputSite& s, float* params);  // the LSQ scale from its observer, once
  std::unique_ptr<Observer> make_step_observer() const;
  // LSQ scales stay positive: the optimizer may push one through zero (PyTorch clamps too)
  void clamp_lsq_scales(float* params) const;

  QuantPlan plan_;
  const ParamTable* table_;
  std::vector<WeightSite> weights_;
  std::vector<InputSite> inputs_;
  std::vector<int> site_index_;  // (layer + 1) * 5 + site → index in inputs_, or -1
  AlignedBuffer<float> shadow_;
  float* params_ = nullptr;  // of the current step / evaluation
  float* grads_ = nullptr;
  bool observing_ = true, fake_quant_ = false, training_ = true, calibrating_ = false, sampling_ = false;
  // what state_tensors() points into
  mutable std::vector<std::int32_t> calibrated_flags_;
  mutable std::vector<std::vector<double>> observer_states_;
};

}  // namespace kd::quant
