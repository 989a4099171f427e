#include "ConfigCommand.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "ContainerdSnippet.h"
#include "DaemonConfig.h"

namespace snapimport::cli {
namespace {

struct ContainerdFlags {
  std::string release;
  std::string address, root, hostsDir;
  std::string config;
};

int runContainerd(const ContainerdFlags& f) {
  try {
    ContainerdSnippetOptions o;
    o.configVersion = containerdConfigVersion(f.release);
    DaemonConfig daemon = f.config.empty() ? DaemonConfig{} : DaemonConfig::load(f.config);
    o.address = f.address.empty() ? daemon.address : f.address;
    o.root = f.root.empty() ? daemon.root : f.root;
    o.hostsDir = f.hostsDir.empty() ? defaultContainerdHostsDir(o.configVersion) : f.hostsDir;
    o.platform = hostUnpackPlatform();
    o.diffService = containerdTakesDiffProxy(f.release);
    std::cout << renderContainerdSnippet(o) << std::flush;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "snapimport config containerd: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace

void addConfigCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("config", "print or check the daemon's TOML config");
  cmd->require_subcommand(1);

  CLI::App* def =
      cmd->add_subcommand("default", "print the default config file, every key documented");
  def->callback([] {
    std::cout << DaemonConfig::defaultFile() << std::flush;
    std::exit(0);
  });

  auto cf = std::make_shared<ContainerdFlags>();
  CLI::App* containerd = cmd->add_subcommand(
      "containerd", "print the containerd config snippet that makes this node use snapimport");
  containerd
      ->add_option("--version", cf->release,
                   std::string("containerd release the snippet is for: ") + kContainerdVersions +
                       " (1.6 and 1.7 read config version 2, 2.x version 3)")
      ->required();
  containerd->add_option("--config", cf->config,
                         "take address and root from this snapimport config file");
  containerd->add_option(
      "--address", cf->address,
      "snapimport's socket (default: the config's address, else " + DaemonConfig{}.address + ")");
  containerd->add_option("--root", cf->root,
                         "snapimport's root, reported to CRI by 2.x (default: the config's root, "
                         "else " +
                             DaemonConfig{}.root + ")");
  containerd->add_option("--hosts-dir", cf->hostsDir,
                         "hosts.toml directory containerd reads (default " +
                             defaultContainerdHostsDir(2) + " for 1.6/1.7, " +
                             defaultContainerdHostsDir(3) + " for 2.x, which takes only one)");
  containerd->callback([cf] { std::exit(runContainerd(*cf)); });

  auto file = std::make_shared<std::string>();
  CLI::App* check =
      cmd->add_subcommand("check", "validate a config file as `serve --config` would");
  check->add_option("FILE", *file, "TOML config file")->required();
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
