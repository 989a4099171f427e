#include "PullCommand.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "ImageList.h"
#include "plugin/CriImageClient.h"

namespace snapimport::cli {
namespace {

struct PullFlags {
  std::string endpoint = "unix:///run/containerd/containerd.sock";
  std::string file;
  std::string creds;
  int parallel = 2;
  int timeoutSeconds = 1800;
  std::vector<std::string> images;
};

struct Outcome {
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

  std::unique_ptr<plugin::CriImageClient> client;
  try {
    client = std::make_unique<plugin::CriImageClient>(flags.endpoint, std::chrono::seconds(flags.timeoutSeconds));
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
      Outcome o;
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
  // line with what is still running.
  const bool tty = isatty(STDOUT_FILENO);
  auto begin = std::chrono::steady_clock::now();
  size_t printed = 0;
  int failed = 0;
  {
    std::unique_lock lock(mu);
    while (printed < images.size()) {
      cv.wait_for(lock, std::chrono::milliseconds(200));
      if (tty) std::cout << "\r\033[K";
      while (printed < images.size() && outcomes[printed].done) {
        const Outcome& o = outcomes[printed];
        if (o.ok) {
          std::cout << "pulled  " << images[printed] << "  " << o.detail << "  (" << fmtSeconds(o.seconds) << ")\n";
        } else {
          ++failed;
          std::cout << "FAILED  " << images[printed] << "  (" << fmtSeconds(o.seconds) << "): " << o.detail << "\n";
        }
        ++printed;
      }
      if (tty && printed < images.size()) {
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        std::cout << "pulling " << images[printed] << " ... " << (images.size() - printed) << " left, "
                  << fmtSeconds(elapsed) << std::flush;
      }
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
      "pull", "Pre-pull images through containerd's CRI (namespace k8s.io), so kubelet sees them");
  cmd->add_option("--image-endpoint", flags->endpoint, "CRI image service socket")->capture_default_str();
  cmd->add_option("--file", flags->file, "File with one image per line ('-' for standard input)");
  cmd->add_option("--creds", flags->creds, "USER:PASSWORD for the registry, passed to containerd");
  cmd->add_option("--parallel", flags->parallel, "Images pulled at once")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--timeout", flags->timeoutSeconds, "Seconds allowed per image")->capture_default_str()->check(CLI::Range(1, 86400));
  cmd->add_option("images", flags->images, "Image references");
  cmd->callback([flags] { std::exit(runPull(*flags)); });
}

}  // namespace snapimport::cli
