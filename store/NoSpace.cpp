#include "NoSpace.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "StoreError.h"
#include "common/Log.h"
#include "common/Metrics.h"

namespace snapimport::store {

bool isNoSpace(int err) { return err == ENOSPC || err == EDQUOT; }

bool mentionsNoSpace(std::string_view message) {
  for (int err : {ENOSPC, EDQUOT}) {
    if (message.find(std::strerror(err)) != std::string_view::npos) return true;
  }
  return false;
}

uint64_t availableBytes(const std::filesystem::path& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

void failNoSpace(std::string_view area, const std::string& message) {
  metrics::Metrics::daemon().noSpaceErrors(area).Increment();
  log::warn("out of disk space", {{"area", std::string(area)}, {"error", message}});
  throw StoreError(ErrorClass::ResourceExhausted, message);
}

void failSystem(std::string_view area, const std::string& what, int err) {
  std::string message = what + ": " + std::strerror(err);
  if (isNoSpace(err)) failNoSpace(area, message);
  throw StoreError(ErrorClass::Internal, message);
}

}  // namespace snapimport::store
