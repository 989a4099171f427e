#include "ServeCommand.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <thread>

#include "DaemonConfig.h"
#include "common/HttpServer.h"
#include "common/ImportProgress.h"
#include "common/Log.h"
#include "common/Metrics.h"
#include "plugin/RegistryLayerFetcher.h"
#include "plugin/Server.h"
#include "registry/CredentialProvider.h"
#include "store/SnapshotStore.h"

namespace snapimport::cli {
namespace {

struct ServeFlags {
  std::string root;
  std::string address;
  std::string config;
  std::string logLevel;
  std::string metricsAddress;
};

// Loads the file (if any), applies flags over it and validates the result. Prints why not and
// returns false; every message names the file, line and key, or the flag.
bool loadConfig(const ServeFlags& flags, DaemonConfig& cfg) {
  try {
    if (!flags.config.empty()) cfg = DaemonConfig::load(flags.config);
  } catch (const std::exception& e) {
    log::error("invalid config", {{"file", flags.config}, {"error", e.what()}});
    return false;
  }
  // Flags win over the file.
  if (!flags.root.empty()) cfg.root = flags.root;
  if (!flags.address.empty()) cfg.address = flags.address;
  if (!flags.logLevel.empty()) cfg.log.level = flags.logLevel;
  if (!flags.metricsAddress.empty()) cfg.metrics.address = flags.metricsAddress;
  try {
    cfg.validate();
  } catch (const std::exception& e) {
    log::error("invalid command-line flag", {{"error", e.what()}});
    return false;
  }
  log::Level level = log::Level::Info;
  log::Format format = log::Format::Logfmt;
  log::parseLevel(cfg.log.level, level);  // validate() accepted both
  log::parseFormat(cfg.log.format, format);
  log::setLevel(level);
  log::setFormat(format);
  return true;
}

// The endpoints both listeners serve; /status only on the admin socket, because image names can
// be sensitive and the TCP address is meant for a cluster-wide Prometheus.
void addEndpoints(http::Server& http, bool withStatus) {
  http.handle("/healthz", [] { return http::Response{200, "text/plain; charset=utf-8", "ok\n"}; });
  http.handle("/metrics", [] {
    return http::Response{200, "text/plain; version=0.0.4; charset=utf-8",
                          metrics::Metrics::daemon().expose()};
  });
  if (withStatus) {
    http.handle("/status", [] {
      return http::Response{200, "application/json",
                            progress::toJson(progress::ImportProgress::daemon().snapshot())};
    });
  }
}

// The importer reads its knobs from the [import], [limits] and [timeouts] tables.
plugin::ImporterOptions importerOptions(const DaemonConfig& cfg) {
  plugin::ImporterOptions o;
  o.enabled = cfg.import.enabled;
  o.maxJobs = static_cast<int>(cfg.import.maxConcurrentLayers);
  o.maxJobsPerHost = static_cast<int>(cfg.import.maxConcurrentPerRegistry);
  o.stagedGrace = std::chrono::duration_cast<std::chrono::seconds>(cfg.import.stagingGracePeriod);
  o.layerTimeout = cfg.timeouts.layer;
  o.limits.maxHeaderBytes = cfg.limits.maxPaxHeaderBytes;
  o.limits.maxPathBytes = static_cast<uint64_t>(cfg.limits.maxPathBytes);
  o.limits.maxEntries = static_cast<uint64_t>(cfg.limits.maxLayerEntries);
  o.limits.maxUncompressedBytes = cfg.limits.maxLayerBytes;
  o.directWriteMinBytes = cfg.import.directWriteMinSize;
  o.backgroundLayerNice = static_cast<int>(cfg.import.backgroundLayerNice);
  return o;
}

// Layers staged from containerd's writes share the importer's [import] switch, limits and grace.
plugin::WriteImportOptions writeImportOptions(const DaemonConfig& cfg) {
  plugin::WriteImportOptions o;
  o.maxConcurrent = cfg.import.enabled ? static_cast<int>(cfg.import.maxConcurrentWriteImports) : 0;
  o.teeDeclined = cfg.import.diffService;
  o.stagedGrace = std::chrono::duration_cast<std::chrono::seconds>(cfg.import.stagingGracePeriod);
  o.layerTimeout = cfg.timeouts.layer;
  o.limits = importerOptions(cfg).limits;
  o.directWriteMinBytes = cfg.import.directWriteMinSize;
  o.maxManifestBytes = static_cast<size_t>(cfg.limits.maxManifestBytes);
  o.maxConfigBytes = static_cast<size_t>(cfg.limits.maxConfigBytes);
  return o;
}

// Credentials and mirrors: kubelet credential providers, docker config.json (with credential
// helpers) and hosts.toml. A bad provider config or a missing plugin throws, naming the file.
registry::ClientOptions registryOptions(const DaemonConfig& cfg) {
  registry::ClientOptions o;
  o.hostsDir = cfg.registry.hostsDir;
  o.authFile = cfg.registry.authFile;
  if (!cfg.registry.credentialProviderConfig.empty()) {
    o.credentialProviders = registry::CredentialProviders::load(
        cfg.registry.credentialProviderConfig, cfg.registry.credentialProviderBinDir,
        cfg.registry.credentialProviderTimeout);
  }
  o.maxManifestBytes = static_cast<size_t>(cfg.limits.maxManifestBytes);
  o.transport.connectTimeoutSeconds =
      std::max<long>(1, static_cast<long>(cfg.timeouts.connect.count() / 1000));
  o.transport.lowSpeedSeconds =
      std::max<long>(1, static_cast<long>(cfg.timeouts.stall.count() / 1000));
  return o;
}

int runServe(const ServeFlags& flags) {
  DaemonConfig cfg;
  if (!loadConfig(flags, cfg)) return 2;

  // Block the stop signals in every thread; one thread waits for them synchronously.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Every layer unpack allocates its ring blocks (128 and 256 KiB) and its direct-write buffer
  // (1 MiB) on its own threads and frees them at its end. glibc maps the first such blocks and
  // then, once one is freed, raises its mmap threshold above their size, so later unpacks take
  // them from per-thread arenas, where freed blocks stay resident for the next thread that
  // happens to use that arena. With layers starting while others sync, the daemon's peak RSS
  // during the bench pull rose from 59-60 to 61-67 MiB that way (58 MiB with this). A fixed
  // threshold keeps those blocks mapped and unmapped per unpack; they are few, so the mmap
  // calls cost nothing measurable.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  plugin::ServerOptions serverOptions{cfg.root, cfg.address,          cfg.timeouts.shutdown,
                                      nullptr,  importerOptions(cfg), writeImportOptions(cfg)};
  serverOptions.writebackInterval = cfg.import.writebackInterval;
  // Credentials that CRI pulls bring (through the image-service proxy) for their own layers.
  std::shared_ptr<plugin::PullCredentials> pullCredentials;
  if (!cfg.cri.imageServiceAddress.empty()) {
    pullCredentials = std::make_shared<plugin::PullCredentials>(cfg.cri.credentialGracePeriod);
    serverOptions.cri = {cfg.cri.imageServiceAddress, cfg.cri.containerdAddress, pullCredentials};
  }
  try {
    serverOptions.fetcher = std::make_shared<plugin::RegistryLayerFetcher>(
        registryOptions(cfg), static_cast<size_t>(cfg.limits.maxConfigBytes), pullCredentials);
  } catch (const std::exception& e) {
    log::error("cannot set up the registry client",
               {{"hosts_dir", cfg.registry.hostsDir},
                {"auth_file", cfg.registry.authFile},
                {"credential_provider_config", cfg.registry.credentialProviderConfig},
                {"error", e.what()}});
    return 1;
  }
  plugin::Server server(std::move(serverOptions));
  try {
    server.start();
  } catch (const std::exception& e) {
    log::error("cannot start", {{"root", cfg.root}, {"address", cfg.address}, {"error", e.what()}});
    return 1;
  }

