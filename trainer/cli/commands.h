// kdtrain's subcommands, one entry point each, each in its own <name>_cmd.cpp beside this
// file; main.cpp only builds the command line and calls the one asked for. Each returns the
// process exit code; errors are thrown as InputError (exit 2) or RuntimeFailure (exit 3)
// and reported by main().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kd {
struct TrainCommand;  // trainer/setup/run_inputs.h
}

namespace kd::cli {

// `kdtrain train` and `kdtrain distill` (train_cmd.cpp)
int run_train(const TrainCommand& cmd);
// `kdtrain cache-teacher` (cache_teacher_cmd.cpp): the run's teacher into a cache at out_dir
int run_cache_teacher(const TrainCommand& cmd, const std::string& out_dir);

struct ValidateOptions {
  std::string config;
  std::vector<std::string> overrides;
  int ranks = 0;  // > 0: also the memory estimate per rank on this many ranks
};
int run_validate(const ValidateOptions& o);

int run_config_doc();  // `kdtrain config --doc`
// `kdtrain help [topic]`: kdtrain's usage, or one subcommand's
int run_help(CLI::App& app, const std::string& topic);

struct BenchOptions {
  std::string config = "configs/bench-cpu.yaml";
  std::vector<std::string> overrides;
  bool student_only = false;
  int threads = 0;
  double peak_gflops = 0;
  bool checkpoint = false;     // also time a checkpoint's write, read and stall
  std::string checkpoint_dir;  // where (default: a temporary directory)
};
int run_bench(const BenchOptions& o);

struct SweepOptions {
  std::string file;     // the sweep file
  std::string summary;  // --summary DIR
  bool local = false;   // run the points here, one after another
  bool no_submit = false;
};
int run_sweep(const SweepOptions& o);

struct PeakOptions {
  double seconds = 3.0;
  int threads = 0;
};
int run_bench_peak(const PeakOptions& o);

struct EvalOptions {
  std::string checkpoint;
  std::string data;     // validation shard (default: the run's data.val)
  std::string teacher;  // teacher checkpoint for agreement/KL (default: the run's teacher, if any)
  bool no_teacher = false;
  std::int64_t tokens = -1;  // -1: the run's train.eval_tokens; 0: the whole shard
  int threads = 0;
  bool json = false;
  bool fp32_baseline = false;  // quantized checkpoints: also time the dequantized fp32 model
};
int run_eval(const EvalOptions& o);

struct GenerateOptions {
  std::string checkpoint;
  std::vector<std::string> prompts;  // --prompt, repeatable; none: one empty prompt
  int batch = 1;                     // samples of each prompt
  int context = 0;                   // positions per sequence; 0: the model's train.seq_len
  bool no_kv_cache = false;          // the whole context per token (the reference benches time)
  int max_new_tokens = 100;
  double temperature = 0.8;
  int top_k = 40;
  double top_p = 0.95;
  std::uint64_t seed = 1;
  int threads = 0;
};
int run_generate(const GenerateOptions& o);

// kdtrain generate-data: the teacher's continuations of prompts from a shard, as a new shard
// (sequence-level KD).
struct GenerateDataOptions {
  std::string checkpoint;
  std::string out;   // a directory: train.bin and tokenizer.json
  std::string data;  // the prompts' shard; "" = the checkpoint's data.train
  int sequences = 1024;
  int prompt_tokens = 32;
  int max_new_tokens = 0;  // 0: the checkpoint's train.seq_len - prompt_tokens
  double temperature = 0;  // greedy: sequence-level KD's mode-seeking (Kim & Rush used beam search)
  int top_k = 0;
  double top_p = 1.0;
  std::uint64_t seed = 1;
  int batch = 16;
  int threads = 0;
  bool overwrite = false;
};
int run_generate_data(const GenerateDataOptions& o);

int run_inspect(const std::string& checkpoint, bool verify_only = false);

struct PtqOptions {
  std::string checkpoint;
  std::string out;
  std::string weight, activation;       // formats ("" = the checkpoint's quant section or defaults)
  std::string calibrator, weight_calibrator;
  std::string data;                     // calibration shard (default: the run's data.train)
  int batches = 16;
  std::uint64_t seed = 7;
  bool recalibrate = false;             // ignore a QAT checkpoint's quantizer state
  bool head = false;                    // also quantize the output head (quant.head)
  int threads = 0;
  bool overwrite = false;               // replace an existing --out (never the input)
  // one-shot methods (trainer/oneshot): rtn (the calibrators alone), gptq, awq, smoothquant
  std::string method = "rtn";
  int samples = 128, seq_len = 0;       // calibration sequences × tokens (0: the run's train.seq_len)
  double damp = 0.01;                   // gptq: the Hessian's dampening, × mean diagonal
  int block = 128;                      // gptq: lazy-batch columns
  bool act_order = false, static_groups = false;  // gptq
  double alpha = 0.5;                   // smoothquant's migration strength
  bool no_clip = false;                 // awq: skip the clipping search
  std::vector<std::string> overrides;   // PATTERN=WEIGHT: quant.overrides.<PATTERN>.weight
  double sparsity = -1;                 // sparsegpt (joint): the pruned fraction of every row
  std::string nm;                       // or N:M
};
int run_ptq(const PtqOptions& o);

// kdtrain prune: a float checkpoint → a pruned one (kind "pruned": the weights with their
// zeros, group "masks"), one-shot by magnitude, Wanda or SparseGPT (trainer/oneshot).
struct PruneOptions {
  std::string checkpoint;
  std::string out;
  std::string method = "sparsegpt";     // magnitude | wanda | sparsegpt
  double sparsity = -1;                 // unstructured fraction of each row (-1: not given)
  std::string nm;                       // or N:M, e.g. 2:4
  std::string data;                     // calibration shard (default: the run's data.train)
  int samples = 128, seq_len = 0;       // calibration sequences × tokens (0: train.seq_len)
  std::uint64_t seed = 7;
  double damp = 0.01;                   // sparsegpt
  int block = 128;                      // sparsegpt: mask and lazy-update block
  int threads = 0;
  bool overwrite = false;
};
int run_prune(const PruneOptions& o);

struct ExportOptions {
  std::string checkpoint;
  std::string out;
  bool compact = false;  // cut out pruned KV groups and FFN neurons
  std::string format;    // "hf": a Hugging Face model directory at `out`; "gguf": a GGUF file
  std::string gguf_type;  // f32 | f16 | q8_0; "" = q8_0 for a quantized checkpoint, f16 otherwise
  int context_length = 0;  // GGUF llama.context_length; 0 = the config's train.seq_len
  bool overwrite = false;  // replace an existing --out (never the input)
};
int run_export(const ExportOptions& o);

struct ImportHfOptions {
  std::string dir;  // a Hugging Face model directory
  std::string out;  // the kdtrain checkpoint to write
  bool overwrite = false;
};
int run_import_hf(const ImportHfOptions& o);

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out;
  int vocab_size = 4096;
  int val_every = 20;
  int threads = 0;
  std::string tokenizer;  // use this one (checkpoint, HF directory or tokenizer file) instead of training
  std::vector<std::string> include, exclude;  // globs for the files of directory inputs
  bool keep_duplicates = false;
  bool overwrite = false;  // replace the tokenizer and shards already in out
};
int run_prepare(const PrepareOptions& o);

// `kdtrain tokenize` / `kdtrain detokenize` (tokenize_cmd.cpp)
struct TokenizeOptions {
  std::string tokenizer;  // a checkpoint, a Hugging Face model directory or a tokenizer file
  std::string text;       // --text (tokenize) / --ids (detokenize) ...
  bool has_text = false;  // ... given (else the input file, else stdin)
  std::string input;      // a file; "" or "-" = stdin
  std::string out;        // "" = stdout
  bool overwrite = false;
  bool ids_only = false;  // tokenize: the ids alone, space-separated (detokenize reads them back)
  bool framed = false;    // tokenize: bos (if any) and eot around the text, as in prepare's shards
};
int run_tokenize(const TokenizeOptions& o);
int run_detokenize(const TokenizeOptions& o);

}  // namespace kd::cli
