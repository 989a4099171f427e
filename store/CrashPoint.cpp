#include "CrashPoint.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

namespace snapimport::store {
namespace {

struct CrashConfig {
  std::string point;
  long hit = 1;
};

const CrashConfig* config() {
  static const CrashConfig* cfg = [] () -> const CrashConfig* {
    const char* env = std::getenv("SNAPIMPORT_CRASH_AT");
    if (!env || !*env) return nullptr;
    auto* c = new CrashConfig;
    std::string s(env);
    auto colon = s.rfind(':');
    c->point = s.substr(0, colon);
    if (colon != std::string::npos) c->hit = std::max(1L, std::strtol(s.c_str() + colon + 1, nullptr, 10));
    return c;
  }();
  return cfg;
}

std::atomic<long> g_hits{0};

}  // namespace

void crashPoint(std::string_view name) {
  const CrashConfig* c = config();
  if (!c || c->point != name) return;
  if (++g_hits >= c->hit) {
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
}

}  // namespace snapimport::store
