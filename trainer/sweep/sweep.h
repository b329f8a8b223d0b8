// A sweep file: a base config and axes, expanded into one validated config per point.
//
//   base: ../configs/demo-synthetic.yaml   # relative to the sweep file
//   command: distill                       # train | distill (default: distill when the base has a teacher)
//   name: kd-grid                          # default: the sweep file's stem
//   out: sweeps                            # the sweep lives in <out>/<name> (default: sweeps)
//   set: {train.steps: 200}                # overrides for every point
//   grid:                                  # every combination, first axis slowest
//     distill.temperature: [1.0, 2.0]
//     distill.alpha: [0.5, 0.9]
//   list:                                  # explicit points, each combined with every grid point
//     - {quant.weight: "int8:channel"}
//     - {quant.weight: "int4:g32", quant.activation: "int8:token"}
//   slurm: {ntasks: 2, cpus_per_task: 1, time: "01:00:00", partition: debug, max_concurrent: 4, launcher: srun}
//
// Point k is run `p<k>` (three digits or more) in <out>/<name>/runs. Every point is validated
// as a whole config (the same checks as `kdtrain validate`) before anything is written; an
// invalid point is an InputError naming the point, its values and the config's own message.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "trainer/config/config.h"

namespace kd {

struct SweepPoint {
  std::string name;                                         // p000, p001, ...
  std::vector<std::pair<std::string, std::string>> values;  // axis key -> value (YAML text), axes order
  std::vector<std::string> overrides;                       // set + values + run.dir/run.name, as --set
  Config cfg;                                               // validated
};

struct SweepSlurm {
  int ntasks = 1;
  int cpus_per_task = 1;
  std::string time;       // "" = the partition's default
  std::string partition;  // "" = the default partition
  int max_concurrent = 0;  // 0 = no limit
  std::string launcher = "srun";
};

struct Sweep {
  std::string file;     // the sweep file
  std::string name;
  std::string base;     // the base config's path
  std::string command;  // train | distill
  std::string dir;      // <out>/<name>
  std::vector<std::string> axes;  // keys, grid first then list keys in first-seen order
  std::vector<SweepPoint> points;
  SweepSlurm slurm;
};

// Reads, expands and validates; InputError (naming the file, line, key or point) on any problem.
Sweep load_sweep(const std::string& file);

// "distill.alpha=0.9, distill.temperature=2" (messages, tables).
std::string point_label(const SweepPoint& p);

}  // namespace kd
