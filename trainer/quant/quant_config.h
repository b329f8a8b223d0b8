// The `quant` section of a config: quantization-aware training (FakeQuant in the forward,
// straight-through or LSQ backward) for `kdtrain train` and `kdtrain distill`, and the
// defaults `kdtrain ptq` starts from. Formats are strings (trainer/quant/quant_format.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/schema.h"

namespace kd {

// Per tensor-name pattern: formats that replace the section's for matching layers.
struct QuantOverride {
  std::string weight;      // "" = keep the section's
  std::string activation;  // "" = keep the section's
  template <class V>
  void visit(V& v) {
    v.field("weight", weight, "weight format of matching layers (\"\" = the section's, none = not quantized)");
    v.field("activation", activation, "input format of matching layers (\"\" = the section's, none = not quantized)");
  }
};

struct QuantSection {
  std::string weight = "int8:channel";
  std::string activation = "int8:token";
  std::string weight_calibrator = "minmax";
  std::string activation_calibrator = "moving_average";
  double averaging_constant = 0.01;
  double percentile = 99.99;
  int histogram_bins = 4096;
  bool learn_scales = false;
  double scale_lr_ratio = 0.01;
  bool head = false;
  bool embedding = false;
  std::int64_t fake_quant_start = 0;
  std::int64_t freeze_observers = 0;
  std::vector<std::pair<std::string, QuantOverride>> overrides;
  template <class V>
  void visit(V& v) {
    using namespace config;
    v.field("weight", weight,
            "weight format: none | int2..int8 | fp8_e4m3 | fp8_e5m2, then :tensor|:channel|:g32|:g64|:g128 "
            "and :sym|:asym (e.g. int4:g128)");
    v.field("activation", activation,
            "format of every linear layer's input: none | int2..int8 | fp8_e4m3 | fp8_e5m2, then :tensor "
            "(static scale from the observer) or :token (dynamic per-token scale), :sym|:asym");
    v.field("weight_calibrator", weight_calibrator,
            "how weight scales are chosen while observers run: minmax | mse (per scale slot)");
    v.field("activation_calibrator", activation_calibrator,
            "observer of static (:tensor) activation scales: minmax | moving_average | percentile | mse | kl");
    v.field("averaging_constant", averaging_constant, "moving_average: weight of each new batch's min/max",
            open_between(0, 1));
    v.field("percentile", percentile, "percentile calibrator: the percentile of |x| kept", open_between(50, 100));
    v.field("histogram_bins", histogram_bins, "bins of the percentile/mse/kl histograms over [-R, R] (even; 4096 = TensorRT's 2048 bins of |x|)", between(8, 1 << 20));
    v.field("learn_scales", learn_scales,
            "LSQ: scales are trained (auxiliary tensors with their own AdamW state), initialised from the "
            "calibrators when fake quantization starts; else straight-through estimator");
    v.field("scale_lr_ratio", scale_lr_ratio,
            "LSQ scales learn at optim.lr times this (Adam's steps ignore gradient size, and a scale is "
            "~1e-3 of a weight's range: at the weights' rate one step could move it by 100%)",
            open_between(0, 1e6));
    v.field("head", head, "also quantize the output head's weight and input (lm_head)");
    v.field("embedding", embedding, "also quantize the token embedding's weight");
    v.field("fake_quant_start", fake_quant_start, "step from which the forward runs quantized (before: observe only)",
            at_least(0));
    v.field("freeze_observers", freeze_observers,
            "step from which observers stop and scales stay fixed (0 = observe throughout)", at_least(0));
    v.map_section("overrides", overrides,
                  "formats per layer-name pattern (glob, e.g. \"model.layers.0.*\" or \"*.down_proj\"); the first "
                  "matching pattern wins");
  }
};

}  // namespace kd
