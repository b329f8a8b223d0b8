#include "trainer/quant/ptq.h"

#include "trainer/eval/evaluator.h"
#include "trainer/quant/qat.h"
#include "trainer/util/aligned_buffer.h"
#include "base/errors.h"

namespace kd::quant {

QuantizedModel post_training_quantize(const QuantSection& q, const ModelSpec& spec, const PtqInput& in,
                                      const std::string& data_key, PtqReport* report) {
  const QuantPlan plan = plan_quantization(q, spec);
  // the QAT machinery on a copy of the table (LSQ scales, when learned, are extra tensors)
  ParamTable table = *in.table;
  QatState qat(plan, table);
  AlignedBuffer<float> params(table.total());
  std::copy(in.params, in.params + in.table->total(), params.data());
  if (table.total() > in.table->total()) {
    KD_CHECK_INPUT(in.checkpoint != nullptr && in.use_qat_state,
                   "ptq: quant.learn_scales needs the learned scales of a QAT checkpoint (LSQ is a training method)");
    for (std::size_t i = in.table->size(); i < table.size(); ++i) {
      in.checkpoint->read("model", table[i].name, table[i].shape, params.data() + table[i].offset);
    }
  }
  int static_inputs = 0;
  for (const auto& ip : plan.inputs) static_inputs += ip.format.granularity == kern::QuantGranularity::tensor;
  PtqReport rep;
  rep.static_inputs = static_inputs;
  if (in.use_qat_state) {
    qat.load_state(*in.checkpoint);
    qat.begin_eval(params.data());  // weights never calibrated in the run get their scales now
    qat.end_eval();
  } else {
    qat.begin_calibration(params.data());
    if (static_inputs > 0) {
      KD_CHECK_INPUT(in.calibration != nullptr && in.batches > 0,
                     "ptq: {} linear inputs have static (:tensor) scales, which need calibration data: give {} "
                     "(or use a :token activation format, whose scales are computed at run time)",
                     static_inputs, data_key);
      Evaluator ev(*in.layout, nullptr, in.batch_size, in.seq_len, in.threads, &qat);
      rep.calib_loss = ev.run(params.data(), nullptr, *in.calibration, in.batches).loss;
      rep.calibrated = true;
    }
    qat.finish_calibration();
  }
  QuantizedModel m;
  m.plan = plan;
  for (const WeightPlan& wp : plan.weights) {
    if (in.fixed_scales) {
      if (const auto it = in.fixed_scales->find(wp.tensor); it != in.fixed_scales->end()) {
        const WeightScales& f = it->second;
        KD_ASSERT(f.scale.size() == wp.format.scale_count(wp.rows, wp.cols), "fixed scales of {}", wp.tensor);
        m.weights.push_back(quantize_tensor(wp, params.data() + table.at(wp.tensor).offset, f.scale.data(),
                                            f.zero.empty() ? nullptr : f.zero.data()));
        continue;
      }
    }
    const auto wq = qat.weight_quant(wp.module, params.data());
    KD_ASSERT(wq.scale != nullptr, "no quantizer for {}", wp.module);
    m.weights.push_back(quantize_tensor(wp, params.data() + table.at(wp.tensor).offset, wq.scale, wq.zero));
  }
  for (const InputPlan& ip : plan.inputs) {
    QuantizedInput qi;
    qi.plan = ip;
    if (ip.format.granularity == kern::QuantGranularity::tensor) {
      KD_ASSERT(qat.input_quant(ip.module, params.data(), &qi.scale, &qi.zero), "no static quantizer for {}",
                ip.module);
    }
    m.inputs.push_back(qi);
  }
  if (report) *report = rep;
  return m;
}

}  // namespace kd::quant
