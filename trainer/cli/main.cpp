// kdtrain: one binary, one subcommand per job. Exit codes: 0 done, 2 bad input
// (config, data, command line), 3 runtime failure.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "trainer/cli/commands.h"
#include "trainer/config/config.h"
#include "trainer/util/errors.h"

int main(int argc, char** argv) {
  using namespace kd;
  CLI::App app{"kdtrain: distill, quantize and prune language models (native C++)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  cli::BenchOptions bench;
  auto* b = app.add_subcommand("bench", "time the full KD step on a config (default configs/bench-cpu.yaml)");
  b->add_option("--config", bench.config, "YAML config")->check(CLI::ExistingFile);
  b->add_option("--set", bench.overrides, "override a config key: a.b=value (repeatable)");
  b->add_flag("--student-only", bench.student_only, "drop the teacher: time the student's CE step");
  b->add_option("--threads", bench.threads, "threads (overrides train.threads)")->check(CLI::NonNegativeNumber);
  b->add_option("--peak-gflops", bench.peak_gflops, "MFU denominator (kdtrain bench-peak)")->check(CLI::NonNegativeNumber);

  cli::PeakOptions peak;
  auto* p = app.add_subcommand("bench-peak", "measure the sgemm peak of the linked BLAS (the MFU denominator)");
  p->add_option("--seconds", peak.seconds, "seconds per matrix size")->check(CLI::PositiveNumber);
  p->add_option("--threads", peak.threads, "threads")->check(CLI::NonNegativeNumber);

  cli::TrainOptions train;
  auto* d = app.add_subcommand("distill", "train a student (distilling from the teacher, if the config has one)");
  d->add_option("--config", train.config, "YAML config")->required()->check(CLI::ExistingFile);
  d->add_option("--set", train.overrides, "override a config key: a.b=value (repeatable)");
  d->add_option("--loss-log", train.loss_log, "write every step's losses at full precision to this file");
  d->add_option("--eval-batches", train.eval_batches, "held-out batches evaluated at the end")->check(CLI::PositiveNumber);

  std::string validate_path;
  std::vector<std::string> validate_overrides;
  auto* v = app.add_subcommand("validate", "check a config and print the effective YAML");
  v->add_option("config", validate_path, "YAML config")->required();
  v->add_option("--set", validate_overrides, "override a config key: a.b=value (repeatable)");

  bool doc = false;
  auto* c = app.add_subcommand("config", "describe the config schema");
  c->add_flag("--doc", doc, "every key with its type, default, range and meaning")->required();

  auto* h = app.add_subcommand("help", "print help for kdtrain or for one subcommand");
  std::string help_topic;
  h->add_option("subcommand", help_topic, "subcommand to describe");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitBadInput;
  }
  try {
    if (h->parsed()) {
      if (help_topic.empty()) {
        std::cout << app.help();
        return 0;
      }
      try {
        std::cout << app.get_subcommand(help_topic)->help();
      } catch (const CLI::OptionNotFound&) {
        throw InputError("help: no subcommand named '" + help_topic + "'");
      }
      return 0;
    }
    if (b->parsed()) return cli::run_bench(bench);
    if (p->parsed()) return cli::run_bench_peak(peak);
    if (d->parsed()) return cli::run_train(train);
    if (v->parsed()) {
      std::cout << config_to_yaml(load_config(validate_path, validate_overrides));
      return 0;
    }
    if (c->parsed()) {
      std::cout << config_doc();
      return 0;
    }
  } catch (const InputError& e) {
    std::fprintf(stderr, "kdtrain: error: %s\n", e.what());
    return kExitBadInput;
  } catch (const RuntimeFailure& e) {
    std::fprintf(stderr, "kdtrain: runtime failure: %s\n", e.what());
    return kExitRuntime;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kdtrain: runtime failure: %s\n", e.what());
    return kExitRuntime;
  }
  return 0;
}
