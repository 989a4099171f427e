#include "SnapshotStore.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "CrashPoint.h"
#include "DiskUsage.h"
#include "Labels.h"
#include "NoSpace.h"
#include "StoreError.h"
#include "common/Log.h"

namespace snapimport::store {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void sysFail(const std::string& what) { failSystem(kAreaSnapshots, what, errno); }

void makeDir(const fs::path& p, mode_t mode) {
  if (mkdir(p.c_str(), mode) != 0 && errno != EEXIST) sysFail("create directory " + p.string());
  // mkdir honours the umask; the modes here are part of the on-disk contract.
  if (chmod(p.c_str(), mode) != 0) sysFail("chmod " + p.string());
}

void fsyncDir(const fs::path& p) {
  int fd = open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) sysFail("open directory " + p.string() + " for fsync");
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  if (rc != 0) sysFail("fsync directory " + p.string());
}

void removeTree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) fail(ErrorClass::Internal, "remove " + p.string() + ": " + ec.message());
}

bool isNumericName(const std::string& s) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Renames a fully built directory to its id. A directory already there can only be debris of a
// transaction that never committed (ids are only reused after a rollback), so it is replaced.
void renameIntoPlace(const fs::path& built, const fs::path& final) {
  if (rename(built.c_str(), final.c_str()) == 0) return;
  if (errno != EEXIST && errno != ENOTEMPTY)
    sysFail("rename " + built.string() + " to " + final.string());
  log::warn("replacing stale snapshot directory", {{"path", final.string()}});
  removeTree(final);
  if (rename(built.c_str(), final.c_str()) != 0)
    sysFail("rename " + built.string() + " to " + final.string());
}

// Removes a half-built directory unless released; keeps error paths from leaking directories.
class DirGuard {
 public:
  explicit DirGuard(fs::path p) : path_(std::move(p)) {}
  ~DirGuard() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  void reset(fs::path p) { path_ = std::move(p); }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

}  // namespace

SnapshotStore::SnapshotStore(const fs::path& root)
    : SnapshotStore(root, detectOverlayOptions(root)) {}

SnapshotStore::SnapshotStore(const fs::path& root, OverlayOptions overlay)
    : root_(root),
      snapshotsDir_(root / "snapshots"),
      stagingDir_(root / "staging"),
      overlay_(overlay) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) failSystem(kAreaSnapshots, "create root " + root_.string(), ec.value());
  makeDir(root_, 0700);
  makeDir(snapshotsDir_, 0700);
  // Imports never survive a restart half-done: whatever was staged belongs to a dead process.
  removeTree(stagingDir_);
  makeDir(stagingDir_, 0700);
  db_ = std::make_unique<Database>(root_ / "meta.db");
  records_ = std::make_unique<SnapshotRecords>(*db_);
  size_t removed = cleanup();
  if (removed)
    log::info("removed directories left without a record", {{"count", std::to_string(removed)}});
}

fs::path SnapshotStore::snapshotDir(int64_t id) const { return snapshotsDir_ / std::to_string(id); }
fs::path SnapshotStore::fsDir(int64_t id) const { return snapshotDir(id) / "fs"; }

std::vector<Mount> SnapshotStore::prepare(const std::string& key, const std::string& parent,
                                          const Labels& labels) {
  return create(Kind::Active, key, parent, labels);
}

std::vector<Mount> SnapshotStore::view(const std::string& key, const std::string& parent,
                                       const Labels& labels) {
  return create(Kind::View, key, parent, labels);
}

