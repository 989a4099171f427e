#include "SnapshotRecords.h"

#include "StoreError.h"

namespace snapimport::store {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS snapshots (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  name      TEXT NOT NULL UNIQUE,
  parent_id INTEGER REFERENCES snapshots(id),
  kind      INTEGER NOT NULL,
  created   INTEGER NOT NULL,
  updated   INTEGER NOT NULL,
  size      INTEGER NOT NULL DEFAULT 0,
  inodes    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS snapshot_labels (
  snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  key         TEXT NOT NULL,
  value       TEXT NOT NULL,
  PRIMARY KEY (snapshot_id, key)
);
)sql";

constexpr const char* kSelect =
    "SELECT s.id, s.name, COALESCE(p.name, ''), s.kind, s.created, s.updated, s.size, s.inodes, "
    "COALESCE(s.parent_id, 0) FROM snapshots s LEFT JOIN snapshots p ON s.parent_id = p.id";

}  // namespace

SnapshotRecords::SnapshotRecords(Database& db) : db_(db) { db_.exec(kSchema); }

SnapshotRecord SnapshotRecords::fromRow(Statement& st) {
  SnapshotRecord r;
  r.id = st.int64(0);
  r.info.name = st.text(1);
  r.info.parent = st.text(2);
  r.info.kind = static_cast<Kind>(st.int64(3));
  r.info.created = st.int64(4);
  r.info.updated = st.int64(5);
  r.usage.size = st.int64(6);
  r.usage.inodes = st.int64(7);
  r.parentId = st.int64(8);
  return r;
}

Labels SnapshotRecords::labelsOf(int64_t id) {
  Labels labels;
  auto st = db_.prepare("SELECT key, value FROM snapshot_labels WHERE snapshot_id = ?");
  st.bind(1, id);
  while (st.step()) labels.emplace(st.text(0), st.text(1));
  return labels;
}

void SnapshotRecords::writeLabels(int64_t id, const Labels& labels) {
  db_.prepare("DELETE FROM snapshot_labels WHERE snapshot_id = ?").bind(1, id).run();
  auto st = db_.prepare("INSERT INTO snapshot_labels (snapshot_id, key, value) VALUES (?, ?, ?)");
  for (const auto& [k, v] : labels) {
    if (v.empty()) continue;  // an empty value means "no such label", as in containerd
    st.reset();
    st.bind(1, id).bind(2, k).bind(3, v).run();
  }
}

std::optional<SnapshotRecord> SnapshotRecords::first(Statement& st) {
  if (!st.step()) return std::nullopt;
  SnapshotRecord r = fromRow(st);
  r.info.labels = labelsOf(r.id);
  return r;
}

std::optional<SnapshotRecord> SnapshotRecords::find(const std::string& name) {
  auto st = db_.prepare(std::string(kSelect) + " WHERE s.name = ?");
  st.bind(1, name);
  return first(st);
}

std::optional<SnapshotRecord> SnapshotRecords::findById(int64_t id) {
  auto st = db_.prepare(std::string(kSelect) + " WHERE s.id = ?");
  st.bind(1, id);
  return first(st);
}

SnapshotRecord SnapshotRecords::get(const std::string& name) {
  auto r = find(name);
  if (!r) fail(ErrorClass::NotFound, "snapshot \"" + name + "\" does not exist");
  return *r;
}

int64_t SnapshotRecords::insert(const std::string& name, int64_t parentId, Kind kind,
                                const Labels& labels, TimeNs now) {
  auto st = db_.prepare(
      "INSERT INTO snapshots (name, parent_id, kind, created, updated) VALUES (?, ?, ?, ?, ?)");
  st.bind(1, name);
  if (parentId)
    st.bind(2, parentId);
  else
    st.bindNull(2);
  st.bind(3, static_cast<int64_t>(kind)).bind(4, now).bind(5, now).run();
  int64_t id = db_.lastInsertRowId();
  writeLabels(id, labels);
  return id;
}

void SnapshotRecords::commit(int64_t id, const std::string& name, int64_t parentId,
                             const Labels& labels, Usage usage, TimeNs now) {
  auto st = db_.prepare(
      "UPDATE snapshots SET name = ?, parent_id = ?, kind = ?, created = ?, updated = ?, size = ?, "
      "inodes = ? "
      "WHERE id = ?");
  st.bind(1, name);
  if (parentId)
    st.bind(2, parentId);
  else
    st.bindNull(2);
  st.bind(3, static_cast<int64_t>(Kind::Committed)).bind(4, now).bind(5, now).bind(6, usage.size);
  st.bind(7, usage.inodes).bind(8, id).run();
  writeLabels(id, labels);
}

void SnapshotRecords::setLabels(int64_t id, const Labels& labels, TimeNs now) {
  db_.prepare("UPDATE snapshots SET updated = ? WHERE id = ?").bind(1, now).bind(2, id).run();
  writeLabels(id, labels);
}

void SnapshotRecords::remove(int64_t id) {
  db_.prepare("DELETE FROM snapshot_labels WHERE snapshot_id = ?").bind(1, id).run();
  db_.prepare("DELETE FROM snapshots WHERE id = ?").bind(1, id).run();
}

int64_t SnapshotRecords::childCount(int64_t id) {
  auto st = db_.prepare("SELECT COUNT(*) FROM snapshots WHERE parent_id = ?");
  st.bind(1, id);
  st.step();
  return st.int64(0);
}

std::vector<int64_t> SnapshotRecords::ancestorIds(const SnapshotRecord& rec) {
  std::vector<int64_t> ids;
  auto st = db_.prepare("SELECT COALESCE(parent_id, 0) FROM snapshots WHERE id = ?");
  for (int64_t cur = rec.parentId; cur != 0;) {
    ids.push_back(cur);
    if (ids.size() > 100000) fail(ErrorClass::Internal, "snapshot parent chain loops");
    st.reset();
    st.bind(1, cur);
    cur = st.step() ? st.int64(0) : 0;
  }
  return ids;
}

std::vector<int64_t> SnapshotRecords::allIds() {
  std::vector<int64_t> ids;
  auto st = db_.prepare("SELECT id FROM snapshots");
  while (st.step()) ids.push_back(st.int64(0));
  return ids;
}

void SnapshotRecords::forEach(const std::function<void(const SnapshotRecord&)>& fn) {
  // Labels come from a second query per row; fine at node scale (thousands of snapshots).
  std::vector<SnapshotRecord> rows;
  {
    auto st = db_.prepare(std::string(kSelect) + " ORDER BY s.id");
    while (st.step()) rows.push_back(fromRow(st));
  }
  for (auto& r : rows) {
    r.info.labels = labelsOf(r.id);
    fn(r);
  }
}

int64_t SnapshotRecords::count() {
  auto st = db_.prepare("SELECT COUNT(*) FROM snapshots");
  st.step();
  return st.int64(0);
}

std::vector<std::string> SnapshotRecords::committedWithLabel(const std::string& key,
                                                             const std::string& value,
                                                             const std::string& parent) {
  auto st = db_.prepare(
      "SELECT s.name FROM snapshots s JOIN snapshot_labels l ON l.snapshot_id = s.id "
      "LEFT JOIN snapshots p ON s.parent_id = p.id "
      "WHERE l.key = ? AND l.value = ? AND s.kind = ? AND COALESCE(p.name, '') = ? ORDER BY s.id");
  st.bind(1, key).bind(2, value).bind(3, static_cast<int64_t>(Kind::Committed)).bind(4, parent);
  std::vector<std::string> names;
  while (st.step()) names.push_back(st.text(0));
  return names;
}

}  // namespace snapimport::store
