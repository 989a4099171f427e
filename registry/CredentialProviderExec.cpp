#include "registry/CredentialProviderExec.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include "registry/Error.h"

extern char** environ;

namespace snapimport::registry {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int* receive() { return &fd_; }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
};

void makePipe(Pipe& p, const std::string& program) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    throw Error(ErrorKind::Io, "cannot create pipes for " + program + ": " + std::strerror(errno));
  *p.read.receive() = fds[0];
  *p.write.receive() = fds[1];
}

void nonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// write(2) that turns a SIGPIPE (the plugin exited without reading) into EPIPE, also where the
// process does not ignore SIGPIPE (the CLI and tests do not; the daemon does).
ssize_t writeNoSigpipe(int fd, const char* data, size_t len) {
  sigset_t pipeSet, old;
  sigemptyset(&pipeSet);
  sigaddset(&pipeSet, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipeSet, &old);
  ssize_t n = ::write(fd, data, len);
  int saved = errno;
  if (n < 0 && saved == EPIPE) {
    struct timespec zero {};
    sigtimedwait(&pipeSet, nullptr, &zero);  // consume the SIGPIPE this thread just raised
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return n;
}

std::vector<std::string> environment(const std::vector<std::pair<std::string, std::string>>& env) {
  std::set<std::string> replaced;
  for (const auto& [k, v] : env) replaced.insert(k);
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (!replaced.count(std::string(kv.substr(0, kv.find('='))))) out.emplace_back(kv);
  }
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

PluginExecResult runPlugin(const PluginExecRequest& r) {
  const auto start = Clock::now();
  const auto deadline = start + r.timeout;
  Pipe in, out, err;
  makePipe(in, r.program);
  makePipe(out, r.program);
  makePipe(err, r.program);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in.read.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out.write.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err.write.get(), 2);
  // Whatever the daemon opened without O_CLOEXEC (sockets, databases) stays out of the plugin.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a timeout kills what the plugin started too. The daemon blocks
  // SIGTERM/SIGINT in every thread and ignores SIGPIPE; a plugin starts with neither.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<std::string> args;
  args.push_back(r.program);
  args.insert(args.end(), r.args.begin(), r.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> envStrings = environment(r.env);
  std::vector<char*> envp;
  for (auto& e : envStrings) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = 0;
  int rc = posix_spawn(&pid, r.program.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw Error(ErrorKind::Io, "cannot run " + r.program + ": " + std::strerror(rc));
  in.read.reset();
  out.write.reset();
  err.write.reset();
  nonBlocking(in.write.get());
  nonBlocking(out.read.get());
  nonBlocking(err.read.get());

  PluginExecResult res;
  size_t written = 0;
  if (r.input.empty()) in.write.reset();
  char buf[16384];
  while (out.read.open() || err.read.open()) {
    auto now = Clock::now();
    if (now >= deadline) {
      res.timedOut = true;
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    int inIdx = -1, outIdx = -1, errIdx = -1;
    if (in.write.open()) fds[inIdx = int(n++)] = {in.write.get(), POLLOUT, 0};
    if (out.read.open()) fds[outIdx = int(n++)] = {out.read.get(), POLLIN, 0};
    if (err.read.open()) fds[errIdx = int(n++)] = {err.read.get(), POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    int pr = ::poll(fds, n, static_cast<int>(std::min<long long>(left, 1000)));
    if (pr < 0) {
      if (errno == EINTR) continue;
      break;  // cannot happen with valid descriptors; the wait below still reaps the plugin
    }
    if (inIdx >= 0 && fds[inIdx].revents) {
      ssize_t w =
          writeNoSigpipe(in.write.get(), r.input.data() + written, r.input.size() - written);
      if (w > 0) written += size_t(w);
      // Done, or the plugin stopped reading (EPIPE): either way it gets no more input.
      if (written == r.input.size() || (w < 0 && errno != EAGAIN && errno != EINTR))
        in.write.reset();
    }
    if (outIdx >= 0 && fds[outIdx].revents) {
      ssize_t got = ::read(out.read.get(), buf, sizeof buf);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        out.read.reset();
      } else if (got > 0) {
        res.output.append(buf, size_t(got));
        if (res.output.size() > r.maxOutput) {
          res.output.resize(r.maxOutput);
          res.outputTooLarge = true;
          break;
        }
      }
    }
    if (errIdx >= 0 && fds[errIdx].revents) {
      ssize_t got = ::read(err.read.get(), buf, sizeof buf);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        err.read.reset();
      } else if (got > 0) {
        res.errorTail.append(buf, size_t(got));
        if (res.errorTail.size() > r.stderrTail)
          res.errorTail.erase(0, res.errorTail.size() - r.stderrTail);
      }
    }
  }
  in.write.reset();
  out.read.reset();
  err.read.reset();

  // The group is killed while its leader is not yet reaped, so its id cannot have been reused.
  bool killed = false;
  if (res.timedOut || res.outputTooLarge) {
    ::kill(-pid, SIGKILL);
    killed = true;
  }
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, killed ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      status = -1;  // reaped elsewhere (SIGCHLD ignored): the exit status is unknown
      break;
    }
    if (Clock::now() >= deadline) {
      // It closed its output but keeps running.
      res.timedOut = true;
      ::kill(-pid, SIGKILL);
      killed = true;
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (status != -1) {
    if (WIFEXITED(status)) res.exitStatus = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) res.signal = WTERMSIG(status);
  }
  res.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return res;
}

std::string printableTail(const std::string& text, size_t max) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    char p = (u < 0x20 || u == 0x7f) ? ' ' : c;
    if (p == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += p;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > max) out = "..." + out.substr(out.size() - max);
  return out;
}

}  // namespace snapimport::registry
