#include "ContainerdSnippet.h"

#include <cctype>
#include <string_view>
#include <vector>

#include "registry/Descriptor.h"

namespace snapimport::cli {
namespace {

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::vector<std::string_view> splitOn(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? s.npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

// A TOML basic string. Paths with quotes or backslashes are escaped; control characters have no
// business in a path and are refused rather than encoded.
std::string quoted(const std::string& what, const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw SnippetError(what + " contains a control character");
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void requireAbsolute(const std::string& what, const std::string& path) {
  if (path.empty() || path.front() != '/')
    throw SnippetError(what + " must be an absolute path, not \"" + path + "\"");
}

// The diff proxy's entry under [proxy_plugins] and the diff service's differ order.
std::string diffProxy(const std::string& address) {
  return R"(  [proxy_plugins.snapimport-diff]
    type = "diff"
    address = )" +
         address + "\n";
}
constexpr const char* kDiffServiceOrder = R"(
# Layers containerd applies itself (`ctr image pull`, the first layer of a pull): its diff
# service tries snapimport's differ first, which unpacks the blob from snapimport's own content
# store into its own snapshot, with no mount. It answers NotImplemented for anything else (another
# snapshotter's mounts, an encrypted layer), and the walking differ goes on as before.
[plugins."io.containerd.service.v1.diff-service"]
  default = ["snapimport-diff", "walking"]
)";

std::string version2(const ContainerdSnippetOptions& o) {
  const std::string address = quoted("--address", o.address);
  return std::string(o.diffService ? "# snapimport for containerd 1.7.4 and later 1.7 releases"
                                   : "# snapimport for containerd 1.6 (and 1.7 before 1.7.4)") +
         R"( (config version 2). Merge these keys into
# /etc/containerd/config.toml (or add this file to its top-level `imports = [...]`), keep the
# address in step with `address` in /etc/snapimport/config.toml, then restart containerd.
version = 2

# containerd's metadata store takes exactly one content store: switch the built-in one off so
# the proxy below is the one it uses (with both present, 1.6 picks one at random).
disabled_plugins = ["io.containerd.content.v1.content"]

[proxy_plugins]
  [proxy_plugins.snapimport]
    type = "snapshot"
    address = )" +
         address +
         R"(
  [proxy_plugins.snapimport-content]
    type = "content"
    address = )" +
         address + "\n" + (o.diffService ? diffProxy(address) + kDiffServiceOrder : "") + R"(
# CRI (kubelet) pulls: use snapimport, and pass it the layer annotations
# (containerd.io/snapshot/cri.*) the importer needs to fetch layers itself.
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "snapimport"
  disable_snapshot_annotations = false

# Registry mirrors and certificates (hosts.toml). snapimport reads the same directories:
# keep registry.hosts_dir in /etc/snapimport/config.toml equal to this.
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = )" +
         quoted("--hosts-dir", o.hostsDir) + "\n";
}

std::string version3(const ContainerdSnippetOptions& o) {
  const std::string address = quoted("--address", o.address);
  const std::string hostsDir = quoted("--hosts-dir", o.hostsDir);
  const std::string platform = quoted("the platform", o.platform);
  std::string unpack;
  for (const std::string snapshotter : {"snapimport", "overlayfs"}) {
    // The transfer service calls this one differ, with no fallback to another.
    const char* differ =
        snapshotter == "snapimport" && o.diffService ? "snapimport-diff" : "walking";
    unpack += R"(  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = )" +
              platform + "\n    snapshotter = \"" + snapshotter + "\"\n    differ = \"" + differ +
              "\"\n";
  }
  return R"(# snapimport for containerd 2.x (config version 3). Merge these keys into
# /etc/containerd/config.toml (or add this file to its top-level `imports = [...]`), keep the
# address and root in step with /etc/snapimport/config.toml, then restart containerd.
version = 3

# containerd 2.x refuses to start with two content stores: switch the built-in one off so the
# proxy below is the only one.
disabled_plugins = ["io.containerd.content.v1.content"]

[proxy_plugins]
  [proxy_plugins.snapimport]
    type = "snapshot"
    address = )" +
         address +
         R"(
    # What the snapshotter tells the rest of containerd about itself.
    [proxy_plugins.snapimport.exports]
      # The filesystem CRI's ImageFsInfo reports to kubelet (image garbage collection): where
      # snapimport keeps its snapshots, its `root`.
      root = )" +
         quoted("--root", o.root) + R"(
      # Ask the transfer service to pass the CRI layer labels (containerd.io/snapshot/cri.*)
      # on every Prepare: the importer needs them to fetch the layers itself.
      enable_remote_snapshot_annotations = "true"
  [proxy_plugins.snapimport-content]
    type = "content"
    address = )" +
         address + "\n" + (o.diffService ? diffProxy(address) + kDiffServiceOrder : "") + R"(
