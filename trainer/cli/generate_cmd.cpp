// kdtrain generate: prompts -> text from a checkpoint (its own tokenizer), decoded on the
// KV cache (trainer/eval/generator.h); the timings of prefill and decoding go to stderr.
#include <iostream>

#include <fmt/format.h>

#include "base/errors.h"
#include "trainer/cli/commands.h"
#include "trainer/eval/generator.h"
#include "trainer/quant/integer_inference.h"
#include "trainer/setup/memory_estimate.h"
#include "trainer/setup/model_loader.h"
#include "trainer/train/trainer.h"

namespace kd::cli {

int run_generate(const GenerateOptions& o) {
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(model->tokenizer.has_value(), "generate: {} holds no tokenizer (trained on synthetic tokens?)",
                 o.checkpoint);
  const auto& tok = *model->tokenizer;
  const std::vector<std::string> texts = o.prompts.empty() ? std::vector<std::string>{""} : o.prompts;
  std::vector<std::vector<std::int32_t>> prompts;
  for (const std::string& text : texts) {
    std::vector<std::int32_t> prompt = tok.encode(text);
    // A document starts as prepare framed it: with the tokenizer's bos (Llama 3), or after an
    // eot when the prompt is empty.
    if (tok.bos_id() >= 0)
      prompt.insert(prompt.begin(), tok.bos_id());
    else if (prompt.empty())
      prompt.push_back(tok.eot_id());
    for (int b = 0; b < o.batch; ++b) prompts.push_back(prompt);
  }
  const int context = o.context > 0 ? o.context : model->config.train.seq_len;
  const int threads = set_threads(o.threads > 0 ? o.threads : model->config.train.threads,
                                  o.threads > 0 ? "--threads" : "train.threads");
  const int batch = int(prompts.size());
  // the KV cache and activations, checked before anything is allocated
  check_fits_in_memory(double(Generator::bytes(model->config.model, context, batch, threads)) +
                           double(model->params.size()) * sizeof(float),
                       fmt::format("generate: the KV cache for {} sequences of --context {} positions and the model",
                                   batch, context),
                       "lower --batch, --context or the prompts");
  // a quantized checkpoint generates with its integer GEMMs
  std::unique_ptr<quant::IntegerInference> integer;
  if (model->quantized) integer = std::make_unique<quant::IntegerInference>(*model->quantized, model->config.model);
  Generator g(*model->layout, context, batch, threads, integer.get(), o.no_kv_cache);
  SamplingSpec s;
  s.max_new_tokens = o.max_new_tokens;
  s.temperature = o.temperature;
  s.top_k = o.top_k;
  s.top_p = o.top_p;
  s.seed = o.seed;
  s.stop_token = tok.eot_id();
  const std::vector<Generation> out = g.generate(model->params.data(), prompts, s);
  std::size_t at_context = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::vector<std::int32_t> ids = out[i].tokens;
    if (!ids.empty() && ids.back() == tok.eot_id()) ids.pop_back();
    at_context += out[i].stop == StopReason::context;
    std::cout << texts[i / std::size_t(o.batch)] << tok.decode(ids) << "\n";
  }
  const GenerationStats& st = g.stats();
  std::string stop;
  if (at_context) stop = fmt::format(" | {} of {} stopped at the context's end ({} positions)", at_context, out.size(), context);
  fmt::print(stderr, "generate{}: batch {} | prefill {} tokens in {:.3f} s ({:.1f} tokens/s) | decode {} tokens in {:.3f} s "
             "({:.1f} tokens/s){}\n", o.no_kv_cache ? " (no KV cache)" : "", batch, st.prefill_tokens, st.prefill_s,
             st.prefill_s > 0 ? double(st.prefill_tokens) / st.prefill_s : 0.0, st.decode_tokens, st.decode_s,
             st.decode_s > 0 ? double(st.decode_tokens) / st.decode_s : 0.0, stop);
  return 0;
}

}  // namespace kd::cli
