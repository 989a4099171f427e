#include "PullCommand.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "DaemonConfig.h"
#include "ImageList.h"
#include "PullProgress.h"
#include "common/HttpServer.h"
#include "plugin/CriImageClient.h"

namespace snapimport::cli {
namespace {

constexpr const char* kDefaultConfigFile = "/etc/snapimport/config.toml";
constexpr const char* kContainerdCriEndpoint = "unix:///run/containerd/containerd.sock";

struct PullFlags {
  std::string endpoint;  // empty: the daemon's CRI proxy when its config has one, else containerd
  std::string configFile = kDefaultConfigFile;
  std::string file;
  std::string creds;
  int parallel = 2;
  int timeoutSeconds = 1800;
  std::string adminAddress;  // for the live view; empty: as `snapimport status` finds it
  std::vector<std::string> images;
};

struct Outcome {
  bool started = false;
  std::chrono::steady_clock::time_point startedAt{};
  bool done = false;
  bool ok = false;
  std::string detail;  // image id, or the error
  double seconds = 0;
};

std::string fmtSeconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

// The daemon's config, when the file exists and parses; else the defaults. Neither the live view
// nor the choice of endpoint may stop a pull because of a config the daemon would refuse.
DaemonConfig daemonConfigFor(const PullFlags& flags) {
  if (access(flags.configFile.c_str(), F_OK) == 0) {
    try {
      return DaemonConfig::load(flags.configFile);
    } catch (const std::exception& e) {
      std::cerr << "snapimport pull: ignoring " << flags.configFile << ": " << e.what() << "\n";
    }
  }
  return DaemonConfig{};
}

// The daemon's admin socket: --admin-address, else from the config file if there is one, else
// the built-in default (as `snapimport status` finds it without flags).
std::string adminSocketFor(const PullFlags& flags, const DaemonConfig& cfg) {
  if (!flags.adminAddress.empty()) return flags.adminAddress;
  return cfg.adminSocket();
}

// Where to pull: --image-endpoint, else the daemon's CRI image-service proxy when it has one
// (so the credentials of the pull reach the importer), else containerd's CRI socket.
std::string endpointFor(const PullFlags& flags, const DaemonConfig& cfg) {
  if (!flags.endpoint.empty()) return flags.endpoint;
  if (!cfg.cri.imageServiceAddress.empty()) return "unix://" + cfg.cri.imageServiceAddress;
  return kContainerdCriEndpoint;
}

// The live lines on a terminal: one per image being pulled, redrawn in place below the
// finished ones. Progress comes from the daemon's /status; without a daemon to ask (another
// snapshotter, no access to the socket) the lines show only how long each image has taken.
class TerminalView {
 public:
  TerminalView(const std::vector<std::string>& images, std::string adminSocket)
      : progress_(images), adminSocket_(std::move(adminSocket)) {
    if (auto snap = fetch()) progress_.baseline(*snap);
  }

  // Asks the daemon at most every 0.5 s (every 5 s while it does not answer).
  void poll(double now) {
    if (now < nextPoll_) return;
    if (auto snap = fetch()) {
      progress_.update(std::move(*snap), now);
      nextPoll_ = now + 0.5;
    } else {
      progress_.clear();
      nextPoll_ = now + 5;
    }
  }

  // One write per frame: erase the live lines, print what is final, draw the live lines again.
  void frame(const std::string& finished, const std::vector<std::pair<size_t, double>>& running,
             size_t queued) {
    std::string out;
    if (drawn_ > 0) {  // up to the first live line, then erase it and everything below
      out += "\033[";
      out += std::to_string(drawn_);
      out += "A\r\033[J";
    }
    out += finished;
    size_t width = terminalWidth();
    drawn_ = 0;
    for (const auto& line : progress_.lines(running, width)) {
      out += line;
      out += '\n';
      ++drawn_;
    }
    if (queued) {
      out += std::to_string(queued);
      out += " more queued\n";
      ++drawn_;
    }
    std::cout << out << std::flush;
  }

 private:
  std::optional<std::vector<progress::ImageProgress>> fetch() {
    try {
      int status = 0;
      std::string body = http::get(adminSocket_, "/status", status, 1000);
      if (status == 200) return progress::fromJson(body);
    } catch (const std::exception&) {
    }
    return std::nullopt;
  }

  static size_t terminalWidth() {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col - 1;
    return 79;
  }

