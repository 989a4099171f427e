#pragma once
// The daemon's TOML config. Every key has a default and a doc comment; `snapimport config default`
// prints them all as a valid file. Unknown keys, wrongly typed and out-of-range values are errors
// that name the file, the line and the dotted key: a typo must not silently fall back to a default.
//
// Keys for parts that land later (the importer reads [import], [registry], [timeouts] and
// [limits]) are parsed, validated and defaulted here already, so one file configures everything.
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace snapimport::cli {

// A config error; what() is "FILE[:LINE]: key \"a.b\" ...".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DaemonConfig {
  using Duration = std::chrono::milliseconds;

  std::string root = "/var/lib/snapimport";
  std::string address = "/run/snapimport/snapimport.sock";
  // Empty: "<address without .sock>-admin.sock", next to the gRPC socket (see adminSocket()).
  std::string adminAddress;

  struct Log {
    std::string level = "info";     // debug | info | warn | error
    std::string format = "logfmt";  // logfmt | json
  } log;

  struct Metrics {
    std::string address;  // "host:port" for /metrics and /healthz over HTTP; empty: off
  } metrics;

  struct Registry {
    // containerd's config_path: hosts.toml directories, ':'-separated, tried in order.
    std::string hostsDir = "/etc/containerd/certs.d:/etc/docker/certs.d";
    std::string authFile;  // docker config.json with credentials; empty: anonymous only
    // kubelet's --image-credential-provider-config (file or directory) and
    // --image-credential-provider-bin-dir; both empty: no credential provider plugins.
    std::string credentialProviderConfig;
    std::string credentialProviderBinDir;
    Duration credentialProviderTimeout = std::chrono::seconds(10);  // per plugin run
  } registry;

  struct Cri {
    // Our runtime.v1.ImageService socket (kubelet's imageServiceEndpoint); empty: no proxy.
    std::string imageServiceAddress;
    // containerd's CRI socket, where the proxy forwards to.
    std::string containerdAddress = "/run/containerd/containerd.sock";
    // How long a PullImage's credential outlives the call.
    Duration credentialGracePeriod = std::chrono::seconds(10);
  } cri;

  struct Import {
    bool enabled = true;
    bool keepCompressedBlobs = false;
    int64_t maxConcurrentLayers = 8;
    int64_t maxConcurrentPerRegistry = 4;
    int64_t maxConcurrentWriteImports = 4;
    bool diffService = false;
    Duration stagingGracePeriod = std::chrono::minutes(10);
    Duration writebackInterval = std::chrono::milliseconds(100);
    uint64_t directWriteMinSize = 256 << 10;
    int64_t backgroundLayerNice = 19;
  } import;

  struct Timeouts {
    Duration connect = std::chrono::seconds(30);
    Duration stall = std::chrono::seconds(60);
    Duration layer = std::chrono::minutes(30);
    Duration shutdown = std::chrono::seconds(5);
  } timeouts;

  struct Limits {
    uint64_t maxManifestBytes = 4ull << 20;
    uint64_t maxConfigBytes = 8ull << 20;
    uint64_t maxLayerBytes = 64ull << 30;
    int64_t maxLayerEntries = 1'000'000;
    int64_t maxPathBytes = 4096;
    uint64_t maxPaxHeaderBytes = 1ull << 20;
  } limits;

  // The admin socket `snapimport status` talks to: adminAddress, or derived from address.
  std::string adminSocket() const;

  // Throws ConfigError naming the file (and line and key where there is one).
  static DaemonConfig load(const std::string& file);
  static DaemonConfig parse(const std::string& text, const std::string& sourceName);
  // The full default file, every key with its doc comment. It parses back to DaemonConfig{}.
  static std::string defaultFile();
  // Checks values that flags may have overridden after parsing (flags name no file).
  void validate() const;
};

// "30s", "5m", "1h", "250ms", "0s" -> milliseconds; false for anything else.
bool parseDuration(const std::string& text, DaemonConfig::Duration& out);
std::string formatDuration(DaemonConfig::Duration d);
// "4MiB", "1GB", "512" -> bytes; false for anything else.
bool parseSize(const std::string& text, uint64_t& out);
std::string formatSize(uint64_t bytes);

}  // namespace snapimport::cli
