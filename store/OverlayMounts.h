#pragma once
// Builds the mounts a caller performs to use a snapshot, exactly as containerd 1.6's overlayfs
// snapshotter does (reference §4, "Mounts"), so containerd's differ and runtime treat us the same.
#include <filesystem>
#include <string>
#include <vector>

#include "Snapshot.h"

namespace snapimport::store {

struct Mount {
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

struct OverlayOptions {
  bool indexOff = false;   // "index=off" first, when the overlay module has an index parameter
  bool userxattr = false;  // "userxattr" next, when running in a user namespace that needs it
};

// self: the snapshot's own directory (holding fs/ and work/); parentFs: the fs/ directories of the
// ancestors, nearest first.
std::vector<Mount> buildMounts(Kind kind, const std::filesystem::path& self,
                               const std::vector<std::filesystem::path>& parentFs,
                               const OverlayOptions& opts);

// Detects the options as containerd 1.6 does for a snapshotter rooted at `root`.
OverlayOptions detectOverlayOptions(const std::filesystem::path& root);

// True when this process runs in a user namespace that does not map the whole uid range.
bool runningInUserNamespace();

}  // namespace snapimport::store
