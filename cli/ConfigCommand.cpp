#include "ConfigCommand.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "DaemonConfig.h"

namespace snapimport::cli {

void addConfigCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("config", "Print or check the daemon's TOML config");
  cmd->require_subcommand(1);

  CLI::App* def =
      cmd->add_subcommand("default", "Print the default config file, every key documented");
  def->callback([] {
    std::cout << DaemonConfig::defaultFile() << std::flush;
    std::exit(0);
  });

  auto file = std::make_shared<std::string>();
  CLI::App* check =
      cmd->add_subcommand("check", "Validate a config file as `serve --config` would");
  check->add_option("file", *file, "TOML config file")->required();
  check->callback([file] {
    try {
      DaemonConfig::load(*file);
    } catch (const std::exception& e) {
      std::cerr << "snapimport: invalid config: " << e.what() << "\n";
      std::exit(2);
    }
    std::cout << *file << ": ok\n";
    std::exit(0);
  });
}

}  // namespace snapimport::cli
