// kdtrain eval: validation loss, perplexity, bits per byte and (given a teacher) top-1
// agreement and KL, for a checkpoint.
#include <cmath>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "data/shards/token_shard.h"
#include "trainer/cli/commands.h"
#include "trainer/eval/evaluator.h"
#include "trainer/run/model_loader.h"
#include "trainer/train/trainer.h"
#include "trainer/util/errors.h"

namespace kd::cli {

int run_eval(const EvalOptions& o) {
  const auto model = load_model(o.checkpoint);
  const Config& cfg = model->config;
  const std::string data = o.data.empty() ? cfg.data.val : o.data;
  KD_CHECK_INPUT(!data.empty(), "eval: {} names no validation shard; give --data", o.checkpoint);
  const data::TokenShard shard = data::TokenShard::open(data);
  std::unique_ptr<LoadedModel> teacher;
  std::string tpath = o.teacher;
  if (tpath.empty() && !o.no_teacher && cfg.has_teacher) tpath = cfg.teacher.checkpoint;
  if (!tpath.empty()) {
    teacher = load_model(tpath);
    check_teacher_vocab(cfg.model.vocab, teacher->config.model.vocab,
                        model->tokenizer ? model->tokenizer->vocab_size() : 0, tpath);
  }
  const int threads = set_threads(o.threads > 0 ? o.threads : cfg.train.threads);
  Evaluator ev(*model->layout, teacher ? teacher->layout.get() : nullptr, cfg.train.batch_size, cfg.train.seq_len,
               threads);
  const std::int64_t tokens = o.tokens >= 0 ? o.tokens : cfg.train.eval_tokens;
  const EvalResult r = ev.run(model->params.data(), teacher ? teacher->params.data() : nullptr, shard, tokens);
  if (o.json) {
    nlohmann::json j{{"checkpoint", o.checkpoint}, {"step", model->step}, {"data", data}, {"val_loss", r.loss},
                     {"val_ppl", r.ppl}, {"val_tokens", r.tokens}};
    if (std::isfinite(r.bpb)) j["val_bpb"] = r.bpb;
    if (teacher) {
      j["agreement"] = r.agreement;
      j["val_kl"] = r.kl;
    }
    std::cout << j.dump() << "\n";
    return 0;
  }
  fmt::print("checkpoint {} (step {}), data {}\n", o.checkpoint, model->step, data);
  fmt::print("val loss {:.6f} nats/token | ppl {:.3f} | bits per byte {:.4f} | {} tokens\n", r.loss, r.ppl, r.bpb,
             r.tokens);
  if (teacher) fmt::print("teacher {}: top-1 agreement {:.4f} | KL(teacher||model) {:.5f}\n", tpath, r.agreement, r.kl);
  return 0;
}

}  // namespace kd::cli
