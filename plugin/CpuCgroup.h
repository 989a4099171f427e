#pragma once
// Whether the kernel's cpu controller gives this process a cgroup of its own.
//
// Nice values weigh a thread against every other thread that shares its place in the cpu
// controller's tree. In the root of that tree (no cgroup, or no cpu controller below the root)
// that is every process on the machine, so lowering some of the daemon's threads would let the
// node's workloads take their CPU and make a pull slower than containerd's own. In a cgroup of its
// own (a systemd service with CPUAccounting=yes or a CPUWeight, a container), the group's share
// is fixed by its weight against its siblings, and nice only divides that share among the
// daemon's threads. LayerPriority runs only there.
#include <filesystem>
#include <string>
#include <string_view>

namespace snapimport::plugin {

struct CpuCgroup {
  bool own = false;
  std::string path;  // the cpu hierarchy's path, as /proc/self/cgroup shows it
  std::string why;   // why not, when not own

  // From the text of /proc/self/cgroup. cgroup v1: the line whose controllers include "cpu",
  // own unless its path is "/". cgroup v2 ("0::PATH"): own when the unified hierarchy mounted at
  // `unifiedRoot` has a cpu.weight file for PATH: only a non-root cgroup with the cpu controller
  // enabled has one (inside a cgroup namespace "/" is the container's cgroup, which has it too).
  static CpuCgroup fromProcSelfCgroup(std::string_view text,
                                      const std::filesystem::path& unifiedRoot);
  // This process, with v2 at /sys/fs/cgroup (or /sys/fs/cgroup/unified on a hybrid system).
  static CpuCgroup ofThisProcess();
};

}  // namespace snapimport::plugin
