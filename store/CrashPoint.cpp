#include "CrashPoint.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/Log.h"

namespace snapimport::store {
namespace {

struct FaultConfig {
  std::string point;
  long hit = 1;
  std::string file;  // pause only: what to wait for
};

// "<point>[:<n>]" from the environment variable `var`, or nullptr when unset.
FaultConfig* parse(const char* var) {
  const char* env = std::getenv(var);
  if (!env || !*env) return nullptr;
  auto* c = new FaultConfig;
  std::string s(env);
  auto colon = s.rfind(':');
  c->point = s.substr(0, colon);
  if (colon != std::string::npos)
    c->hit = std::max(1L, std::strtol(s.c_str() + colon + 1, nullptr, 10));
  return c;
}

const FaultConfig* crashConfig() {
  static const FaultConfig* cfg = parse("SNAPIMPORT_CRASH_AT");
  return cfg;
}

const FaultConfig* pauseConfig() {
  static const FaultConfig* cfg = []() -> const FaultConfig* {
    FaultConfig* c = parse("SNAPIMPORT_PAUSE_AT");
    const char* file = std::getenv("SNAPIMPORT_PAUSE_FILE");
    if (!c || !file || !*file) {
      delete c;
      return nullptr;
    }
    c->file = file;
    return c;
  }();
  return cfg;
}

std::atomic<long> g_crashHits{0};
std::atomic<long> g_pauseHits{0};

void pause(const FaultConfig& c) {
  log::warn("paused at fault point", {{"point", c.point}, {"until", c.file}});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  struct stat st {};
  while (::stat(c.file.c_str(), &st) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  log::warn("resumed at fault point", {{"point", c.point}});
}

}  // namespace

void crashPoint(std::string_view name) {
  if (const FaultConfig* c = crashConfig(); c && c->point == name && ++g_crashHits >= c->hit) {
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
  if (const FaultConfig* c = pauseConfig(); c && c->point == name && ++g_pauseHits == c->hit) {
    pause(*c);
  }
}

}  // namespace snapimport::store
