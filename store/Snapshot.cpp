#include "Snapshot.h"

#include <chrono>

namespace snapimport::store {

TimeNs nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::View:
      return "view";
    case Kind::Active:
      return "active";
    case Kind::Committed:
      return "committed";
  }
  return "unknown";
}

}  // namespace snapimport::store
