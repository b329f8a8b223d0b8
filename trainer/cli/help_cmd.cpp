// `kdtrain help [SUBCOMMAND]`: the usage of kdtrain or of one subcommand, as CLI11 formats
// it for --help.
#include <CLI/CLI.hpp>

#include <iostream>

#include "base/errors.h"
#include "trainer/cli/commands.h"

namespace kd::cli {

int run_help(CLI::App& app, const std::string& topic) {
  if (topic.empty()) {
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return 0;
  }
  try {
    std::cout << app.get_subcommand(topic)->help();
  } catch (const CLI::OptionNotFound&) {
    throw InputError("help: no subcommand named '" + topic + "'");
  }
  return 0;
}

}  // namespace kd::cli