# CRI (kubelet) pulls: unpack into snapimport.
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "snapimport"
  # Leave this at its default, true: with false, 2.1's CRI pulls through its old local path
  # instead of the transfer service. snapimport gets the layer labels either way, from the
  # exports above.
  disable_snapshot_annotations = true
  # Registry mirrors and certificates (hosts.toml). 2.x takes ONE directory here, not a ':'
  # list; keep it first in registry.hosts_dir of /etc/snapimport/config.toml.
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = )" +
         hostsDir + R"(

# The transfer service: CRI's pulls in 2.1 and `ctr image pull` go through it.
[plugins."io.containerd.transfer.v1.local"]
  config_path = )" +
         hostsDir + R"(
  # Any unpack_config replaces containerd's built-in list, so overlayfs is listed too: a
  # `ctr image pull` that names no snapshotter still unpacks the usual way.
)" + unpack;
}

}  // namespace

int containerdConfigVersion(const std::string& release) {
  std::string_view v = release;
  if (v.starts_with('v')) v.remove_prefix(1);
  std::vector<std::string_view> parts = splitOn(v, '.');
  bool patchOk = parts.size() < 3 || (parts.size() == 3 && allDigits(parts[2]));
  if (patchOk && parts.size() >= 2 && parts[0] == "1" && (parts[1] == "6" || parts[1] == "7"))
    return 2;
  if (patchOk && parts[0] == "2" && (parts.size() == 1 || parts[1] == "x" || allDigits(parts[1])))
    return 3;
  throw SnippetError("unknown containerd version \"" + release + "\": use one of " +
                     kContainerdVersions);
}

bool containerdTakesDiffProxy(const std::string& release) {
  if (containerdConfigVersion(release) == 3) return true;
  std::string_view v = release;
  if (v.starts_with('v')) v.remove_prefix(1);
  std::vector<std::string_view> parts = splitOn(v, '.');
  if (parts[1] != "7") return false;  // 1.6
  return parts.size() < 3 || std::stoi(std::string(parts[2])) >= 4;
}

std::string defaultContainerdHostsDir(int configVersion) {
  return configVersion >= 3 ? "/etc/containerd/certs.d"
                            : "/etc/containerd/certs.d:/etc/docker/certs.d";
}

std::string hostUnpackPlatform() {
  registry::Platform p = registry::Platform::host();
  return p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant);
}

std::string renderContainerdSnippet(const ContainerdSnippetOptions& o) {
  requireAbsolute("--address", o.address);
  if (o.hostsDir.empty()) throw SnippetError("--hosts-dir must not be empty");
  if (o.configVersion == 2) {
    for (std::string_view dir : splitOn(o.hostsDir, ':'))
      requireAbsolute("each directory of --hosts-dir", std::string(dir));
    return version2(o);
  }
  if (o.configVersion != 3)
    throw SnippetError("containerd config version " + std::to_string(o.configVersion) +
                       " is not 2 or 3");
  if (o.hostsDir.find(':') != std::string::npos) {
    throw SnippetError("--hosts-dir \"" + o.hostsDir +
                       "\" is a ':' list; containerd 2.x reads one hosts directory "
                       "(its transfer service does not split the path): give one, e.g. " +
                       defaultContainerdHostsDir(3));
  }
  requireAbsolute("--hosts-dir", o.hostsDir);
  requireAbsolute("--root", o.root);
  if (o.platform.empty()) throw SnippetError("the unpack platform must not be empty");
  return version3(o);
}

}  // namespace snapimport::cli