std::vector<Mount> SnapshotStore::create(Kind kind, const std::string& key,
                                         const std::string& parent, const Labels& labels) {
  validateKey(key, "snapshot key");
  validateLabels(labels);
  std::lock_guard lock(mu_);
  if (records_->find(key))
    fail(ErrorClass::AlreadyExists, "snapshot \"" + key + "\" already exists");
  SnapshotRecord parentRec;
  if (!parent.empty()) {
    auto p = records_->find(parent);
    if (!p) fail(ErrorClass::NotFound, "parent snapshot \"" + parent + "\" does not exist");
    if (p->info.kind != Kind::Committed) {
      fail(ErrorClass::InvalidArgument,
           "parent snapshot \"" + parent + "\" is " + kindName(p->info.kind) + ", not committed");
    }
    parentRec = *p;
  }

  // Build the directory under a temporary name first; only a complete one is ever renamed in.
  std::string tmpl = (snapshotsDir_ / "new-XXXXXX").string();
  if (!mkdtemp(tmpl.data()))
    sysFail("create temporary snapshot directory in " + snapshotsDir_.string());
  fs::path tmp = tmpl;
  DirGuard guard(tmp);
  makeDir(tmp / "fs", 0755);
  if (kind == Kind::Active) makeDir(tmp / "work", 0711);
  if (parentRec.id) {
    // New layers start owned like the layer below, as containerd's overlay snapshotter does.
    struct stat st {};
    fs::path pfs = fsDir(parentRec.id);
    if (::stat(pfs.c_str(), &st) != 0) sysFail("stat parent directory " + pfs.string());
    if (lchown((tmp / "fs").c_str(), st.st_uid, st.st_gid) != 0)
      sysFail("chown " + (tmp / "fs").string());
  }
  crashPoint("prepare.dir-created");

  Transaction tx(*db_);
  int64_t id = records_->insert(key, parentRec.id, kind, labels, nowNs());
  fs::path final = snapshotDir(id);
  renameIntoPlace(tmp, final);
  guard.reset(final);
  fsyncDir(snapshotsDir_);
  crashPoint("prepare.renamed");
  tx.commit();
  guard.release();
  crashPoint("prepare.committed");

  SnapshotRecord rec;
  rec.id = id;
  rec.parentId = parentRec.id;
  rec.info.kind = kind;
  return mountsFor(rec);
}

std::vector<Mount> SnapshotStore::mountsFor(const SnapshotRecord& rec) {
  std::vector<fs::path> parents;
  for (int64_t pid : records_->ancestorIds(rec)) parents.push_back(fsDir(pid));
  return buildMounts(rec.info.kind, snapshotDir(rec.id), parents, overlay_);
}

std::vector<Mount> SnapshotStore::mounts(const std::string& key) {
  std::lock_guard lock(mu_);
  SnapshotRecord rec = records_->get(key);
  if (rec.info.kind == Kind::Committed) {
    fail(ErrorClass::FailedPrecondition, "snapshot \"" + key +
                                             "\" is committed; mounts are only available for "
                                             "active and view snapshots");
  }
  return mountsFor(rec);
}

void SnapshotStore::commit(const std::string& name, const std::string& key, const Labels& labels,
                           const std::string& parent) {
  validateKey(name, "snapshot name");
  validateLabels(labels);
  int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    SnapshotRecord rec = records_->get(key);
    if (rec.info.kind != Kind::Active) {
      fail(ErrorClass::FailedPrecondition, "snapshot \"" + key + "\" is " +
                                               kindName(rec.info.kind) +
                                               "; only active snapshots can be committed");
    }
    if (records_->find(name))
      fail(ErrorClass::AlreadyExists, "snapshot \"" + name + "\" already exists");
    id = rec.id;
  }
  // The tree walk can be long; it runs without the lock and the record is re-checked below.
  Usage u = diskUsage(fsDir(id));
  crashPoint("commit.usage-computed");

  std::lock_guard lock(mu_);
  SnapshotRecord rec = records_->get(key);
  if (rec.id != id || rec.info.kind != Kind::Active) {
    fail(ErrorClass::FailedPrecondition,
         "snapshot \"" + key + "\" changed while it was being committed");
  }
  if (records_->find(name))
    fail(ErrorClass::AlreadyExists, "snapshot \"" + name + "\" already exists");
  int64_t parentId = rec.parentId;
  if (!parent.empty() && parent != rec.info.parent) {
    if (rec.parentId != 0) {
      fail(ErrorClass::InvalidArgument, "cannot commit \"" + key + "\" onto parent \"" + parent +
                                            "\": it was prepared on \"" + rec.info.parent + "\"");
    }
    auto p = records_->find(parent);
    if (!p) fail(ErrorClass::NotFound, "parent snapshot \"" + parent + "\" does not exist");
    if (p->info.kind != Kind::Committed) {
      fail(ErrorClass::InvalidArgument, "parent snapshot \"" + parent + "\" is not committed");
    }
    parentId = p->id;
  }
  Transaction tx(*db_);
  records_->commit(id, name, parentId, labels, u, nowNs());
  tx.commit();
  crashPoint("commit.committed");
}

