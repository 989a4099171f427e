#include "ServeCommand.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <thread>

#include "DaemonConfig.h"
#include "common/Log.h"
#include "plugin/Server.h"

namespace snapimport::cli {
namespace {

struct ServeFlags {
  std::string root;
  std::string address;
  std::string config;
  std::string logLevel;
};

int runServe(const ServeFlags& flags) {
  DaemonConfig cfg;
  try {
    if (!flags.config.empty()) cfg = DaemonConfig::load(flags.config);
  } catch (const std::exception& e) {
    log::error("cannot load config", {{"file", flags.config}, {"error", e.what()}});
    return 2;
  }
  // Flags win over the file.
  if (!flags.root.empty()) cfg.root = flags.root;
  if (!flags.address.empty()) cfg.address = flags.address;
  if (!flags.logLevel.empty()) cfg.logLevel = flags.logLevel;
  log::Level level;
  if (!log::parseLevel(cfg.logLevel, level)) {
    log::error("invalid log level", {{"value", cfg.logLevel}, {"allowed", "debug|info|warn|error"}});
    return 2;
  }
  log::setLevel(level);

  // Block the stop signals in every thread; one thread waits for them synchronously.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  plugin::Server server({cfg.root, cfg.address});
  try {
    server.start();
  } catch (const std::exception& e) {
    log::error("cannot start", {{"root", cfg.root}, {"address", cfg.address}, {"error", e.what()}});
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stopSignals, &sig);
    log::info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    server.shutdown();
  });
  server.wait();
  waiter.join();
  log::info("stopped");
  return 0;
}

}  // namespace

void addServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve containerd's snapshots (and content) API on a unix socket");
  cmd->add_option("--root", flags->root, "State directory (default " + DaemonConfig{}.root + ")");
  cmd->add_option("--address", flags->address, "Unix socket to listen on (default " + DaemonConfig{}.address + ")");
  cmd->add_option("--config", flags->config, "TOML config file")->check(CLI::ExistingFile);
  cmd->add_option("--log-level", flags->logLevel, "debug, info, warn or error");
  cmd->callback([flags] { std::exit(runServe(*flags)); });
}

}  // namespace snapimport::cli
