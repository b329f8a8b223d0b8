// kdtrain: one binary, one subcommand per job. Exit codes: 0 done, 2 bad input
// (config, data, checkpoint, command line), 3 runtime failure, 99 preempted.
#include <CLI/CLI.hpp>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "base/errors.h"
#include "trainer/cli/commands.h"
#include "trainer/run/preemption.h"
#include "trainer/setup/run_inputs.h"

namespace {

// Every float option goes through this first: CLI11's NonNegativeNumber and Range let NaN
// through (each comparison with NaN is false), and inf is no temperature, probability or time.
const CLI::Validator kFinite(
    [](std::string& s) -> std::string {
      char* end = nullptr;
      const double x = std::strtod(s.c_str(), &end);
      if (end == s.c_str() || *end != '\0') return {};  // not a number: the conversion says so
      return std::isfinite(x) ? std::string() : "must be a finite number (got '" + s + "')";
    },
    "FINITE");

void add_run_options(CLI::App* c, kd::TrainCommand& t) {
  c->add_option("--config", t.config, "YAML config (kdtrain config --doc lists every key)")->check(CLI::ExistingFile);
  c->add_option("--set", t.overrides, "override a config key: a.b=value (repeatable; applied last)");
  c->add_option("--resume", t.resume, "continue the run in this run directory from its newest checkpoint");
  c->add_flag("--overwrite", t.overwrite, "replace an existing run directory of the same name");
  c->add_flag("--auto-resume", t.auto_resume,
              "with --config: continue the config's run directory from its newest checkpoint if it has one, else "
              "start it (replacing a directory left without any checkpoint); what a requeued SLURM job runs");
}

}  // namespace