void SnapshotStore::remove(const std::string& key) {
  std::lock_guard lock(mu_);
  SnapshotRecord rec = records_->get(key);
  int64_t children = records_->childCount(rec.id);
  if (children > 0) {
    fail(ErrorClass::FailedPrecondition, "cannot remove snapshot \"" + key + "\": it has " +
                                             std::to_string(children) + " child snapshot(s)");
  }
  Transaction tx(*db_);
  records_->remove(rec.id);
  tx.commit();
  crashPoint("remove.committed");
  // As containerd 1.6 does, the directory stays until Cleanup: it may still be mounted by a
  // container that is being torn down.
}

SnapshotInfo SnapshotStore::stat(const std::string& key) {
  std::lock_guard lock(mu_);
  return records_->get(key).info;
}

SnapshotInfo SnapshotStore::update(const SnapshotInfo& info,
                                   const std::vector<std::string>& fieldpaths) {
  validateLabels(info.labels);
  std::lock_guard lock(mu_);
  SnapshotRecord rec = records_->get(info.name);
  Labels labels = rec.info.labels;
  if (fieldpaths.empty()) {
    labels = info.labels;
  } else {
    for (const auto& path : fieldpaths) {
      if (path == "labels") {
        labels = info.labels;
      } else if (path.rfind("labels.", 0) == 0) {
        std::string k = path.substr(7);
        auto it = info.labels.find(k);
        labels[k] = it == info.labels.end() ? std::string() : it->second;
      } else {
        fail(ErrorClass::InvalidArgument, "cannot update field \"" + path + "\" of snapshot \"" +
                                              info.name + "\": only labels can change");
      }
    }
  }
  std::erase_if(labels, [](const auto& kv) { return kv.second.empty(); });
  Transaction tx(*db_);
  records_->setLabels(rec.id, labels, nowNs());
  tx.commit();
  return records_->get(info.name).info;
}

void SnapshotStore::list(const Filter& filter, const std::function<void(const SnapshotInfo&)>& fn) {
  std::vector<SnapshotInfo> matched;
  {
    std::lock_guard lock(mu_);
    records_->forEach([&](const SnapshotRecord& r) {
      if (matchSnapshot(filter, r.info)) matched.push_back(r.info);
    });
  }
  // Callbacks run unlocked: they write to a gRPC stream that may block on a slow reader.
  for (const auto& info : matched) fn(info);
}

Usage SnapshotStore::usage(const std::string& key) {
  int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    SnapshotRecord rec = records_->get(key);
    if (rec.info.kind != Kind::Active) return rec.usage;
    id = rec.id;
  }
  return diskUsage(fsDir(id));
}

SnapshotStore::Totals SnapshotStore::totals() {
  Totals t;
  std::lock_guard lock(mu_);
  records_->forEach([&](const SnapshotRecord& r) {
    switch (r.info.kind) {
      case Kind::Committed:
        ++t.committed;
        t.committedUsage.size += r.usage.size;
        t.committedUsage.inodes += r.usage.inodes;
        break;
      case Kind::Active:
        ++t.active;
        break;
      case Kind::View:
        ++t.views;
        break;
    }
  });
  return t;
}

size_t SnapshotStore::cleanup() {
  std::vector<fs::path> doomed;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> live;
    for (int64_t id : records_->allIds()) live.insert(std::to_string(id));
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(snapshotsDir_, ec)) {
      std::string name = entry.path().filename().string();
      if (isNumericName(name) && live.count(name)) continue;
      // Move orphans out of the id namespace under the lock, delete them after it.
      fs::path target = entry.path();
      if (name.rfind("rm-", 0) != 0) {
        target = snapshotsDir_ / ("rm-" + name);
        if (rename(entry.path().c_str(), target.c_str()) != 0) {
          log::warn("cannot move orphan snapshot directory aside",
                    {{"path", entry.path().string()}, {"error", std::strerror(errno)}});
          continue;
        }
      }
      doomed.push_back(target);
    }
    if (ec) fail(ErrorClass::Internal, "read " + snapshotsDir_.string() + ": " + ec.message());
  }
  size_t removed = 0;
  for (const auto& p : doomed) {
    std::error_code ec;
    fs::remove_all(p, ec);
    if (ec) {
      log::warn("cannot remove orphan snapshot directory",
                {{"path", p.string()}, {"error", ec.message()}});
      continue;
    }
    ++removed;
    crashPoint("cleanup.partial");
  }
  return removed;
}

