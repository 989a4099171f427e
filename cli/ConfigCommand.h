#pragma once
#include <CLI/CLI.hpp>

namespace snapimport::cli {

// `snapimport config default` prints the default config file (every key, documented);
// `snapimport config check FILE` validates one the way `serve` would, without starting.
void addConfigCommand(CLI::App& app);

}  // namespace snapimport::cli
