#include "plugin/CpuCgroup.h"

#include <fstream>
#include <iterator>
#include <system_error>

namespace snapimport::plugin {
namespace {

bool listsCpu(std::string_view controllers) {
  while (!controllers.empty()) {
    size_t comma = controllers.find(',');
    if (controllers.substr(0, comma) == "cpu") return true;
    if (comma == std::string_view::npos) break;
    controllers.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

CpuCgroup CpuCgroup::fromProcSelfCgroup(std::string_view text,
                                        const std::filesystem::path& unifiedRoot) {
  CpuCgroup out;
  std::string unifiedPath;
  bool haveUnified = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    // hierarchy-ID:controller-list:cgroup-path (cgroups(7))
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view id = line.substr(0, c1), controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    if (listsCpu(controllers)) {
      out.path = path;
      out.own = path != "/";
      if (!out.own) out.why = "the daemon is in the root cgroup of the cpu controller (cgroup v1)";
      return out;
    }
    if (id == "0" && controllers.empty()) {
      unifiedPath = path;
      haveUnified = true;
    }
  }
  if (!haveUnified) {
    out.why = "/proc/self/cgroup names no cpu controller";
    return out;
  }
  out.path = unifiedPath;
  std::error_code ec;
  const auto weight =
      unifiedRoot / std::filesystem::path(unifiedPath).relative_path() / "cpu.weight";
  out.own = std::filesystem::exists(weight, ec);
  if (!out.own) {
    out.why = "the daemon's cgroup " + unifiedPath + " has no cpu controller of its own (no " +
              weight.string() + ")";
  }
  return out;
}

CpuCgroup CpuCgroup::ofThisProcess() {
  std::ifstream in("/proc/self/cgroup");
  std::string text{std::istreambuf_iterator<char>(in), {}};
  std::error_code ec;
  std::filesystem::path root = "/sys/fs/cgroup";
  if (!std::filesystem::exists(root / "cgroup.controllers", ec) &&
      std::filesystem::exists("/sys/fs/cgroup/unified/cgroup.controllers", ec)) {
    root = "/sys/fs/cgroup/unified";
  }
  return fromProcSelfCgroup(text, root);
}

}  // namespace snapimport::plugin