std::optional<SnapshotInfo> SnapshotStore::findCommitted(const std::string& labelKey,
                                                         const std::string& value,
                                                         const std::string& parent) {
  std::lock_guard lock(mu_);
  auto names = records_->committedWithLabel(labelKey, value, parent);
  if (names.empty()) return std::nullopt;
  return records_->get(names.front()).info;
}

std::vector<fs::path> SnapshotStore::chainFsDirs(const std::string& name) {
  std::vector<fs::path> dirs;
  if (name.empty()) return dirs;
  std::lock_guard lock(mu_);
  SnapshotRecord rec = records_->get(name);
  dirs.push_back(fsDir(rec.id));
  for (int64_t id : records_->ancestorIds(rec)) dirs.push_back(fsDir(id));
  return dirs;
}

std::optional<SnapshotStore::ActiveFs> SnapshotStore::activeByFsDir(const fs::path& dir) {
  const fs::path d = dir.lexically_normal();
  if (d.filename() != "fs" || d.parent_path().parent_path() != snapshotsDir_.lexically_normal())
    return std::nullopt;
  const std::string idText = d.parent_path().filename().string();
  if (idText.empty() || idText.size() > 18 ||
      !std::all_of(idText.begin(), idText.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const int64_t id = std::stoll(idText);
  std::lock_guard lock(mu_);
  std::optional<SnapshotRecord> found = records_->findById(id);
  if (!found || found->info.kind != Kind::Active) return std::nullopt;
  ActiveFs out{found->info, fsDir(id), {}};
  for (int64_t pid : records_->ancestorIds(*found)) out.lowers.push_back(fsDir(pid));
  return out;
}

SnapshotInfo SnapshotStore::commitStaged(const std::string& name, const std::string& parent,
                                         const Labels& labels, const fs::path& staged) {
  validateKey(name, "snapshot name");
  validateLabels(labels);
  Usage u = diskUsage(staged / "fs");
  std::lock_guard lock(mu_);
  if (records_->find(name))
    fail(ErrorClass::AlreadyExists, "snapshot \"" + name + "\" already exists");
  int64_t parentId = 0;
  if (!parent.empty()) {
    SnapshotRecord p = records_->get(parent);
    if (p.info.kind != Kind::Committed) {
      fail(ErrorClass::InvalidArgument, "parent snapshot \"" + parent + "\" is not committed");
    }
    parentId = p.id;
  }
  Transaction tx(*db_);
  TimeNs now = nowNs();
  int64_t id = records_->insert(name, parentId, Kind::Committed, {}, now);
  records_->commit(id, name, parentId, labels, u, now);
  fs::path final = snapshotDir(id);
  renameIntoPlace(staged, final);
  DirGuard guard(final);
  fsyncDir(snapshotsDir_);
  crashPoint("import.renamed");
  tx.commit();
  guard.release();
  return records_->get(name).info;
}

bool matchSnapshot(const Filter& filter, const SnapshotInfo& info) {
  return filter.match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
    if (path.empty()) return std::nullopt;
    const std::string& f = path[0];
    // name and parent are always present, even empty: containerd looks up an imported base
    // layer with `parent==""` (metadata createSnapshot), exactly as its adaptor allows.
    if (f == "name") return info.name;
    if (f == "parent") return info.parent;
    if (f == "kind") return std::string(kindName(info.kind));
    if (f == "labels") {
      return lookupLabel(path, 1, [&](const std::string& k) -> std::optional<std::string> {
        auto it = info.labels.find(k);
        if (it == info.labels.end()) return std::nullopt;
        return it->second;
      });
    }
    return std::nullopt;
  });
}

}  // namespace snapimport::store
