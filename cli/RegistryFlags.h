#pragma once
// Flags shared by the registry commands (copy, inspect, tags) and their mapping onto
// registry::ClientOptions.
#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "registry/Client.h"

namespace snapimport::cli {

struct EndpointFlags {
  std::string creds;
  // Unset: the registry's own default (hosts.toml, else containerd's loopback rule); true forces
  // verified https, loopback included; false skips verification and allows plain http.
  std::optional<bool> tlsVerify;
};

struct RegistryFlags {
  std::string authFile;
  std::string hostsDir;
  long noProgressTimeout = 30;  // seconds below 1 KiB/s before a transfer fails
  int retries = 5;
  std::string logLevel = "warn";
};

// Adds --<prefix>creds and --<prefix>tls-verify (prefix "" for inspect and tags, "src-" and
// "dest-" for copy); `which` names the registry in the help text ("the source registry").
void addEndpointFlags(CLI::App& cmd, EndpointFlags& flags, const std::string& prefix = "",
                      const std::string& which = "the registry");
// Adds --authfile, --hosts-dir, --no-progress-timeout, --retries, --log-level.
void addRegistryFlags(CLI::App& cmd, RegistryFlags& flags);
registry::ClientOptions clientOptions(const RegistryFlags& flags, const EndpointFlags& endpoint);
// Applies --log-level; returns false (after printing) when it is invalid.
bool applyLogLevel(const RegistryFlags& flags);

}  // namespace snapimport::cli
