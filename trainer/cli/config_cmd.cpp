// `kdtrain config --doc`: every config key with its type, default, range and meaning, from
// the same visit() that loads and writes configs (base/schema.h).
#include <iostream>

#include "trainer/cli/commands.h"
#include "trainer/config/config.h"

namespace kd::cli {

int run_config_doc() {
  std::cout << config_doc();
  return 0;
}

}  // namespace kd::cli
