// `kdtrain validate FILE [--set a.b=v] [--ranks N]`: the config checked and printed as the
// effective YAML a run would store, and with --ranks the memory each rank would need.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "trainer/cli/commands.h"
#include "trainer/config/config.h"
#include "trainer/setup/memory_estimate.h"
#include "trainer/setup/model_loader.h"

namespace kd::cli {

int run_validate(const ValidateOptions& o) {
  Config cfg = load_config(o.config, o.overrides);
  // the teacher's shape comes from its checkpoint (its config only); without --ranks a
  // checkpoint not made yet only leaves the teacher out of the memory check
  const bool teacher_file = cfg.has_teacher && !cfg.teacher.checkpoint.empty();
  const bool shape_known = !teacher_file || o.ranks > 0 || std::filesystem::exists(cfg.teacher.checkpoint);
  if (teacher_file && shape_known) cfg.teacher.spec = load_model(cfg.teacher.checkpoint, false)->config.model;
  if (shape_known) check_memory_fits(cfg, std::max(1, o.ranks), o.config);
  std::cout << config_to_yaml(cfg);
  if (o.ranks > 0) std::cout << "# " << format_memory(estimate_memory(cfg, o.ranks));
  return 0;
}

}  // namespace kd::cli
