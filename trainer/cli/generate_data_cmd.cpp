// kdtrain generate-data: sequence-level KD's data (Kim & Rush 2016). The teacher continues
// prompts drawn from a token shard (windows of --prompt-tokens, cut after their last end of
// text so no prompt spans two documents), and every prompt + continuation + end of text is a
// document of a new kdtrain shard, with the teacher's tokenizer beside it: a prepared dataset
// that `train` and `distill` read as data.train (the held-out split stays the original one).
// Greedy by default, the closest to the paper's beam search (the teacher's mode); sampled with
// --temperature. Prompt i is window i of the seed's draw (data/token_dataset.h) and samples
// from stream i, so the same flags give the same shard at any --batch.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "base/errors.h"
#include "data/shards/token_shard.h"
#include "data/token_dataset.h"
#include "trainer/cli/calibration_arg.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/eval/generator.h"
#include "trainer/eval/sample_metrics.h"
#include "trainer/quant/integer_inference.h"
#include "trainer/setup/memory_estimate.h"
#include "trainer/setup/model_loader.h"
#include "trainer/train/trainer.h"

namespace kd::cli {

int run_generate_data(const GenerateDataOptions& o) {
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(model->tokenizer.has_value(), "generate-data: {} holds no tokenizer (trained on synthetic tokens?)",
                 o.checkpoint);
  const auto& tok = *model->tokenizer;
  const std::string train = (std::filesystem::path(o.out) / "train.bin").string();
  const std::string tok_path = (std::filesystem::path(o.out) / "tokenizer.json").string();
  refuse_input_as_output("generate-data", train, {o.checkpoint});
  refuse_existing_output("generate-data", train, o.overwrite);
  refuse_existing_output("generate-data", tok_path, o.overwrite);
  const CalibrationShard src = open_calibration(o.data, *model, o.checkpoint, "generate-data", train, "prompt");
  KD_CHECK_INPUT(src.shard != nullptr, "generate-data: give the prompts' shard with --data ({} has no data.train)",
                 o.checkpoint);
  const int context = model->config.train.seq_len;
  KD_CHECK_INPUT(o.prompt_tokens < context, "--prompt-tokens {} leaves no room in the teacher's context of {} tokens "
                 "(train.seq_len of {})", o.prompt_tokens, context, o.checkpoint);
  const int new_tokens = o.max_new_tokens > 0 ? o.max_new_tokens : context - o.prompt_tokens;
  KD_CHECK_INPUT(o.prompt_tokens + new_tokens <= context, "--prompt-tokens {} + --max-new-tokens {} is more than the "
                 "teacher's context of {} tokens (train.seq_len of {})", o.prompt_tokens, new_tokens, context,
                 o.checkpoint);
  KD_CHECK_INPUT(src.shard->size() > std::size_t(o.prompt_tokens),
                 "{}: {} holds {} tokens, fewer than one prompt of {} + 1 (--prompt-tokens)", src.key, src.path,
                 src.shard->size(), o.prompt_tokens);
  const int threads = set_threads(o.threads > 0 ? o.threads : model->config.train.threads,
                                  o.threads > 0 ? "--threads" : "train.threads");
  const int batch = std::min(o.batch, o.sequences);
  check_fits_in_memory(double(Generator::bytes(model->config.model, context, batch, threads)) +
                           double(model->params.size()) * sizeof(float),
                       fmt::format("generate-data: the KV cache for --batch {} of {} positions and the model", batch,
                                   context),
                       "lower --batch");

  std::unique_ptr<quant::IntegerInference> integer;
  if (model->quantized) integer = std::make_unique<quant::IntegerInference>(*model->quantized, model->config.model);
  Generator g(*model->layout, context, batch, threads, integer.get());
  SamplingSpec s;
  s.max_new_tokens = new_tokens;
  s.temperature = o.temperature;
  s.top_k = o.top_k;
  s.top_p = o.top_p;
  s.seed = o.seed;
  s.stop_token = tok.eot_id();
  data::TokenDataset prompts(src.shard, model->config.model.vocab, o.prompt_tokens, o.seed);
  std::vector<std::uint32_t> out;
  std::uint64_t text_bytes = 0;
  std::vector<std::int32_t> window(std::size_t(o.prompt_tokens)), labels(window.size());
  std::int64_t generated = 0;
  std::size_t ended = 0;
  const bool tty = isatty(fileno(stdout)) != 0;
  for (int first = 0; first < o.sequences; first += batch) {
    const int n = std::min(batch, o.sequences - first);
    std::vector<std::vector<std::int32_t>> ps;
    for (int i = 0; i < n; ++i) {
      prompts.sequence(first + i, window.data(), labels.data(), o.prompt_tokens);
      ps.push_back(document_prompt(window.data(), o.prompt_tokens, tok.eot_id()));  // one document's tokens
    }
    const std::vector<Generation> gen = g.generate(model->params.data(), ps, s, std::uint64_t(first));
    for (int i = 0; i < n; ++i) {
      std::vector<std::int32_t> doc = ps[std::size_t(i)];
      if (doc.size() == 1 && doc[0] == tok.eot_id()) doc.clear();  // the start marker is not text
      for (std::int32_t t : gen[std::size_t(i)].tokens) {
        if (t != tok.eot_id()) doc.push_back(t);
      }
      ended += gen[std::size_t(i)].stop == StopReason::stop_token;
      generated += std::int64_t(gen[std::size_t(i)].tokens.size());
      text_bytes += tok.decode(doc).size();
      for (std::int32_t t : doc) out.push_back(std::uint32_t(t));
      out.push_back(std::uint32_t(tok.eot_id()));
    }
    if (tty) {
      fmt::print("generate-data: {}/{} documents\r", first + n, o.sequences);
      std::fflush(stdout);
    }
  }
  std::filesystem::create_directories(o.out);
  data::write_kdtrain_shard(train, out, src.shard->token_bytes(), text_bytes, tok.hash());
  tok.save(tok_path);
  const GenerationStats& st = g.stats();
  fmt::print("generate-data: {} -> {}: {} documents, {} tokens ({} generated by the teacher, {} ended with end of "
             "text; {}), {} bytes of text | decode {:.1f} tokens/s\n", o.checkpoint, train, o.sequences, out.size(),
             generated, ended, o.temperature > 0 ? fmt::format("sampled at temperature {}", o.temperature) : "greedy",
             text_bytes, st.decode_s > 0 ? double(st.decode_tokens) / st.decode_s : 0.0);
  return 0;
}

}  // namespace kd::cli
