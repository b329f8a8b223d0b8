// kdtrain ptq: a trained checkpoint + calibration batches + a method → a quantized
// checkpoint (kind "quantized") holding integer (or FP8) codes, scales and zero points.
#include <omp.h>

#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "data/shards/token_shard.h"
#include "data/token_dataset.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/calibration_arg.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/config/config.h"
#include "trainer/oneshot/block_sequential.h"
#include "trainer/oneshot/oneshot_quant.h"
#include "trainer/quant/ptq.h"
#include "trainer/quant/quant_format.h"
#include "trainer/setup/model_loader.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

namespace kd::cli {

int run_ptq(const PtqOptions& o) {
  const double t0 = omp_get_wtime();
  refuse_input_as_output("ptq", o.out, {o.checkpoint, o.data});
  refuse_existing_output("ptq", o.out, o.overwrite);
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(!model->quantized, "ptq: {} is already quantized (kind \"quantized\"); give the float checkpoint",
                 o.checkpoint);
  ckpt::CheckpointReader reader(o.checkpoint);
  const bool qat = model->config.has_quant && reader.has_tensor("quant", "calibrated");
  Config cfg = model->config;
  // the method: the checkpoint's own quant section (a QAT run), else the defaults, then the flags
  QuantSection q = cfg.has_quant ? cfg.quant : QuantSection{};
  for (const std::string& ov : o.overrides) {
    const auto eq = ov.find('=');
    KD_CHECK_INPUT(eq != std::string::npos && eq > 0 && eq + 1 < ov.size(),
                   "--override '{}': expected PATTERN=WEIGHT, e.g. '*.down_proj=int4:g64'", ov);
    QuantOverride qo;
    qo.weight = ov.substr(eq + 1);
    q.overrides.emplace_back(ov.substr(0, eq), qo);
  }
  const bool changed = !o.overrides.empty() || !o.weight.empty() || !o.activation.empty() || !o.calibrator.empty() ||
                       !o.weight_calibrator.empty() || (o.head && !q.head);
  if (o.head) q.head = true;
  if (!o.weight.empty()) q.weight = o.weight;
  if (!o.activation.empty()) q.activation = o.activation;
  if (!o.calibrator.empty()) q.activation_calibrator = o.calibrator;
  if (!o.weight_calibrator.empty()) q.weight_calibrator = o.weight_calibrator;
  oneshot::OneshotQuantOptions one;
  one.method = oneshot::parse_quant_method(o.method, "--method");
  one.obs.damp = o.damp;
  one.obs.block = o.block;
  one.obs.act_order = o.act_order;
  one.obs.static_groups = o.static_groups;
  one.alpha = o.alpha;
  one.clip = !o.no_clip;
  const bool joint = one.method == oneshot::QuantMethod::sparsegpt;
  KD_CHECK_INPUT(!joint || o.sparsity >= 0 || !o.nm.empty(),
                 "ptq --method sparsegpt: give a sparsity target, --sparsity F or --nm N:M");
  KD_CHECK_INPUT(joint || (o.sparsity < 0 && o.nm.empty()),
                 "--sparsity and --nm are --method sparsegpt's (pruning and quantizing in one pass), not {}'s", o.method);
  if (joint) {
    KD_CHECK_INPUT((o.sparsity >= 0) != !o.nm.empty(), "ptq --method sparsegpt: give one of --sparsity and --nm");
    if (!o.nm.empty()) {
      one.sparsity = oneshot::parse_nm(o.nm, "--nm");
    } else {
      KD_CHECK_INPUT(o.sparsity > 0 && o.sparsity < 1, "--sparsity {}: a fraction of every row in (0, 1)", o.sparsity);
      one.sparsity.fraction = o.sparsity;
    }
  }
  KD_CHECK_INPUT(one.method == oneshot::QuantMethod::gptq || (!o.act_order && !o.static_groups),
                 "--act-order and --static-groups are GPTQ's (--method gptq), not {}'s", o.method);
  const bool oneshot = one.method != oneshot::QuantMethod::rtn;
  // a one-shot method sets the scales itself: a QAT run's learned ones are not used
  const bool use_qat = qat && !o.recalibrate && !changed && !oneshot;
  if (!use_qat) q.learn_scales = false;
  // flags are checked under their own names
  quant::parse_calibrator(q.activation_calibrator, o.calibrator.empty() ? "quant.activation_calibrator" : "--calibrator");
  const quant::QuantPlan plan = quant::plan_quantization(q, cfg.model, o.weight.empty() ? "quant.weight" : "--weight",
                                                        o.activation.empty() ? "quant.activation" : "--activation");
  if (oneshot) oneshot::check_method_for_plan(one, plan);
  cfg.has_quant = true;
  cfg.quant = q;
  // the pruning is done and baked into the weights (pruned ones quantize to exact zeros);
  // the stored config describes the quantized model, not a run to continue
  cfg.has_prune = false;

  const int threads = set_threads(o.threads > 0 ? o.threads : cfg.train.threads,
                                  o.threads > 0 ? "--threads" : "train.threads");
  // calibration data: --data, else the run's data.train (the training split)
  const int one_seq = o.seq_len > 0 ? o.seq_len : cfg.train.seq_len;
  const CalibrationShard cal = (o.batches > 0 || oneshot) ? open_calibration(o.data, *model, o.checkpoint, "ptq", o.out)
                                                          : CalibrationShard{};
  const std::string& data = cal.path;
  std::unique_ptr<data::TokenDataset> calib;
  std::string data_key = "--data";
  if (cal.shard && o.batches > 0) {
    check_calibration_length(cal, cfg.train.seq_len, "the batches are train.seq_len long");
    calib = std::make_unique<data::TokenDataset>(cal.shard, cfg.model.vocab, cfg.train.seq_len, std::uint64_t(o.seed));
  } else if (o.batches == 0) {
    data_key = "--batches > 0";
  } else {
    data_key = fmt::format("--data (the checkpoint's data.kind is {}, so it names no training shard)",
                           cfg.data.kind == DataKind::shards ? "shards without data.train" : "synthetic");
  }
  // the one-shot method, block by block over calibration sequences of the training split
  std::vector<float> compressed;
  oneshot::OneshotReport one_rep;
  const prune::Mask mask = load_mask(reader, *model);  // a pruned model's zeros, held by GPTQ
  one.keep = mask.data();
  if (oneshot) {
    KD_CHECK_INPUT(cal.shard, "ptq --method {}: needs calibration data: give --data (a token shard of the training "
                   "split; the checkpoint's data.kind names none)", o.method);
    check_calibration_length(cal, one_seq, o.seq_len > 0 ? "--seq-len" : "train.seq_len");
    const std::vector<std::int32_t> tokens =
        oneshot::calibration_tokens(cal.shard, cfg.model.vocab, o.samples, one_seq, o.seed, cal.key);
    compressed.assign(model->params.data(), model->params.data() + model->table.total());
    fmt::print("ptq --method {}: {} calibration sequences × {} tokens from {} (seed {})\n", o.method, o.samples,
               one_seq, data, o.seed);
    one_rep = oneshot::quantize_oneshot(one, plan, *model->layout, model->table, compressed.data(), tokens, o.samples,
                                        one_seq, threads, [](const std::string& line) { fmt::print("  {}\n", line); });
    for (const std::string& n : one_rep.notes) fmt::print("  note: {}\n", n);
  }
  quant::PtqInput in;
  in.layout = model->layout.get();
  in.table = &model->table;
  in.params = oneshot ? compressed.data() : model->params.data();
  in.fixed_scales = oneshot ? &one_rep.scales : nullptr;
  in.checkpoint = &reader;
  in.use_qat_state = use_qat;
  in.calibration = calib.get();
  in.batches = o.batches;
  in.batch_size = cfg.train.batch_size;
  in.seq_len = cfg.train.seq_len;
  in.threads = threads;
  quant::PtqReport rep;
  const quant::QuantizedModel qm = quant::post_training_quantize(q, cfg.model, in, data_key, &rep);

  // the checkpoint: float tensors that stay float, codes of the rest
  ckpt::CheckpointContents c = derived_checkpoint(reader, "quantized", cfg, model->step);
  c.state["quantized_from_qat"] = use_qat ? 1 : 0;
  c.state["calibration_batches"] = rep.calibrated ? o.batches : 0;
  std::size_t float_bytes = 0, quant_bytes = 0;
  // the masks: the joint method's, else a pruned source's, kept as the record of its zeros
  const bool source_masks = !reader.tensor_names("masks").empty();
  for (const auto& t : model->table.tensors()) {
    if (const auto it = one_rep.masks.find(t.name); it != one_rep.masks.end()) {
      c.tensors["masks"].push_back({t.name, t.shape, it->second.data(), ckpt::DType::u8});
    } else if (source_masks && reader.has_tensor("masks", t.name)) {
      c.tensors["masks"].push_back({t.name, t.shape, mask.data() + t.offset, ckpt::DType::u8});
    }
  }
  if (oneshot) {
    c.provenance["ptq_method"] = joint ? fmt::format("sparsegpt {}", one.sparsity.text()) : o.method;
    c.provenance["ptq_calibration"] = fmt::format("{} x {} tokens of {} (seed {})", o.samples, one_seq, data, o.seed);
  }
  for (const auto& t : model->table.tensors()) {
    if (qm.weight(t.name)) continue;  // the float tensors that stay: a method's folded norms among them
    c.tensors["model"].push_back({t.name, t.shape, in.params + t.offset});
    float_bytes += 4 * t.numel;
  }
  for (const auto& w : qm.weights) quant_bytes += w.stored_bytes();
  c.tensors["quantized"] = quant::quantized_views(qm);
  ckpt::write_checkpoint(o.out, c);

  fmt::print("ptq: {} -> {}{}\n", o.checkpoint, o.out,
             oneshot ? fmt::format(" (method {}, {:.1f} s)", o.method, one_rep.seconds) : "");
  fmt::print("  weights {} ({} tensors, calibrator {}) | inputs {} ({} layers{})\n", q.weight, qm.weights.size(),
             use_qat ? "QAT state" : q.weight_calibrator, q.activation, qm.inputs.size(),
             rep.static_inputs ? fmt::format(", static scales by {}", use_qat ? "QAT state" : q.activation_calibrator)
                               : "");
  if (rep.calibrated) fmt::print("  calibration: {} batches from {} (float model CE {:.4f})\n", o.batches, data, rep.calib_loss);
  fmt::print("  parameters {:.2f} MiB as float32 -> {:.2f} MiB ({:.2f} MiB quantized + {:.2f} MiB float); file {:.2f} MiB | {:.1f} s\n",
             4.0 * model->table.total() / (1 << 20), (quant_bytes + float_bytes) / double(1 << 20),
             quant_bytes / double(1 << 20), float_bytes / double(1 << 20),
             double(std::filesystem::file_size(o.out)) / (1 << 20), omp_get_wtime() - t0);
  return 0;
}

}  // namespace kd::cli
