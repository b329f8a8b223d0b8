// Which tensors and linear inputs of a model are quantized, and how: the `quant` config
// section applied to a model's layers, overrides resolved. A pure function of the config
// and the model shape, so bad combinations are rejected before any work starts.
//
// Layer ("module") names follow Hugging Face: model.layers.{l}.self_attn.{q,k,v,o}_proj,
// model.layers.{l}.mlp.{gate,up,down}_proj, lm_head, model.embed_tokens. q/k/v read one
// input and gate/up read one input (fused GEMMs): those inputs take q_proj's and
// gate_proj's format.
#pragma once

#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "trainer/model/linear_hook.h"
#include "trainer/model/model_spec.h"
#include "trainer/quant/observers.h"
#include "trainer/quant/quant_config.h"

namespace kd::quant {

struct WeightPlan {
  std::string module;  // e.g. model.layers.0.self_attn.q_proj
  std::string tensor;  // the parameter: module + ".weight" (the embedding for a tied head)
  int rows = 0, cols = 0;
  kern::QuantFormat format;
};

struct InputPlan {
  std::string module;  // the layer whose input this is (q_proj / gate_proj for fused inputs)
  int layer = -1;      // -1: the head
  LinearInput site = LinearInput::head;
  int cols = 0;
  kern::QuantFormat format;
};

struct QuantPlan {
  std::vector<WeightPlan> weights;  // only quantized ones
  std::vector<InputPlan> inputs;    // only quantized ones
  Calibrator weight_calibrator = Calibrator::minmax;
  ObserverConfig observer;          // activation observers
  bool learn_scales = false;
  std::int64_t fake_quant_start = 0, freeze_observers = 0;
};

// Throws InputError naming the key (quant.weight, quant.overrides.<pattern>.activation, ...)
// and the layer: unknown formats or calibrators, bits out of range, a group size that does
// not divide a layer's input dimension, token scales on weights, LSQ on FP8, a pattern
// that matches no layer.
// weight_key / activation_key: how the caller names the two formats (a config key, or a
// command-line flag such as --weight).
QuantPlan plan_quantization(const QuantSection& q, const ModelSpec& model,
                            const std::string& weight_key = "quant.weight",
                            const std::string& activation_key = "quant.activation");

// Target of an observer for a format (grid, symmetry, fp8).
Target target_of(const kern::QuantFormat& f);

}  // namespace kd::quant
