#include "RegistryFlags.h"

#include <filesystem>
#include <iostream>

#include "common/Log.h"

namespace snapimport::cli {

void addEndpointFlags(CLI::App& cmd, EndpointFlags& flags, const std::string& prefix,
                      const std::string& which) {
  cmd.add_option("--" + prefix + "creds", flags.creds, "USER[:PASSWORD] for " + which);
  cmd.add_option("--" + prefix + "tls-verify", flags.tlsVerify,
                 "true: verify " + which +
                     "'s TLS certificate, also on loopback; false: skip "
                     "verification and allow plain http; default: as its hosts.toml says, else "
                     "verified, except on localhost, 127.0.0.0/8 and ::1, which are tried over "
                     "unverified https, then plain http (containerd's rule)")
      ->type_name("BOOL");
}

void addRegistryFlags(CLI::App& cmd, RegistryFlags& flags) {
  cmd.add_option("--authfile", flags.authFile,
                 "docker config.json / containers auth.json with credentials");
  cmd.add_option("--hosts-dir", flags.hostsDir,
                 "containerd hosts.toml directories (certs.d layout), ':'-separated; default "
                 "/etc/containerd/certs.d:/etc/docker/certs.d if present");
  cmd.add_option("--no-progress-timeout", flags.noProgressTimeout,
                 "fail a transfer that moves less than 1 KiB/s for this many seconds")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  cmd.add_option("--retries", flags.retries, "retries for 429/5xx answers and dropped connections")
      ->capture_default_str()
      ->check(CLI::Range(0, 50));
  cmd.add_option("--log-level", flags.logLevel, "debug, info, warn or error")
      ->capture_default_str();
}

registry::ClientOptions clientOptions(const RegistryFlags& flags, const EndpointFlags& endpoint) {
  registry::ClientOptions o;
  o.authFile = flags.authFile;
  o.hostsDir = flags.hostsDir;
  if (o.hostsDir.empty()) {
    for (const char* d : {"/etc/containerd/certs.d", "/etc/docker/certs.d"}) {
      std::error_code ec;
      if (std::filesystem::is_directory(d, ec))
        o.hostsDir += (o.hostsDir.empty() ? "" : ":") + std::string(d);
    }
  }
  if (!endpoint.creds.empty()) o.creds = endpoint.creds;
  o.tlsVerify = endpoint.tlsVerify;
  o.transport.lowSpeedSeconds = flags.noProgressTimeout;
  o.maxRetries = flags.retries;
  if (const char* c = std::getenv("SNAPIMPORT_CHUNK_SIZE");
      c && *c) {  // tests: force chunked uploads
    o.chunkSize = std::stoull(c);
  }
  return o;
}

bool applyLogLevel(const RegistryFlags& flags) {
  log::Level level;
  if (!log::parseLevel(flags.logLevel, level)) {
    std::cerr << "invalid --log-level " << flags.logLevel << " (debug|info|warn|error)\n";
    return false;
  }
  log::setLevel(level);
  return true;
}

}  // namespace snapimport::cli
