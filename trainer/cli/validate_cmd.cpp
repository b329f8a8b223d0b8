// `kdtrain validate FILE [--set a.b=v] [--ranks N]`: the config checked and printed as the
// effective YAML a run would store, and with --ranks the memory each rank would need.
#include <iostream>

#include "trainer/cli/commands.h"
#include "trainer/config/config.h"
#include "trainer/setup/memory_estimate.h"
#include "trainer/setup/model_loader.h"

namespace kd::cli {

int run_validate(const ValidateOptions& o) {
  Config cfg = load_config(o.config, o.overrides);
  std::cout << config_to_yaml(cfg);
  if (o.ranks > 0) {
    // the teacher's shape comes from its checkpoint (its config only)
    if (cfg.has_teacher && !cfg.teacher.checkpoint.empty()) {
      cfg.teacher.spec = load_model(cfg.teacher.checkpoint, false)->config.model;
    }
    std::cout << "# " << format_memory(estimate_memory(cfg, o.ranks));
  }
  return 0;
}

}  // namespace kd::cli