  PullProgress progress_;
  std::string adminSocket_;
  double nextPoll_ = 0;
  int drawn_ = 0;
};

std::string outcomeLine(const std::string& image, const Outcome& o) {
  std::ostringstream line;
  if (o.ok) {
    line << "pulled  " << image << "  " << o.detail << "  (" << fmtSeconds(o.seconds) << ")\n";
  } else {
    line << "FAILED  " << image << "  (" << fmtSeconds(o.seconds) << "): " << o.detail << "\n";
  }
  return line.str();
}

int runPull(const PullFlags& flags) {
  std::vector<std::string> images = flags.images;
  try {
    if (!flags.file.empty()) {
      std::vector<std::string> listed;
      if (flags.file == "-") {
        listed = readImageList(std::cin, "standard input");
      } else {
        std::ifstream in(flags.file);
        if (!in) throw std::runtime_error("cannot open image list " + flags.file);
        listed = readImageList(in, flags.file);
      }
      images.insert(images.end(), listed.begin(), listed.end());
    }
  } catch (const std::exception& e) {
    std::cerr << "snapimport pull: " << e.what() << "\n";
    return 2;
  }
  if (images.empty()) {
    std::cerr << "snapimport pull: no images given (pass IMAGE... or --file LIST)\n";
    return 2;
  }
  std::optional<plugin::CriAuth> auth;
  if (!flags.creds.empty()) {
    auto colon = flags.creds.find(':');
    if (colon == std::string::npos) {
      std::cerr << "snapimport pull: --creds must be USER:PASSWORD\n";
      return 2;
    }
    auth = plugin::CriAuth{flags.creds.substr(0, colon), flags.creds.substr(colon + 1)};
  }

  const DaemonConfig cfg = daemonConfigFor(flags);
  const std::string endpoint = endpointFor(flags, cfg);
  std::unique_ptr<plugin::CriImageClient> client;
  try {
    client = std::make_unique<plugin::CriImageClient>(endpoint,
                                                      std::chrono::seconds(flags.timeoutSeconds));
  } catch (const std::exception& e) {
    std::cerr << "snapimport pull: " << e.what() << "\n";
    return 2;
  }

  std::vector<Outcome> outcomes(images.size());
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < images.size();) {
      auto start = std::chrono::steady_clock::now();
      {
        std::lock_guard lock(mu);
        outcomes[i].started = true;
        outcomes[i].startedAt = start;
      }
      Outcome o;
      o.started = true;
      o.startedAt = start;
      try {
        o.detail = client->pull(images[i], auth);
        o.ok = true;
      } catch (const std::exception& e) {
        o.detail = e.what();
      }
      o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      o.done = true;
      std::lock_guard lock(mu);
      outcomes[i] = o;
      cv.notify_all();
    }
  };
  int workers = std::max(1, std::min<int>(flags.parallel, static_cast<int>(images.size())));
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i) threads.emplace_back(worker);

  // Results are printed in input order as they become available; a terminal also gets a live
  // line per image still running.
  const bool tty = isatty(STDOUT_FILENO);
  std::unique_ptr<TerminalView> view;
  if (tty) view = std::make_unique<TerminalView>(images, adminSocketFor(flags, cfg));
  auto begin = std::chrono::steady_clock::now();
  size_t printed = 0;
  int failed = 0;
  {
    std::unique_lock lock(mu);
    while (printed < images.size()) {
      cv.wait_for(lock, std::chrono::milliseconds(200));
      std::string finished;
      while (printed < images.size() && outcomes[printed].done) {
        const Outcome& o = outcomes[printed];
        if (!o.ok) ++failed;
        finished += outcomeLine(images[printed], o);
        ++printed;
      }
      if (!view) {
        std::cout << finished << std::flush;
        continue;
      }
      auto now = std::chrono::steady_clock::now();
      std::vector<std::pair<size_t, double>> running;
      size_t queued = 0;
      for (size_t i = printed; i < images.size(); ++i) {
        if (!outcomes[i].started) {
          ++queued;
        } else if (!outcomes[i].done) {
          running.emplace_back(i,
                               std::chrono::duration<double>(now - outcomes[i].startedAt).count());
        }
      }
      // The daemon is asked without holding the lock, so workers can report meanwhile.
      lock.unlock();
      view->poll(std::chrono::duration<double>(now - begin).count());
      view->frame(finished, running, queued);
      lock.lock();
    }
  }
  for (auto& t : threads) t.join();
  std::cout << images.size() - failed << " pulled, " << failed << " failed\n";
  return failed ? 1 : 0;
}

}  // namespace

void addPullCommand(CLI::App& app) {
  auto flags = std::make_shared<PullFlags>();
  CLI::App* cmd = app.add_subcommand(
      "pull", "pre-pull images through containerd's CRI (namespace k8s.io), so kubelet sees them");
  cmd->add_option("--image-endpoint", flags->endpoint,
                  std::string("CRI image service socket (default: the daemon's [cri] "
                              "image_service_address when its config sets one, else ") +
                      kContainerdCriEndpoint + ")");
  cmd->add_option("--config", flags->configFile,
                  "the daemon's config file, for the endpoint and the admin socket")
      ->capture_default_str();
  cmd->add_option("--file", flags->file, "file with one image per line ('-' for standard input)");
  cmd->add_option("--creds", flags->creds, "USER:PASSWORD for the registry, passed to containerd");
  cmd->add_option("--parallel", flags->parallel, "images pulled at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--timeout", flags->timeoutSeconds, "seconds allowed per image")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--admin-address", flags->adminAddress,
                  std::string("snapimport's admin socket, for the live progress on a terminal "
                              "(default: from ") +
                      "--config if it exists, else " + DaemonConfig{}.adminSocket() + ")");
  cmd->add_option("IMAGE", flags->images, "image references");
  cmd->callback([flags] { std::exit(runPull(*flags)); });
}

}  // namespace snapimport::cli
