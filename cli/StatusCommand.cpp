#include "StatusCommand.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "DaemonConfig.h"
#include "common/HttpServer.h"

namespace snapimport::cli {
namespace {

constexpr const char* kDefaultConfigFile = "/etc/snapimport/config.toml";

struct StatusFlags {
  std::string config;
  std::string adminAddress;
  bool json = false;
};

std::string shortDigest(const std::string& d) {
  // "sha256:" plus 12 hex digits, as docker and ctr abbreviate.
  size_t colon = d.find(':');
  size_t keep = (colon == std::string::npos ? 0 : colon + 1) + 12;
  return d.size() > keep ? d.substr(0, keep) : d;
}

std::string fmt(const char* format, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

std::string percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "   ";
  uint64_t p = part >= whole ? 100 : part * 100 / whole;
  return fmt("%3u%%", static_cast<unsigned>(p));
}

// The admin socket: --admin-address, else from --config, else from the packaged config file if
// there is one, else the built-in default.
std::string adminSocketFor(const StatusFlags& flags) {
  if (!flags.adminAddress.empty()) return flags.adminAddress;
  if (!flags.config.empty()) return DaemonConfig::load(flags.config).adminSocket();
  if (access(kDefaultConfigFile, F_OK) == 0)
    return DaemonConfig::load(kDefaultConfigFile).adminSocket();
  return DaemonConfig{}.adminSocket();
}

int runStatus(const StatusFlags& flags) {
  std::string address;
  std::string body;
  int status = 0;
  try {
    address = adminSocketFor(flags);
    body = http::get(address, "/status", status);
  } catch (const std::exception& e) {
    std::cerr << "snapimport status: " << e.what()
              << "\n(is `snapimport serve` running? point at it with --config FILE or "
                 "--admin-address SOCKET)\n";
    return 1;
  }
  if (status != 200) {
    std::cerr << "snapimport status: " << address << " answered HTTP " << status << ": " << body
              << "\n";
    return 1;
  }
  if (flags.json) {
    std::cout << body << "\n";
    return 0;
  }
  try {
    std::cout << renderStatus(progress::fromJson(body));
  } catch (const std::exception& e) {
    std::cerr << "snapimport status: " << address << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

std::string humanBytes(uint64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt("%llu B", static_cast<unsigned long long>(bytes))
                : fmt("%.1f %s", v, units[u]);
}

std::string renderStatus(const std::vector<progress::ImageProgress>& images) {
  if (images.empty()) return "No imports in flight (and none finished in the last 2 minutes).\n";
  std::string out;
  for (const auto& img : images) {
    uint64_t size = 0, fetched = 0;
    size_t done = 0, failed = 0, fallback = 0;
    for (const auto& l : img.layers) {
      size += l.size;
      fetched += l.fetched < l.size || l.size == 0 ? l.fetched : l.size;
      done += l.state == progress::LayerState::Done;
      failed += l.state == progress::LayerState::Failed;
      fallback += l.state == progress::LayerState::Fallback;
    }
    if (!out.empty()) out += "\n";
    out += "IMAGE " + img.ref + "  " + shortDigest(img.manifest) + "\n";
    out += fmt("  %s %.1fs, %zu/%zu layers done", img.finished ? "finished in" : "running for",
               img.seconds, done, img.layers.size());
    if (failed) out += fmt(", %zu failed", failed);
    if (fallback) out += fmt(", %zu left to containerd", fallback);
    out += ", fetched " + humanBytes(fetched) +
           (size ? " of " + humanBytes(size) + " " + percent(fetched, size) : "");
    out += "\n";
    out += fmt("  %-19s  %-10s  %-8s  %-7s  %-28s  %-10s  %s\n", "LAYER", "STATE", "SOURCE", "VIA",
               "FETCHED", "WRITTEN", "TIME");
    for (const auto& l : img.layers) {
      std::string got =
          humanBytes(l.fetched) +
          (l.size ? " / " + humanBytes(l.size) + " " + percent(l.fetched, l.size) : "");
      out += fmt("  %-19s  %-10s  %-8s  %-7s  %-28s  %-10s  %.1fs", shortDigest(l.digest).c_str(),
                 progress::stateName(l.state), l.source.empty() ? "-" : l.source.c_str(),
                 l.via.empty() ? "-" : l.via.c_str(), got.c_str(), humanBytes(l.written).c_str(),
                 l.seconds);
      if (!l.error.empty()) out += "  (" + l.error + ")";
      out += "\n";
    }
  }
  return out;
}

void addStatusCommand(CLI::App& app) {
  auto flags = std::make_shared<StatusFlags>();
  CLI::App* cmd = app.add_subcommand(
      "status", "show the imports the running daemon has in flight, per image and layer");
  cmd->add_option("--config", flags->config,
                  std::string("the daemon's config file, to find its admin socket (default ") +
                      kDefaultConfigFile + " if it exists)");
  cmd->add_option("--admin-address", flags->adminAddress, "the daemon's admin socket");
  cmd->add_flag("--json", flags->json, "print the daemon's /status document as it is");
  cmd->callback([flags] { std::exit(runStatus(*flags)); });
}

}  // namespace snapimport::cli
