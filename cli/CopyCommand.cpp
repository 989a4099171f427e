#include "CopyCommand.h"

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <mutex>

#include "RegistryFlags.h"
#include "registry/Copy.h"
#include "registry/Error.h"

namespace snapimport::cli {
namespace {

std::string human(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

// Progress bars on a terminal, one plain line per event otherwise (CI logs stay readable).
class Progress : public registry::CopyObserver {
 public:
  explicit Progress(bool tty) : tty_(tty) {}

  void blobStarted(const registry::Descriptor& d) override {
    std::lock_guard lock(mu_);
    order_.push_back(d.digest.str());
    rows_[d.digest.str()] = Row{static_cast<uint64_t>(d.size), 0, "copying"};
    if (!tty_)
      std::cerr << "Copying blob " << d.digest.shortForm() << " (" << human(d.size) << ")\n";
    redraw(true);
  }
  void blobProgress(const registry::Descriptor& d, uint64_t done) override {
    std::lock_guard lock(mu_);
    rows_[d.digest.str()].done = done;
    redraw(false);
  }
  void blobFinished(const registry::Descriptor& d, bool skipped) override {
    std::lock_guard lock(mu_);
    auto& r = rows_[d.digest.str()];
    r.state = skipped ? "already present" : "done";
    if (!skipped) r.done = r.size;
    if (!tty_) std::cerr << "Copied blob " << d.digest.shortForm() << ": " << r.state << "\n";
    redraw(true);
  }
  void manifestWritten(const registry::ManifestBlob& m) override {
    std::lock_guard lock(mu_);
    finishBars();
    std::cerr << "Writing manifest " << m.digest.str() << " (" << m.mediaType << ")\n";
  }

 private:
  struct Row {
    uint64_t size, done;
    std::string state;
  };

  void finishBars() {
    if (tty_ && drawn_ > 0) redraw(true);
    order_.clear();
    rows_.clear();
    drawn_ = 0;
  }

  void redraw(bool force) {
    if (!tty_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    if (drawn_ > 0) std::cerr << "\x1b[" << drawn_ << "A";
    for (const auto& key : order_) {
      const Row& r = rows_[key];
      int width = 30;
      int filled =
          r.size
              ? static_cast<int>(width * static_cast<double>(r.done) / static_cast<double>(r.size))
              : width;
      std::cerr << "\r\x1b[2K" << key.substr(0, 19) << " [" << std::string(filled, '=')
                << std::string(width - filled, ' ') << "] " << human(r.done) << " / "
                << human(r.size) << " " << r.state << "\n";
    }
    drawn_ = static_cast<int>(order_.size());
  }

  bool tty_;
  std::mutex mu_;
  std::vector<std::string> order_;
  std::map<std::string, Row> rows_;
  int drawn_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

struct CopyFlags {
  std::string src, dst;
  bool all = false;
  std::string platform;
  EndpointFlags srcEndpoint, dstEndpoint;
  RegistryFlags registry;
  int parallel = 4;
  bool quiet = false;
};

int runCopy(const CopyFlags& f) {
  if (!applyLogLevel(f.registry)) return 2;
  try {
    registry::EndpointOptions so{clientOptions(f.registry, f.srcEndpoint)};
    registry::EndpointOptions dO{clientOptions(f.registry, f.dstEndpoint)};
    registry::CopyOptions co;
    co.all = f.all;
    if (!f.platform.empty()) co.platform = registry::Platform::parse(f.platform);
    co.parallelBlobs = f.parallel;
    Progress progress(isatty(STDERR_FILENO) == 1);
    if (!f.quiet) co.observer = &progress;
    auto src = registry::openSource(f.src, so);
    auto dst = registry::openDestination(f.dst, dO);
    auto start = std::chrono::steady_clock::now();
    auto result = registry::copyImage(*src, *dst, co);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!f.quiet) {
      std::cerr << "Copied " << src->describe() << " to " << dst->describe() << ": "
                << result.blobsCopied << " blobs (" << human(result.bytesCopied) << "), "
                << result.blobsSkipped << " already present, in " << secs << " s\n";
    }
    std::cout << result.digest.str() << "\n";
    return 0;
  } catch (const registry::Error& e) {
    std::cerr << "snapimport copy " << f.src << " " << f.dst << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "snapimport copy " << f.src << " " << f.dst << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

void addCopyCommand(CLI::App& app) {
  auto flags = std::make_shared<CopyFlags>();
  auto* cmd = app.add_subcommand(
      "copy", "copy an image between registries, OCI layouts, docker archives and directories");
  cmd->add_option("SRC", flags->src,
                  "docker://REF, oci:DIR[:TAG], docker-archive:FILE[:REF] or dir:DIR")
      ->required();
  cmd->add_option("DST", flags->dst,
                  "docker://REF, oci:DIR[:TAG], docker-archive:FILE[:REF] or dir:DIR")
      ->required();
  cmd->add_flag("--all,-a", flags->all, "copy every image of an index, and the index itself");
  cmd->add_option("--platform", flags->platform,
                  "OS/ARCH[/VARIANT] to pick from an index (default: this machine)");
  addEndpointFlags(*cmd, flags->srcEndpoint, "src-", "the source registry");
  addEndpointFlags(*cmd, flags->dstEndpoint, "dest-", "the destination registry");
  cmd->add_option("--parallel", flags->parallel, "blobs copied at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--quiet,-q", flags->quiet, "no progress output");
  addRegistryFlags(*cmd, flags->registry);
  cmd->callback([flags] {
    int rc = runCopy(*flags);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace snapimport::cli
