// kdtrain generate: prompt -> text from a checkpoint (its own tokenizer).
#include <iostream>

#include <fmt/format.h>

#include "trainer/cli/commands.h"
#include "trainer/quant/integer_inference.h"
#include "trainer/eval/generator.h"
#include "trainer/setup/model_loader.h"
#include "trainer/train/trainer.h"
#include "base/errors.h"

namespace kd::cli {

int run_generate(const GenerateOptions& o) {
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(model->tokenizer.has_value(), "generate: {} holds no tokenizer (trained on synthetic tokens?)",
                 o.checkpoint);
  const auto& tok = *model->tokenizer;
  std::vector<std::int32_t> prompt = tok.encode(o.prompt);
  // A document starts as prepare framed it: with the tokenizer's bos (Llama 3), or after an
  // eot when the prompt is empty.
  if (tok.bos_id() >= 0)
    prompt.insert(prompt.begin(), tok.bos_id());
  else if (prompt.empty())
    prompt.push_back(tok.eot_id());
  const int threads = set_threads(o.threads > 0 ? o.threads : model->config.train.threads,
                                  o.threads > 0 ? "--threads" : "train.threads");
  // a quantized checkpoint generates with its integer GEMMs
  std::unique_ptr<quant::IntegerInference> integer;
  if (model->quantized) integer = std::make_unique<quant::IntegerInference>(*model->quantized, model->config.model);
  Generator g(*model->layout, model->config.train.seq_len, threads, integer.get());
  SamplingSpec s;
  s.max_new_tokens = o.max_new_tokens;
  s.temperature = o.temperature;
  s.top_k = o.top_k;
  s.top_p = o.top_p;
  s.seed = o.seed;
  s.stop_token = tok.eot_id();
  const auto out = g.generate(model->params.data(), prompt, s);
  std::vector<std::int32_t> text_ids(out.begin(), out.end());
  if (!text_ids.empty() && text_ids.back() == tok.eot_id()) text_ids.pop_back();
  std::cout << o.prompt << tok.decode(text_ids) << "\n";
  return 0;
}

}  // namespace kd::cli
