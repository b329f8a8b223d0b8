// `kdtrain train` and `kdtrain distill`: everything around the step loop — config and
// input validation, the run directory, teacher loading, resume, progress, metrics,
// periodic evaluation and checkpoints.
#pragma once

#include <string>
#include <vector>

namespace kd {

struct TrainCommand {
  bool distill = false;  // distill needs a teacher; train refuses one
  std::string config;    // YAML (not needed with resume)
  std::vector<std::string> overrides;
  std::string resume;    // a run directory to continue
  bool overwrite = false;
  // With config: resume its run directory when it holds a checkpoint, else start it afresh
  // (replacing a directory a job left without any checkpoint). For batch jobs that are
  // requeued and for sweeps: the same command line starts and continues the run.
  bool auto_resume = false;
};

int run_training(const TrainCommand& cmd);

}  // namespace kd
