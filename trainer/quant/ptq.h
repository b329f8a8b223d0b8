// Post-training quantization: a trained float model + calibration batches + a method →
// a QuantizedModel. The quantizers are the QAT ones (QatState), fed calibration batches
// with fake quantization off; a QAT checkpoint's own quantizer state is used as it is
// (learned LSQ scales included) unless recalibration is asked for.
#pragma once

#include <map>
#include <string>

#include "data/batch_source.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/model/llama.h"
#include "trainer/quant/quant_config.h"
#include "trainer/quant/quantized_model.h"

namespace kd::quant {

struct PtqInput {
  const LlamaLayout* layout = nullptr;  // the float model ...
  const ParamTable* table = nullptr;    // ... its table ...
  const float* params = nullptr;        // ... and weights
  const ckpt::CheckpointReader* checkpoint = nullptr;  // where LSQ scales / QAT state come from
  bool use_qat_state = false;           // take scales from the checkpoint's "quant" group
  data::BatchSource* calibration = nullptr;  // null: no calibration data
  int batches = 0, batch_size = 1, seq_len = 1, threads = 1;
  // tensor name → scales a one-shot method fixed (params then hold that method's weights)
  const std::map<std::string, WeightScales>* fixed_scales = nullptr;
};

struct PtqReport {
  bool calibrated = false;       // activation observers fed with data
  int static_inputs = 0;         // inputs with calibrated static scales
  double calib_loss = 0;         // the float model's CE on the calibration batches
};

// Throws InputError when static input scales need calibration data and there is none
// (naming `data_key`, the flag or key that gives it).
QuantizedModel post_training_quantize(const QuantSection& q, const ModelSpec& spec, const PtqInput& in,
                                      const std::string& data_key, PtqReport* report);

}  // namespace kd::quant
