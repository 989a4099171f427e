#include "registry/CredentialProviderExec.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "registry/Error.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace snapimport::registry {
namespace {

class PluginExec : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("plugin-exec-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string script(const std::string& body) {
    auto p = dir_ / "plugin";
    std::ofstream(p) << "#!/bin/sh\n" << body;
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }
  std::string read(const std::string& name) {
    std::ifstream in(dir_ / name);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  fs::path dir_;
};

TEST_F(PluginExec, PassesStdinArgsAndEnvironment) {
  setenv("SNAPIMPORT_TEST_KEPT", "from-daemon", 1);
  setenv("SNAPIMPORT_TEST_REPLACED", "old", 1);
  PluginExecRequest r;
  r.program = script(
      "cat\necho \"args=$*\"\necho \"kept=$SNAPIMPORT_TEST_KEPT\"\n"
      "echo \"replaced=$SNAPIMPORT_TEST_REPLACED\"\necho \"added=$ADDED\"\necho oops >&2\n");
  r.args = {"get-credentials", "--x"};
  r.env = {{"SNAPIMPORT_TEST_REPLACED", "new"}, {"ADDED", "yes"}};
  r.input = "{\"image\":\"reg.io/a\"}\n";
  PluginExecResult res = runPlugin(r);
  unsetenv("SNAPIMPORT_TEST_KEPT");
  unsetenv("SNAPIMPORT_TEST_REPLACED");
  EXPECT_TRUE(res.succeeded());
  EXPECT_EQ(res.output,
            "{\"image\":\"reg.io/a\"}\nargs=get-credentials --x\nkept=from-daemon\n"
            "replaced=new\nadded=yes\n");
  EXPECT_EQ(res.errorTail, "oops\n");
}

TEST_F(PluginExec, ReportsExitStatusAndKeepsOnlyTheStderrTail) {
  PluginExecRequest r;
  r.program =
      script("i=0; while [ $i -lt 500 ]; do echo \"line $i\" >&2; i=$((i+1)); done; exit 3\n");
  r.stderrTail = 64;
  PluginExecResult res = runPlugin(r);
  EXPECT_FALSE(res.succeeded());
  EXPECT_EQ(res.exitStatus, 3);
  EXPECT_FALSE(res.timedOut);
  EXPECT_LE(res.errorTail.size(), 64u);
  EXPECT_NE(res.errorTail.find("line 499"), std::string::npos);
  EXPECT_EQ(printableTail(res.errorTail, 20).size(), 23u);  // "..." + 20
  EXPECT_EQ(printableTail("a\n\tb\x01\x02  c\n"), "a b c");
}

TEST_F(PluginExec, TimeoutKillsTheWholeProcessGroup) {
  // The plugin starts a grandchild that would outlive it; both must be gone after the timeout.
  PluginExecRequest r;
  r.program = script("sleep 300 &\necho $! > " + (dir_ / "child.pid").string() +
                     "\necho started >&2\nwait\n");
  r.timeout = 500ms;
  auto start = std::chrono::steady_clock::now();
  PluginExecResult res = runPlugin(r);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(res.timedOut);
  EXPECT_FALSE(res.succeeded());
  EXPECT_EQ(res.signal, SIGKILL);
  EXPECT_LT(took, 5s);
  EXPECT_GE(took, 450ms);
  EXPECT_EQ(res.errorTail, "started\n");
  pid_t child = std::stoi(read("child.pid"));
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    // Killed: no such process, or a zombie waiting for init (its parent, the plugin, is gone).
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    gone = !(stat >> pid >> comm >> state) || state == "Z";
    if (!gone) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(gone) << "grandchild " << child << " survived the timeout";
}

TEST_F(PluginExec, PluginThatClosesOutputButKeepsRunningTimesOut) {
  PluginExecRequest r;
  r.program = script("exec >/dev/null 2>&1\nsleep 300\n");
  r.timeout = 300ms;
  PluginExecResult res = runPlugin(r);
  EXPECT_TRUE(res.timedOut);
}

TEST_F(PluginExec, StdoutIsCapped) {
  PluginExecRequest r;
  r.program = script("while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done\n");
  r.maxOutput = 100000;
  PluginExecResult res = runPlugin(r);
  EXPECT_TRUE(res.outputTooLarge);
  EXPECT_FALSE(res.succeeded());
  EXPECT_EQ(res.output.size(), 100000u);
}

TEST_F(PluginExec, PluginThatIgnoresStdinDoesNotHurtTheCaller) {
  // Far more input than a pipe holds, and a plugin that exits at once: EPIPE, not SIGPIPE.
  PluginExecRequest r;
  r.program = script("echo done\n");
  r.input.assign(1 << 20, 'x');
  PluginExecResult res = runPlugin(r);
  EXPECT_TRUE(res.succeeded());
  EXPECT_EQ(res.output, "done\n");
}

TEST_F(PluginExec, DaemonDescriptorsDoNotLeakIntoThePlugin) {
  // No O_CLOEXEC on purpose, on a number the shell itself does not use.
  int opened = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(opened, 0);
  int fd = ::fcntl(opened, F_DUPFD, 57);
  ::close(opened);
  ASSERT_GE(fd, 57);
  PluginExecRequest r;
  r.program = script("if [ -e /proc/$$/fd/" + std::to_string(fd) +
                     " ]; then echo leaked; else echo clean; fi\n");
  PluginExecResult res = runPlugin(r);
  ::close(fd);
  EXPECT_EQ(res.output, "clean\n");
}

TEST_F(PluginExec, SignalsAreResetForThePlugin) {
  // The daemon ignores SIGPIPE and blocks SIGTERM; a plugin must start with the defaults.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  auto oldPipe = ::signal(SIGPIPE, SIG_IGN);
  PluginExecRequest r;
  // The shell reads its own status with builtins: while it forks, it blocks every signal itself.
  r.program = script(
      "while read -r k v; do case $k in SigBlk:|SigIgn:) printf '%s\\t%s\\n' \"$k\" \"$v\";; esac; "
      "done < /proc/self/status\n");
  PluginExecResult res = runPlugin(r);
  ::signal(SIGPIPE, oldPipe);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_NE(res.output.find("SigBlk:\t0000000000000000"), std::string::npos) << res.output;
  // sh itself may ignore nothing; SIGPIPE (bit 13) must not be ignored.
  auto ign = res.output.substr(res.output.find("SigIgn:\t") + 8, 16);
  EXPECT_EQ(std::stoull(ign, nullptr, 16) & (1ull << (SIGPIPE - 1)), 0u) << res.output;
}

TEST_F(PluginExec, MissingProgramThrows) {
  PluginExecRequest r;
  r.program = (dir_ / "absent").string();
  try {
    runPlugin(r);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find("absent"), std::string::npos);
  }
}

}  // namespace
}  // namespace snapimport::registry