  // Snapshot gauges mirror the store; the hook goes before the server (and its store) does.
  auto& m = metrics::Metrics::daemon();
  std::weak_ptr<store::SnapshotStore> weakStore = server.snapshotStore();
  int hook = m.onScrape([weakStore, pullCredentials](metrics::Metrics& mm) {
    if (pullCredentials) mm.criPullCredentials.Set(static_cast<double>(pullCredentials->size()));
    auto st = weakStore.lock();
    if (!st) return;
    store::SnapshotStore::Totals t = st->totals();
    mm.snapshots("committed").Set(static_cast<double>(t.committed));
    mm.snapshots("active").Set(static_cast<double>(t.active));
    mm.snapshots("view").Set(static_cast<double>(t.views));
    mm.snapshotUsageBytes.Set(static_cast<double>(t.committedUsage.size));
    mm.snapshotUsageInodes.Set(static_cast<double>(t.committedUsage.inodes));
  });

  http::Server admin;
  http::Server metricsHttp;
  try {
    addEndpoints(admin, true);
    admin.listen(cfg.adminSocket(), 0600);
    admin.start();
    if (!cfg.metrics.address.empty()) {
      addEndpoints(metricsHttp, false);
      metricsHttp.listen(cfg.metrics.address);
      metricsHttp.start();
    }
  } catch (const std::exception& e) {
    log::error("cannot start", {{"admin_address", cfg.adminSocket()},
                                {"metrics_address", cfg.metrics.address},
                                {"error", e.what()}});
    server.shutdown();
    server.wait();
    m.removeScrapeHook(hook);
    return 1;
  }
  log::info("ready", {{"admin_address", admin.boundAddress()},
                      {"metrics_address",
                       cfg.metrics.address.empty() ? "off" : metricsHttp.boundAddress()}});
  // Only now may systemd start containerd (After=snapimport.service): every socket listens.
  sd_notifyf(0, "READY=1\nSTATUS=serving on %s", cfg.address.c_str());

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stopSignals, &sig);
    log::info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    sd_notify(0, "STOPPING=1");
    server.shutdown();
  });
  server.wait();
  waiter.join();
  metricsHttp.stop();
  admin.stop();
  m.removeScrapeHook(hook);
  log::info("stopped");
  return 0;
}

}  // namespace

void addServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "serve containerd's snapshots (and content) API on a unix socket");
  cmd->add_option("--root", flags->root, "state directory (default " + DaemonConfig{}.root + ")");
  cmd->add_option("--address", flags->address,
                  "unix socket to listen on (default " + DaemonConfig{}.address + ")");
  // No ExistingFile check: the config loader's own error names the file and the reason.
  cmd->add_option("--config", flags->config, "TOML config file (see `snapimport config default`)");
  cmd->add_option("--log-level", flags->logLevel,
                  "debug, info, warn or error (overrides log.level)");
  cmd->add_option("--metrics-address", flags->metricsAddress,
                  "host:port for /metrics and /healthz over HTTP (overrides metrics.address)");
  cmd->callback([flags] { std::exit(runServe(*flags)); });
}

}  // namespace snapimport::cli
