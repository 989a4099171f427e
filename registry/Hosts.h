#pragma once
// containerd's registry host configuration (hosts.toml in certs.d-style directories), so a node
// pulls through the same mirrors containerd would use. See containerd-api.md §6.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/Http.h"

namespace snapimport::registry {

enum Capability : unsigned { kPull = 1, kResolve = 2, kPush = 4 };

struct RegistryHost {
  std::string scheme = "https";
  std::string host;          // host[:port] as it goes in the URL
  std::string path = "/v2";  // API root
  unsigned capabilities = kPull | kResolve | kPush;
  TlsOptions tls;
  HttpHeaders headers;
  // A mirror gets ?ns=<registry> on every request.
  bool isMirror = false;
  // Loopback registries without configuration (and --tls-verify=false) are tried over https
  // without verification first and over plain http when the TLS handshake fails, as containerd
  // does for localhost.
  bool httpFallback = false;

  std::string baseUrl() const { return scheme + "://" + host + path; }
  bool can(unsigned caps) const { return (capabilities & caps) == caps; }
};

struct HostsOptions {
  // Directory roots, ':'-separated, tried in order (containerd's config_path). Empty: none.
  std::string hostsDir;
  // Unset: as configured (hosts.toml, else containerd's rule: loopback registries are plain
  // http or unverified https). false: skip TLS verification and allow plain http for every host
  // of this registry (skopeo's --tls-verify=false). true: every host over https with
  // verification, loopback and http:// or skip_verify hosts included (skopeo's
  // --tls-verify=true).
  std::optional<bool> tlsVerify;
};

// The hosts to try for `registry` ("docker.io", "127.0.0.1:5000"), in order: the [host] entries
// of hosts.toml that exist, then the server (or the built-in default). Throws Error(Invalid) for
// a hosts.toml value that is wrong (an unknown capability, for instance).
std::vector<RegistryHost> resolveHosts(std::string_view registry, const HostsOptions& options);

// The built-in default for a registry without configuration.
RegistryHost defaultHost(std::string_view registry);

bool isLoopbackHost(std::string_view hostPort);

// The directory inside `root` that configures `registry`, or "" (host_port_, host:port, _default).
std::string hostsDirectoryFor(const std::string& root, std::string_view registry);

}  // namespace snapimport::registry
