#include "OverlayMounts.h"

#include <sys/statfs.h>
#include <sys/utsname.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace snapimport::store {

std::vector<Mount> buildMounts(Kind kind, const std::filesystem::path& self,
                               const std::vector<std::filesystem::path>& parentFs,
                               const OverlayOptions& opts) {
  const std::string fs = (self / "fs").string();
  if (parentFs.empty()) {
    // No parents: the snapshot's own directory, bind mounted.
    return {Mount{"bind", fs, {kind == Kind::Active ? "rw" : "ro", "rbind"}}};
  }
  if (kind == Kind::View && parentFs.size() == 1) {
    // A read-only view of a single layer needs no overlay at all.
    return {Mount{"bind", parentFs.front().string(), {"ro", "rbind"}}};
  }
  std::vector<std::string> options;
  if (opts.indexOff) options.push_back("index=off");
  if (opts.userxattr) options.push_back("userxattr");
  if (kind == Kind::Active) {
    options.push_back("workdir=" + (self / "work").string());
    options.push_back("upperdir=" + fs);
  }
  std::string lower = "lowerdir=";
  for (size_t i = 0; i < parentFs.size(); ++i) {
    if (i) lower += ':';
    lower += parentFs[i].string();
  }
  options.push_back(lower);
  return {Mount{"overlay", "overlay", options}};
}

bool runningInUserNamespace() {
  std::ifstream f("/proc/self/uid_map");
  if (!f) return false;
  long inside = -1, outside = -1, length = -1;
  f >> inside >> outside >> length;
  // The initial namespace maps 0 0 4294967295.
  return !(inside == 0 && outside == 0 && length == 4294967295L);
}

namespace {
bool kernelAtLeast(int major, int minor) {
  struct utsname u {};
  if (uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}
}  // namespace

OverlayOptions detectOverlayOptions(const std::filesystem::path& root) {
  OverlayOptions o;
  std::error_code ec;
  o.indexOff = std::filesystem::exists("/sys/module/overlay/parameters/index", ec);
  if (runningInUserNamespace()) {
    struct statfs sf {};
    constexpr long kTmpfsMagic = 0x01021994;
    bool onTmpfs = statfs(root.c_str(), &sf) == 0 && sf.f_type == kTmpfsMagic;
    // containerd additionally tries a trial mount on kernels before 5.11; those kernels lack
    // userxattr for overlay in user namespaces in practice, so we leave it off there.
    o.userxattr = !onTmpfs && kernelAtLeast(5, 11);
  }
  return o;
}

}  // namespace snapimport::store
