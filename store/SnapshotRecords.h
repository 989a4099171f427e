#pragma once
// Snapshot records in SQLite, apart from any filesystem work (containerd keeps the same split:
// snapshots/storage vs snapshots/overlay). Callers hold the store lock and wrap mutations in a
// Transaction on database().
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "Database.h"
#include "Snapshot.h"

namespace snapimport::store {

class SnapshotRecords {
 public:
  explicit SnapshotRecords(Database& db);

  std::optional<SnapshotRecord> find(const std::string& name);
  // The record whose directory is snapshots/<id>.
  std::optional<SnapshotRecord> findById(int64_t id);
  // Like find, but throws NotFound naming the key.
  SnapshotRecord get(const std::string& name);
  // Inserts a new record and returns its id. The id is also the directory name, and SQLite's
  // AUTOINCREMENT guarantees a committed id is never handed out again.
  int64_t insert(const std::string& name, int64_t parentId, Kind kind, const Labels& labels,
                 TimeNs now);
  // Moves a record to a new name as COMMITTED with fresh times, usage and labels.
  void commit(int64_t id, const std::string& name, int64_t parentId, const Labels& labels,
              Usage usage, TimeNs now);
  void setLabels(int64_t id, const Labels& labels, TimeNs now);
  void remove(int64_t id);
  int64_t childCount(int64_t id);
  // Ids from the given record up to the root, nearest first (the record itself excluded).
  std::vector<int64_t> ancestorIds(const SnapshotRecord& rec);
  std::vector<int64_t> allIds();
  void forEach(const std::function<void(const SnapshotRecord&)>& fn);
  int64_t count();
  // Names of COMMITTED snapshots carrying label key=value whose parent name is `parent`.
  std::vector<std::string> committedWithLabel(const std::string& key, const std::string& value,
                                              const std::string& parent);

  Database& database() { return db_; }

 private:
  Labels labelsOf(int64_t id);
  void writeLabels(int64_t id, const Labels& labels);
  SnapshotRecord fromRow(Statement& st);
  // The first row of `st` (a kSelect query) with its labels; nullopt when it has none.
  std::optional<SnapshotRecord> first(Statement& st);

  Database& db_;
};

}  // namespace snapimport::store