int kdtrain_main(int argc, char** argv) {
  // First, before MPI and the command line: a SIGTERM / SIGUSR1 from now on is a flag, so a
  // batch job preempted in its first milliseconds still ends with 99 (requeue), not by the signal.
  kd::install_preemption_handlers();
  using namespace kd;
  // A file-size limit (ulimit -f) would kill the process with SIGXFSZ in the middle of a
  // checkpoint write; ignored, the write fails with EFBIG instead and the run exits 3 cleanly.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"kdtrain: distill, quantize and prune language models (native C++)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  cli::PrepareOptions prep;
  auto* pr = app.add_subcommand("prepare", "text files, directories or JSONL -> BPE tokenizer + token shards");
  pr->add_option("inputs", prep.inputs, "text files, directories (recursed), .jsonl files (one object with a \"text\" "
                 "field per line) or .json files (an array of such objects, or one)")->required();
  pr->add_option("--out", prep.out, "output directory: tokenizer.json, train.bin, val.bin, corpus_files.tsv")->required();
  pr->add_option("--include", prep.include, "only the files of directory inputs matching this glob (path relative to "
                 "the directory, or file name; repeatable), e.g. '*.txt'");
  pr->add_option("--exclude", prep.exclude, "skip the files of directory inputs matching this glob (repeatable), "
                 "e.g. 'README*'");
  pr->add_flag("--keep-duplicates", prep.keep_duplicates, "keep exact duplicate documents (dropped by default, the "
               "first of each kept, before the validation split)");
  pr->add_option("--vocab-size", prep.vocab_size, "tokenizer size, 256 bytes + merges + 2 special tokens")->check(CLI::Range(259, 1 << 24));
  pr->add_option("--val-every", prep.val_every, "every Nth document (in path order) goes to validation; 0 = none")->check(CLI::NonNegativeNumber);
  pr->add_option("--threads", prep.threads, "threads (0 = all)")->check(CLI::NonNegativeNumber);
  pr->add_option("--tokenizer", prep.tokenizer, "use this tokenizer instead of training one: a kdtrain checkpoint "
                 "(e.g. an imported teacher), a Hugging Face model directory, or a tokenizer.json")->excludes("--vocab-size");
  pr->add_flag("--overwrite", prep.overwrite, "replace tokenizer.json, train.bin, val.bin already in --out");

  cli::TokenizeOptions tokz, detok;
  auto* tz = app.add_subcommand("tokenize", "text -> token ids and pieces (JSON), as a tokenizer splits it");
  auto* dz = app.add_subcommand("detokenize", "token ids -> text");
  for (auto [cmd, o] : {std::pair{tz, &tokz}, std::pair{dz, &detok}}) {
    cmd->add_option("--tokenizer", o->tokenizer, "a kdtrain checkpoint, a Hugging Face model directory, or a "
                    "tokenizer.json (kdtrain's or Hugging Face's)")->required();
    cmd->add_option("input", o->input, cmd == tz ? "a text file (default: stdin)"
                                                 : "a file of ids: spaces/commas/newlines, a JSON list, or tokenize's "
                                                   "JSON (default: stdin)");
    cmd->add_option("--out", o->out, "write here instead of stdout (a new file; --overwrite to replace one)");
    cmd->add_flag("--overwrite", o->overwrite, "replace an existing --out");
  }
  tz->add_option("--text", tokz.text, "the text itself instead of a file")->excludes("input");
  tz->add_flag("--ids", tokz.ids_only, "only the ids, space-separated (what detokenize reads)");
  tz->add_flag("--framed", tokz.framed, "add bos (if the tokenizer has one) and eot, as prepare does per document");
  dz->add_option("--ids", detok.text, "the ids themselves, e.g. \"15496 995\"")->excludes("input");

  TrainCommand train, distill;
  distill.distill = true;
  auto* t = app.add_subcommand("train", "train a model on its labels (CE): a teacher, or a baseline");
  add_run_options(t, train);
  auto* d = app.add_subcommand("distill", "distill a student from the teacher the config names");
  add_run_options(d, distill);
  TrainCommand cache_cmd;
  cache_cmd.distill = true;
  std::string cache_out;
  auto* ct = app.add_subcommand("cache-teacher",
                                "run the config's teacher once over its training stream; write its top-k logits "
                                "(distill.top_k) and log-sum-exps to an HDF5 cache that distill reads (teacher.cache)");
  ct->add_option("--config", cache_cmd.config, "the distill config (its teacher, data, seed, seq_len, steps)")
      ->check(CLI::ExistingFile)->required();
  ct->add_option("--set", cache_cmd.overrides, "override a config key: a.b=value (repeatable)");
  ct->add_option("--out", cache_out, "the cache directory (one HDF5 file per rank)")->required();
  ct->add_flag("--overwrite", cache_cmd.overwrite, "replace a cache already in --out");

  cli::EvalOptions ev;
  auto* e = app.add_subcommand("eval", "validation loss, perplexity, bits per byte, agreement with the teacher");
  e->add_option("checkpoint", ev.checkpoint, "kdtrain checkpoint (.h5)")->required();
  e->add_option("--data", ev.data, "validation shard (default: the run's data.val)");
  e->add_option("--teacher", ev.teacher, "teacher checkpoint for agreement and KL (default: the run's teacher)");
  e->add_flag("--no-teacher", ev.no_teacher, "skip the teacher metrics");
  e->add_option("--tokens", ev.tokens, "validation tokens to score (default: the run's train.eval_tokens; 0 = the whole shard)")->check(CLI::NonNegativeNumber);
  e->add_option("--threads", ev.threads, "threads")->check(CLI::NonNegativeNumber);
  e->add_flag("--json", ev.json, "print one JSON object");
  e->add_flag("--fp32-baseline", ev.fp32_baseline, "quantized checkpoint: also run the dequantized weights in fp32 (OpenBLAS) and print the speed ratio");

  cli::GenerateOptions gen;
  cli::GenerateDataOptions gd;
  auto* g = app.add_subcommand("generate", "prompt -> text from a checkpoint (KV-cached decoding; timings on stderr)");
  g->add_option("checkpoint", gen.checkpoint, "kdtrain checkpoint (.h5)")->required();
  g->add_option("--prompt", gen.prompts, "text to continue, repeatable for a batch (none: start a new document)");
  g->add_option("--batch", gen.batch, "samples of each prompt, decoded together")->check(CLI::Range(1, 4096))->capture_default_str();
  g->add_option("--context", gen.context, "positions per sequence, prompt included; generation stops there (default: "
                "the model's train.seq_len)")->check(CLI::PositiveNumber);
  g->add_option("--max-new-tokens", gen.max_new_tokens, "tokens to generate")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  g->add_option("--temperature", gen.temperature, "sampling temperature (0 = greedy)")->check(kFinite)->check(CLI::NonNegativeNumber)->capture_default_str();
  g->add_option("--top-k", gen.top_k, "sample among the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber)->capture_default_str();
  g->add_option("--top-p", gen.top_p, "nucleus: the smallest set of tokens with this much probability")->check(kFinite)->check(CLI::Range(0.0, 1.0))->capture_default_str();
  g->add_option("--seed", gen.seed, "sampling seed (sequence i samples from its own stream of it)")->capture_default_str();
  g->add_flag("--no-kv-cache", gen.no_kv_cache, "recompute the whole context for every token, one sequence at a "
             "time (the generator before the KV cache: a reference for tests and benches)");
  g->add_option("--threads", gen.threads, "threads")->check(CLI::NonNegativeNumber);

  auto* gdc = app.add_subcommand("generate-data", "the teacher's continuations of prompts from a shard, as a new token "
                                 "shard to train or distill on (sequence-level KD)");
  gdc->add_option("checkpoint", gd.checkpoint, "the teacher: a kdtrain checkpoint (.h5)")->required();
  gdc->add_option("--out", gd.out, "a new directory: train.bin (prompt + continuation + end of text per document) "
                  "and tokenizer.json")->required();
  gdc->add_option("--data", gd.data, "the prompts' token shard (default: the checkpoint's data.train)");
  gdc->add_option("--sequences", gd.sequences, "documents to write")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  gdc->add_option("--prompt-tokens", gd.prompt_tokens, "prompt length: a window of the shard, cut after its last "
                  "end of text")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  gdc->add_option("--max-new-tokens", gd.max_new_tokens, "tokens per continuation (default: train.seq_len - "
                  "--prompt-tokens)")->check(CLI::Range(1, 1 << 20));
  gdc->add_option("--temperature", gd.temperature, "0 = greedy, the default: sequence-level KD wants the teacher's "
                  "mode (Kim & Rush's beam search); > 0 samples")->check(kFinite)->check(CLI::NonNegativeNumber)->capture_default_str();
  gdc->add_option("--top-k", gd.top_k, "sampling: the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber)->capture_default_str();
  gdc->add_option("--top-p", gd.top_p, "sampling: nucleus")->check(kFinite)->check(CLI::Range(0.0, 1.0))->capture_default_str();
  gdc->add_option("--seed", gd.seed, "the prompts' draw and the samples")->capture_default_str();
  gdc->add_option("--batch", gd.batch, "sequences decoded together")->check(CLI::Range(1, 4096))->capture_default_str();
  gdc->add_option("--threads", gd.threads, "threads")->check(CLI::NonNegativeNumber);
  gdc->add_flag("--overwrite", gd.overwrite, "replace existing files in --out");

  cli::PruneOptions prn;
  auto* pn = app.add_subcommand("prune", "one-shot pruning: checkpoint (+ calibration sequences) -> pruned checkpoint with masks");
  pn->add_option("checkpoint", prn.checkpoint, "trained float kdtrain checkpoint (.h5)")->required();
  pn->add_option("--out", prn.out, "the pruned checkpoint to write (.h5): weights with their zeros and group masks; "
                 "train.init_from holds them, ptq and export take it")->required();
  pn->add_option("--method", prn.method, "magnitude (per output row, no data) | wanda | sparsegpt (default)");
  pn->add_option("--sparsity", prn.sparsity, "unstructured: the pruned fraction of every output row, in (0, 1)");
  pn->add_option("--nm", prn.nm, "semi-structured N:M: n zeros in every m consecutive inputs, e.g. 2:4");
  pn->add_option("--data", prn.data, "calibration token shard (default: the run's data.train)");
  pn->add_option("--samples", prn.samples, "calibration sequences (default 128)")->check(CLI::PositiveNumber);
  pn->add_option("--seq-len", prn.seq_len, "tokens per calibration sequence (default: train.seq_len)")->check(CLI::PositiveNumber);
  pn->add_option("--seed", prn.seed, "seed of the calibration sample");
  pn->add_option("--damp", prn.damp, "sparsegpt: Hessian dampening, a fraction of its mean diagonal (default 0.01)")->check(CLI::NonNegativeNumber);
  pn->add_option("--block", prn.block, "sparsegpt: columns per mask block and lazy batch (default 128)")->check(CLI::PositiveNumber);
  pn->add_option("--threads", prn.threads, "threads")->check(CLI::NonNegativeNumber);
  pn->add_flag("--overwrite", prn.overwrite, "replace an existing --out (never the input checkpoint)");

  cli::PtqOptions ptq;
  auto* pq = app.add_subcommand("ptq", "post-training quantization: checkpoint + calibration batches -> quantized checkpoint");
  pq->add_option("checkpoint", ptq.checkpoint, "trained kdtrain checkpoint (.h5); a QAT run's keeps its learned quantizers")->required();
  pq->add_option("--out", ptq.out, "the quantized checkpoint to write (.h5)")->required();
  pq->add_option("--weight", ptq.weight, "weight format, e.g. int8:channel, int4:g128, fp8_e4m3:channel (default: the run's quant.weight, else int8:channel)");
  pq->add_option("--activation", ptq.activation, "linear-input format, e.g. int8:token, int8:tensor, none (default: the run's quant.activation, else int8:token)");
  pq->add_option("--calibrator", ptq.calibrator, "static input scales: minmax | moving_average | percentile | mse | kl");
  pq->add_option("--weight-calibrator", ptq.weight_calibrator, "weight scales: minmax | mse");
  pq->add_option("--data", ptq.data, "calibration token shard (default: the run's data.train)");
  pq->add_option("--batches", ptq.batches, "calibration batches (train.batch_size x train.seq_len each)")->check(CLI::NonNegativeNumber);
  pq->add_option("--seed", ptq.seed, "seed of the calibration sample");
  pq->add_flag("--head", ptq.head, "also quantize the output head (with tied embeddings: the embedding table)");
  pq->add_flag("--recalibrate", ptq.recalibrate, "a QAT checkpoint: calibrate afresh instead of using its quantizer state");
  pq->add_option("--threads", ptq.threads, "threads")->check(CLI::NonNegativeNumber);
  pq->add_flag("--overwrite", ptq.overwrite, "replace an existing --out (never the input checkpoint)");
  pq->add_option("--method", ptq.method, "rtn (round to nearest with the calibrators) | gptq | awq | smoothquant | "
                 "sparsegpt (pruned and quantized in one pass; with --sparsity or --nm) (one-shot, block by block over "
                 "--samples calibration sequences of the training split)");
  pq->add_option("--sparsity", ptq.sparsity, "--method sparsegpt: the pruned fraction of every row, in (0, 1)");
  pq->add_option("--nm", ptq.nm, "--method sparsegpt: N:M, n zeros in every m consecutive inputs, e.g. 2:4");
  pq->add_option("--samples", ptq.samples, "one-shot methods: calibration sequences (default 128)")->check(CLI::PositiveNumber);
  pq->add_option("--seq-len", ptq.seq_len, "one-shot methods: tokens per calibration sequence (default: train.seq_len)")->check(CLI::PositiveNumber);
  pq->add_option("--damp", ptq.damp, "gptq: Hessian dampening, a fraction of its mean diagonal (default 0.01; raised tenfold up to 3 times if singular)")->check(CLI::NonNegativeNumber);
  pq->add_option("--block", ptq.block, "gptq: columns per lazy batch (default 128)")->check(CLI::PositiveNumber);
  pq->add_flag("--act-order", ptq.act_order, "gptq: quantize columns by decreasing Hessian diagonal (with groups: needs --static-groups)");
  pq->add_flag("--static-groups", ptq.static_groups, "gptq: every group's scales from the original weights, before any update");
  pq->add_option("--alpha", ptq.alpha, "smoothquant: migration strength (default 0.5)")->check(CLI::Range(0.0, 1.0));
  pq->add_flag("--no-clip", ptq.no_clip, "awq: skip the weight-clipping search");
  pq->add_option("--override", ptq.overrides, "PATTERN=WEIGHT: another weight format for the layers PATTERN (a glob over "
                 "module names) matches, e.g. '*.down_proj=int4:g64' where groups of 128 do not divide d_ff (repeatable)");

  cli::ExportOptions exp;
  auto* ex = app.add_subcommand("export", "write a checkpoint in another form (--compact: structured-pruned, physically smaller; --format hf: a Hugging Face model directory; --format gguf: llama.cpp's file)");
  ex->add_option("checkpoint", exp.checkpoint, "kdtrain checkpoint (.h5)")->required();
  ex->add_option("--out", exp.out, "what to write: a checkpoint (.h5) with --compact, a new directory with --format hf, a .gguf file with --format gguf")->required();
  ex->add_flag("--compact", exp.compact, "remove the KV groups and FFN neurons its masks pruned (shapes and config change)");
  ex->add_option("--format", exp.format, "hf: a Hugging Face model directory (config.json, model.safetensors) at --out; "
                 "gguf: a GGUF file for llama.cpp")
      ->check(CLI::IsMember({"hf", "gguf"}));
  ex->add_option("--gguf-type", exp.gguf_type, "GGUF matrices: f32, f16 or q8_0 (default: q8_0 for a quantized "
                 "checkpoint, f16 otherwise)");
  ex->add_option("--context-length", exp.context_length, "GGUF llama.context_length (default: the config's "
                 "train.seq_len)")->check(CLI::PositiveNumber);
  ex->add_flag("--overwrite", exp.overwrite, "replace an existing --out file or directory (never the input checkpoint)");

  cli::ImportHfOptions imp;
  auto* ih = app.add_subcommand("import-hf", "a Hugging Face Llama model directory -> a kdtrain checkpoint (a teacher, "
                                             "or a student's train.init_from)");
  ih->add_option("dir", imp.dir, "the model directory: config.json, model.safetensors or its shards")->required();
  ih->add_option("--out", imp.out, "the checkpoint to write (.h5)")->required();
  ih->add_flag("--overwrite", imp.overwrite, "replace an existing --out");

  std::string inspect_path;
  auto* in = app.add_subcommand("inspect", "what a checkpoint holds");
  in->add_option("checkpoint", inspect_path, "kdtrain checkpoint (.h5)")->required();
  bool inspect_verify = false;
  in->add_flag("--verify", inspect_verify,
               "only check every dataset against the checkpoint's manifest (size, CRC-32, Fletcher-32): exit 0 "
               "when whole, 2 naming the damaged dataset");

  cli::SweepOptions sweep;
  auto* sw = app.add_subcommand("sweep", "expand a sweep file (base config x axes) into validated configs and run "
                                         "them as one SLURM array job (or --local); --summary DIR tabulates the results");
  sw->add_option("file", sweep.file, "sweep file (YAML: base, grid, list, set, slurm; see docs/slurm.md)");
  sw->add_option("--summary", sweep.summary, "a sweep directory: every run's final metrics as a table (Markdown, CSV) "
                                             "and a plot");
  sw->add_flag("--local", sweep.local, "run the points here, one after another, instead of submitting");
  sw->add_flag("--no-submit", sweep.no_submit, "write the configs and the array job script, do not submit");

  cli::BenchOptions bench;
  auto* b = app.add_subcommand("bench", "time the full KD step on a config (default configs/bench-cpu.yaml)");
  b->add_option("--config", bench.config, "YAML config")->check(CLI::ExistingFile);
  b->add_option("--set", bench.overrides, "override a config key: a.b=value (repeatable)");
  b->add_flag("--student-only", bench.student_only, "drop the teacher: time the student's CE step");
  b->add_option("--threads", bench.threads, "threads (overrides train.threads)")->check(CLI::NonNegativeNumber);
  b->add_flag("--checkpoint", bench.checkpoint,
              "also time a checkpoint of the student with its optimizer state: write, verify, read, and the stall it "
              "causes to training");
  b->add_option("--checkpoint-dir", bench.checkpoint_dir,
                "where --checkpoint writes (default: a temporary directory, removed after); under mpirun a directory "
                "every rank sees");
  b->add_option("--peak-gflops", bench.peak_gflops, "MFU denominator (default: measured now)")->check(kFinite)->check(CLI::NonNegativeNumber);

  cli::PeakOptions peak;
  auto* p = app.add_subcommand("bench-peak", "measure the sgemm peak of the linked BLAS (the MFU denominator)");
  p->add_option("--seconds", peak.seconds, "seconds per matrix size")->check(kFinite)->check(CLI::PositiveNumber);
  p->add_option("--threads", peak.threads, "threads")->check(CLI::NonNegativeNumber);

  cli::ValidateOptions val;
  auto* v = app.add_subcommand("validate", "check a config and print the effective YAML");
  v->add_option("config", val.config, "YAML config")->required();
  v->add_option("--set", val.overrides, "override a config key: a.b=value (repeatable)");
  v->add_option("--ranks", val.ranks, "also print an estimate of the memory per rank on this many MPI ranks")
      ->check(CLI::Range(1, 1 << 20));

  bool doc = false;
  auto* c = app.add_subcommand("config", "describe the config schema");
  c->add_flag("--doc", doc, "every key with its type, default, range and meaning")->required();

  auto* h = app.add_subcommand("help", "print help for kdtrain or for one subcommand");
  std::string help_topic;
  h->add_option("subcommand", help_topic, "subcommand to describe");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& err) {
    const int rc = app.exit(err);
    return rc == 0 ? 0 : kExitBadInput;
  }
  // Only training runs checkpoint on a preemption signal; every other command ends with 99
  // if one came while the command line was read, and otherwise dies of the next as before.
  if (!t->parsed() && !d->parsed() && release_preemption_handlers()) {
    std::fprintf(stderr, "kdtrain: preempted (%s) before the command started; exit %d\n", preemption_signal(),
                 kExitPreempted);
    return kExitPreempted;
  }
  try {
    if (h->parsed()) return cli::run_help(app, help_topic);
    if (pr->parsed()) return cli::run_prepare(prep);
    if (tz->parsed()) return tokz.has_text = tz->count("--text") > 0, cli::run_tokenize(tokz);
    if (dz->parsed()) return detok.has_text = dz->count("--ids") > 0, cli::run_detokenize(detok);
    if (t->parsed()) return cli::run_train(train);
    if (d->parsed()) return cli::run_train(distill);
    if (ct->parsed()) return cli::run_cache_teacher(cache_cmd, cache_out);
    if (e->parsed()) return cli::run_eval(ev);
    if (g->parsed()) return cli::run_generate(gen);
    if (gdc->parsed()) return cli::run_generate_data(gd);
    if (in->parsed()) return cli::run_inspect(inspect_path, inspect_verify);
    if (pq->parsed()) return cli::run_ptq(ptq);
    if (pn->parsed()) return cli::run_prune(prn);
    if (ex->parsed()) return cli::run_export(exp);
    if (ih->parsed()) return cli::run_import_hf(imp);
    if (b->parsed()) return cli::run_bench(bench);
    if (sw->parsed()) return cli::run_sweep(sweep);
    if (p->parsed()) return cli::run_bench_peak(peak);
    if (v->parsed()) return cli::run_validate(val);
    if (c->parsed()) return cli::run_config_doc();
  } catch (const InputError& err) {
    std::fprintf(stderr, "kdtrain: error: %s\n", err.what());
    return kExitBadInput;
  } catch (const RuntimeFailure& err) {
    std::fprintf(stderr, "kdtrain: runtime failure: %s\n", err.what());
    return kExitRuntime;
  } catch (const std::bad_alloc&) {  // sites that know what they allocate say so (AlignedBuffer)
    std::fprintf(stderr, "kdtrain: runtime failure: out of memory (std::bad_alloc)\n");
    return kExitRuntime;
  } catch (const std::exception& err) {
    std::fprintf(stderr, "kdtrain: runtime failure: %s\n", err.what());
    return kExitRuntime;
  }
  return 0;
}
