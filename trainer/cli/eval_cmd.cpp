// kdtrain eval: validation loss, perplexity, bits per byte and (given a teacher) top-1
// agreement and KL, for a checkpoint.
#include <omp.h>

#include <cmath>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "data/shards/token_shard.h"
#include "data/token_dataset.h"
#include "trainer/cli/commands.h"
#include "trainer/eval/evaluator.h"
#include "trainer/eval/sample_metrics.h"
#include "trainer/quant/integer_inference.h"
#include "trainer/quant/quant_format.h"
#include "trainer/setup/model_loader.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

namespace kd::cli {

int run_eval(const EvalOptions& o) {
  const auto model = load_model(o.checkpoint);
  const Config& cfg = model->config;
  const std::string data = o.data.empty() ? cfg.data.val : o.data;
  KD_CHECK_INPUT(!data.empty(), "eval: {} names no validation shard; give --data", o.checkpoint);
  const data::TokenShard shard = data::TokenShard::open(data);
  if (model->tokenizer) {
    data::check_shard_tokenizer(shard, "validation", model->tokenizer->hash(), "checkpoint " + o.checkpoint);
  }
  std::unique_ptr<LoadedModel> teacher;
  std::string tpath = o.teacher;
  if (tpath.empty() && !o.no_teacher && cfg.has_teacher) tpath = cfg.teacher.checkpoint;
  if (!tpath.empty()) {
    teacher = load_model(tpath);
    check_teacher_vocab(cfg.model.vocab, teacher->config.model.vocab,
                        model->tokenizer ? model->tokenizer->vocab_size() : 0, tpath);
  }
  const int threads = set_threads(o.threads > 0 ? o.threads : cfg.train.threads,
                                  o.threads > 0 ? "--threads" : "train.threads");
  // a quantized checkpoint runs its integer GEMMs (see trainer/quant/integer_inference.h)
  std::unique_ptr<quant::IntegerInference> integer;
  if (model->quantized) integer = std::make_unique<quant::IntegerInference>(*model->quantized, cfg.model);
  Evaluator ev(*model->layout, teacher ? teacher->layout.get() : nullptr, cfg.train.batch_size, cfg.train.seq_len,
               threads, integer.get());
  if (model->tokenizer) ev.set_tokenizer(*model->tokenizer);  // bits per byte from the scored tokens' bytes
  const std::int64_t tokens = o.tokens >= 0 ? o.tokens : cfg.train.eval_tokens;
  double t0 = omp_get_wtime();
  const EvalResult r = ev.run(model->params.data(), teacher ? teacher->params.data() : nullptr, shard, tokens);
  const double seconds = omp_get_wtime() - t0;
  // the model's own samples scored by the teacher (see trainer/eval/sample_metrics.h)
  SampleQuality sq;
  if (teacher && cfg.distill.sample_prompts > 0) {
    const auto& d = cfg.distill;
    const SampleMetricsSpec spec = fit_sample_spec(d.sample_prompts, d.on_policy.prompt_tokens,
                                                   d.on_policy.max_new_tokens, cfg.train.seq_len);
    SampleMetrics sm(*model->layout, *teacher->layout, shard, spec, model->tokenizer ? model->tokenizer->eot_id() : -1,
                     threads);
    sq = sm.run(model->params.data(), integer.get(), teacher->params.data(), nullptr);
  }
  // tokens/s of the model alone: a teacher's forward would be timed too, so it is left out
  double tps = teacher ? 0.0 : double(r.tokens) / seconds;
  double fp32_tps = 0.0;
  EvalResult fp32{};
  if (o.fp32_baseline && integer) {
    Evaluator base(*model->layout, nullptr, cfg.train.batch_size, cfg.train.seq_len, threads);
    if (teacher) {  // time the quantized model alone too
      Evaluator alone(*model->layout, nullptr, cfg.train.batch_size, cfg.train.seq_len, threads, integer.get());
      t0 = omp_get_wtime();
      alone.run(model->params.data(), nullptr, shard, tokens);
      tps = double(r.tokens) / (omp_get_wtime() - t0);
    }
    t0 = omp_get_wtime();
    fp32 = base.run(model->params.data(), nullptr, shard, tokens);
    fp32_tps = double(fp32.tokens) / (omp_get_wtime() - t0);
  }
  if (o.json) {
    nlohmann::json j{{"checkpoint", o.checkpoint}, {"step", model->step}, {"data", data}, {"val_loss", r.loss},
                     {"val_ppl", r.ppl}, {"val_tokens", r.tokens}};
    if (tps > 0) j["tokens_per_s"] = tps;
    if (integer) {
      j["quantized"] = {{"weight", cfg.quant.weight}, {"activation", cfg.quant.activation},
                        {"execution", integer->describe()}, {"simulated", integer->any_simulated()}};
    }
    if (fp32_tps > 0) {
      j["fp32_tokens_per_s"] = fp32_tps;
      j["speedup_vs_fp32"] = tps / fp32_tps;
      j["fp32_dequantized_val_loss"] = fp32.loss;
    }
    if (std::isfinite(r.bpb)) {
      j["val_bpb"] = r.bpb;
      if (r.bpb_exact) j["val_bytes"] = r.bytes;
      if (!r.bpb_exact) j["val_bpb_estimated"] = true;  // no tokenizer: the shard's average bytes per token
    }
    if (teacher) {
      j["agreement"] = r.agreement;
      j["val_kl"] = r.kl;
    }
    if (sq.tokens > 0) {
      j["sample_teacher_nll"] = sq.teacher_nll;
      j["sample_entropy"] = sq.entropy;
      if (std::isfinite(sq.distinct2)) j["sample_distinct2"] = sq.distinct2;
    }
    std::cout << j.dump() << "\n";
    return 0;
  }
  fmt::print("checkpoint {} (step {}), data {}\n", o.checkpoint, model->step, data);
  fmt::print("val loss {:.6f} nats/token | ppl {:.3f} | bits per byte {:.4f}{} | {} tokens{}\n", r.loss, r.ppl, r.bpb,
             r.bpb_exact || !std::isfinite(r.bpb) ? "" : " (estimated: no tokenizer, the shard's average bytes per token)",
             r.tokens, r.bpb_exact ? fmt::format(", {} bytes", r.bytes) : std::string());
  if (teacher) fmt::print("teacher {}: top-1 agreement {:.4f} | KL(teacher||model) {:.5f}\n", tpath, r.agreement, r.kl);
  if (sq.tokens > 0) {
    fmt::print("samples ({} tokens of the model's continuations of {} validation prompts, temperature 1): teacher NLL "
               "{:.4f} nats/token | model entropy {:.4f} | distinct-2 {:.4f}\n", sq.tokens, cfg.distill.sample_prompts,
               sq.teacher_nll, sq.entropy, sq.distinct2);
  }
  if (integer) {
    fmt::print("quantized: weights {}, inputs {} | {}{}\n", cfg.quant.weight, cfg.quant.activation, integer->describe(),
               integer->any_simulated() ? " (simulated layers run fake-quantized fp32: their speed is not an integer speed)" : "");
  }
  if (!integer && cfg.has_quant) {
    fmt::print("note: a QAT checkpoint, evaluated here with its float weights; `kdtrain ptq {} --out Q.h5` exports "
               "the quantized model its run evaluated\n", o.checkpoint);
  }
  if (tps > 0) fmt::print("speed {:.0f} tokens/s ({} threads)\n", tps, threads);
  if (fp32_tps > 0) {
    fmt::print("fp32 OpenBLAS on the dequantized weights: {:.0f} tokens/s, val loss {:.6f} | quantized/fp32 speed {:.2f}x\n",
               fp32_tps, fp32.loss, tps / fp32_tps);
  }
  return 0;
}

}  // namespace kd::cli
