#pragma once
// The overlay snapshotter: records in SQLite (SnapshotRecords) plus one numeric directory per
// snapshot under <root>/snapshots. Every mutation is either a SQLite transaction or the rename of a
// fully built directory, ordered so that a crash at any point leaves state that open() reconciles.
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "Database.h"
#include "Filter.h"
#include "OverlayMounts.h"
#include "Snapshot.h"
#include "SnapshotRecords.h"

namespace snapimport::store {

class SnapshotStore {
 public:
  // Opens (creating if needed) <root>/meta.db and <root>/snapshots, then removes directories no
  // record backs, so a crash before this start leaves nothing behind.
  explicit SnapshotStore(const std::filesystem::path& root);
  SnapshotStore(const std::filesystem::path& root, OverlayOptions overlay);

  std::vector<Mount> prepare(const std::string& key, const std::string& parent,
                             const Labels& labels);
  std::vector<Mount> view(const std::string& key, const std::string& parent, const Labels& labels);
  std::vector<Mount> mounts(const std::string& key);
  // `parent`, when not empty, rebases an active snapshot that has no parent (containerd 2.2+).
  void commit(const std::string& name, const std::string& key, const Labels& labels,
              const std::string& parent = {});
  void remove(const std::string& key);
  SnapshotInfo stat(const std::string& key);
  // fieldpaths: empty, "labels" or "labels.<k>"; anything else is InvalidArgument.
  SnapshotInfo update(const SnapshotInfo& info, const std::vector<std::string>& fieldpaths);
  void list(const Filter& filter, const std::function<void(const SnapshotInfo&)>& fn);
  Usage usage(const std::string& key);
  // Removes every entry under snapshots/ that no record backs. Returns how many were removed.
  size_t cleanup();

  // Read-only counts for metrics. Usage is what commit recorded; active snapshots are left out
  // because measuring them means walking their directories at every scrape.
  struct Totals {
    int64_t committed = 0;
    int64_t active = 0;
    int64_t views = 0;
    Usage committedUsage;
  };
  Totals totals();

  // --- for the importer ---
  // The first COMMITTED snapshot with label key=value on exactly `parent` (a name; empty = none).
  std::optional<SnapshotInfo> findCommitted(const std::string& labelKey, const std::string& value,
                                            const std::string& parent);
  // fs/ directories of a committed snapshot and its ancestors, nearest first; empty for "".
  std::vector<std::filesystem::path> chainFsDirs(const std::string& name);
  // The ACTIVE snapshot whose fs/ directory is `dir` (the upperdir or bind source its mounts
  // name), with the fs/ directories of its ancestors, nearest first. nullopt when `dir` is no
  // active snapshot's fs/ (another snapshotter's path, a view, a committed snapshot).
  struct ActiveFs {
    SnapshotInfo info;
    std::filesystem::path fs;
    std::vector<std::filesystem::path> lowers;
  };
  std::optional<ActiveFs> activeByFsDir(const std::filesystem::path& dir);
  // Where imports are built; on the snapshots' filesystem so a finished one is renamed in.
  const std::filesystem::path& stagingDir() const { return stagingDir_; }
  // Turns a fully built directory `staged` (holding fs/) into a COMMITTED snapshot `name` on
  // `parent`, in one transaction with the rename. Usage is computed from the staged tree.
  SnapshotInfo commitStaged(const std::string& name, const std::string& parent,
                            const Labels& labels, const std::filesystem::path& staged);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path snapshotDir(int64_t id) const;
  const OverlayOptions& overlayOptions() const { return overlay_; }

 private:
  std::vector<Mount> create(Kind kind, const std::string& key, const std::string& parent,
                            const Labels& labels);
  std::vector<Mount> mountsFor(const SnapshotRecord& rec);
  std::filesystem::path fsDir(int64_t id) const;

  std::filesystem::path root_;
  std::filesystem::path snapshotsDir_;
  std::filesystem::path stagingDir_;
  OverlayOptions overlay_;
  std::mutex mu_;  // guards db_ and records_ (one SQLite connection)
  std::unique_ptr<Database> db_;
  std::unique_ptr<SnapshotRecords> records_;
};

// Matches an Info against containerd's snapshot filter fields: name, parent, kind, labels.<k>.
bool matchSnapshot(const Filter& filter, const SnapshotInfo& info);

}  // namespace snapimport::store
