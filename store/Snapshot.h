#pragma once
// Snapshot records as the store keeps them. Names and keys are opaque strings from containerd
// (they contain '/' and spaces); only the numeric id ever becomes part of a path.
#include <cstdint>
#include <map>
#include <string>

namespace snapimport::store {

enum class Kind { View = 1, Active = 2, Committed = 3 };

using Labels = std::map<std::string, std::string>;

// Nanoseconds since the Unix epoch.
using TimeNs = int64_t;
TimeNs nowNs();

struct SnapshotInfo {
  std::string name;
  std::string parent;  // empty for a base snapshot
  Kind kind = Kind::Active;
  TimeNs created = 0;
  TimeNs updated = 0;
  Labels labels;
};

struct Usage {
  int64_t size = 0;    // bytes, as st_blocks * 512
  int64_t inodes = 0;  // distinct inodes
};

// What the store knows about one record beyond its Info.
struct SnapshotRecord {
  int64_t id = 0;
  int64_t parentId = 0;  // 0 when there is no parent
  SnapshotInfo info;
  Usage usage;  // stored at commit; zero otherwise
};

const char* kindName(Kind kind);

}  // namespace snapimport::store
