// CpuCgroup decides whether lowering some of the daemon's threads stays inside its own CPU share:
// the texts are /proc/self/cgroup as cgroup v1, hybrid and v2 systems write it.
#include "plugin/CpuCgroup.h"

#include <gtest/gtest.h>

#include <fstream>

#include "../store/TempDir.h"

namespace snapimport::plugin {
namespace {

TEST(CpuCgroup, V1RootIsNotOwnAndAChildIs) {
  const std::filesystem::path none = "/nonexistent";
  auto root = CpuCgroup::fromProcSelfCgroup("4:memory:/x\n2:cpu,cpuacct:/\n0::/\n", none);
  EXPECT_FALSE(root.own);
  EXPECT_EQ(root.path, "/");
  EXPECT_NE(root.why.find("root cgroup of the cpu controller"), std::string::npos) << root.why;
  // A "cpuacct" line alone is not the cpu controller.
  auto child = CpuCgroup::fromProcSelfCgroup(
      "3:cpuacct:/\n1:cpu:/system.slice/snapimport.service\n0::/system.slice\n", none);
  EXPECT_TRUE(child.own);
  EXPECT_EQ(child.path, "/system.slice/snapimport.service");
}

TEST(CpuCgroup, V2NeedsTheCpuControllerInTheDaemonsCgroup) {
  testing::TempDir tmp;
  const auto unified = tmp.path();
  std::filesystem::create_directories(unified / "system.slice/snapimport.service");
  std::filesystem::create_directories(unified / "user.slice/session-1.scope");
  std::ofstream(unified / "system.slice/snapimport.service/cpu.weight") << "100\n";
  std::ofstream(unified / "cpu.stat") << "usage_usec 1\n";  // the root has no cpu.weight

  auto service = CpuCgroup::fromProcSelfCgroup("0::/system.slice/snapimport.service\n", unified);
  EXPECT_TRUE(service.own) << service.why;
  auto session = CpuCgroup::fromProcSelfCgroup("0::/user.slice/session-1.scope\n", unified);
  EXPECT_FALSE(session.own);
  EXPECT_NE(session.why.find("/user.slice/session-1.scope has no cpu controller"),
            std::string::npos)
      << session.why;
  auto root = CpuCgroup::fromProcSelfCgroup("0::/\n", unified);
  EXPECT_FALSE(root.own);
  // Inside a cgroup namespace "/" is the container's own cgroup, which has cpu.weight.
  std::ofstream(unified / "cpu.weight") << "100\n";
  EXPECT_TRUE(CpuCgroup::fromProcSelfCgroup("0::/\n", unified).own);
}

TEST(CpuCgroup, NoCpuControllerAtAll) {
  auto none = CpuCgroup::fromProcSelfCgroup("5:memory:/a\n", "/nonexistent");
  EXPECT_FALSE(none.own);
  EXPECT_NE(none.why.find("no cpu controller"), std::string::npos) << none.why;
  EXPECT_FALSE(CpuCgroup::fromProcSelfCgroup("", "/nonexistent").own);
}

TEST(CpuCgroup, ThisProcessGivesAnAnswerWithAReason) {
  auto self = CpuCgroup::ofThisProcess();
  if (!self.own) {
    EXPECT_FALSE(self.why.empty());
  }
}

}  // namespace
}  // namespace snapimport::plugin
