// kdtrain's configuration: the sections, each defined with its domain and each field named
// once with its doc string and range in a visit() (base/schema.h), assembled here into one
// Config. Loading rejects unknown keys, wrong types and out-of-range values before any work
// starts; validate() rejects bad combinations across sections.
#pragma once

#include <string>
#include <vector>

#include "base/schema.h"
#include "data/data_section.h"
#include "trainer/config/run_sections.h"
#include "trainer/dist/parallel_section.h"
#include "trainer/distill/distill_section.h"
#include "trainer/distill/teacher_section.h"
#include "trainer/model/model_section.h"
#include "trainer/optim/optim_section.h"
#include "trainer/prune/prune_config.h"
#include "trainer/quant/quant_config.h"

namespace kd {

struct Config {
  bool has_teacher = false;
  TeacherSection teacher;
  ModelSpec model;
  DistillSection distill;
  OptimSection optim;
  TrainSection train;
  DataSection data;
  RunSection run;
  BenchSection bench;
  ParallelSection parallel;
  RuntimeSection runtime;
  bool has_quant = false;
  QuantSection quant;
  bool has_prune = false;
  PruneSection prune;
  template <class V>
  void visit(V& v) {
    v.section("model", model, "the model being trained (for distill: the student)");
    v.optional_section("teacher", has_teacher, teacher, "the frozen teacher (absent: the model trains on labels only)");
    v.section("distill", distill, "the distillation loss");
    v.section("optim", optim, "AdamW, clipping and the learning-rate schedule");
    v.section("train", train, "steps, batch shape, seed, threads, NaN policy");
    v.section("data", data, "training and validation data");
    v.section("run", run, "where the run directory goes");
    v.section("bench", bench, "kdtrain bench");
    v.section("parallel", parallel, "MPI ranks (mpirun / srun): data parallelism and the watchdog");
    v.section("runtime", runtime, "the compute backend (CPU or CUDA) and its math");
    v.optional_section("quant", has_quant, quant,
                       "quantization-aware training (absent: full precision); also kdtrain ptq's defaults");
    v.optional_section("prune", has_prune, prune, "pruning of the model being trained (absent: dense)");
  }

  // Cross-field checks (after loading). Throws InputError naming the keys.
  void validate() const;
};

// Loads a YAML file, applies `--set a.b=value` overrides, validates. Throws InputError.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
Config load_config_text(const std::string& text, const std::string& name,
                        const std::vector<std::string>& overrides = {});
std::string config_doc();
std::string config_to_yaml(const Config& c);

}  // namespace kd
