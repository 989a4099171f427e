#pragma once
// The containerd configuration that makes a node use snapimport, per containerd release:
// `snapimport config containerd --version V` prints it, and packaging/containerd/config-*.toml
// are its default output (a unit test keeps them equal; the .deb ships what the built binary
// prints).
//
// containerd 1.6 and 1.7 read config `version = 2` (CRI is one plugin, io.containerd.grpc.v1.cri);
// 2.x reads `version = 3` (CRI split into io.containerd.cri.v1.*, pulls through the transfer
// service, which takes ONE hosts directory, not a ':' list).
#include <stdexcept>
#include <string>

namespace snapimport::cli {

// A bad --version or a value that cannot go into the snippet; what() says which and why.
class SnippetError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct ContainerdSnippetOptions {
  // containerd's config schema: 2 (containerd 1.6, 1.7) or 3 (2.x).
  int configVersion = 2;
  std::string address;   // snapimport's gRPC socket (proxy_plugins address)
  std::string root;      // snapimport's root (2.x: exports.root, the filesystem CRI reports)
  std::string hostsDir;  // hosts.toml directory (config_path); a ':' list only for version 2
  std::string platform;  // "linux/amd64": the transfer service's unpack platform (2.x)
  // snapimport's diff service as containerd's first differ (1.7.4+ and 2.x; 1.6 refuses a
  // proxy plugin of type "diff" and does not start).
  bool diffService = false;
};

// The releases --version accepts, for help and errors.
inline constexpr const char* kContainerdVersions = "1.6, 1.7, 2.0, 2.1, 2.x";

// "1.6", "1.7", "2.0", "2.1", "2.x" (also "2", a patch release such as "1.7.24" and a leading
// "v", as `containerd --version` prints them) -> 2 or 3. Throws SnippetError listing the
// accepted ones otherwise.
int containerdConfigVersion(const std::string& release);

// Whether `release` (as containerdConfigVersion accepts it) takes a proxy plugin of type "diff":
// 1.7.4 and later ("1.7" means the current 1.7), every 2.x.
bool containerdTakesDiffProxy(const std::string& release);

// The hosts directory containerd reads by default with the packaged snippet.
std::string defaultContainerdHostsDir(int configVersion);

// "linux/<GOARCH>[/variant]" of this machine, as containerd's platforms package names it.
std::string hostUnpackPlatform();

// The snippet. Throws SnippetError for a relative or empty path, a ':' list as the 2.x hosts
// directory, or a value with control characters.
std::string renderContainerdSnippet(const ContainerdSnippetOptions& options);

}  // namespace snapimport::cli
