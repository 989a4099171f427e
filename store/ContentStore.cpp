#include "ContentStore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <system_error>

#include "ContentFile.h"
#include "Filter.h"
#include "Ingest.h"
#include "Labels.h"
#include "NoSpace.h"
#include "StoreError.h"
#include "common/Log.h"

namespace snapimport::store {
namespace fs = std::filesystem;

namespace {

int64_t toNanos(ContentTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

ContentTime fromNanos(int64_t ns) {
  return ContentTime(
      std::chrono::duration_cast<ContentClock::duration>(std::chrono::nanoseconds(ns)));
}

int64_t mtimeNanos(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

std::string quoteRef(const std::string& ref) { return "\"" + ref + "\""; }

bool isHexName(std::string_view name) { return Digest::isValid("sha256:" + std::string(name)); }

std::vector<std::string> listDirectory(const fs::path& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    fail(ErrorClass::Internal, "list directory " + dir.string() + " failed: " + errnoText(errno));
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(d);
  return names;
}

// The hash-state of a resumed ingest is not kept anywhere; it is rebuilt from the bytes on disk.
void rehash(int fd, int64_t size, IngestHasher& hasher, const std::string& what) {
  std::string buf(1 << 20, '\0');
  int64_t off = 0;
  while (off < size) {
    size_t n = preadFull(fd, buf.data(), buf.size(), off, what);
    if (n == 0) break;
    hasher.update(buf.data(), n);
    off += static_cast<int64_t>(n);
  }
}

}  // namespace

ContentStore::ContentStore(const fs::path& daemonRoot)
    : contentRoot_(daemonRoot / "content"),
      blobsDir_(contentRoot_ / "blobs" / "sha256"),
      ingestRoot_(contentRoot_ / "ingest"),
      db_((makePrivateDirs(daemonRoot), daemonRoot / "meta.db")) {
  makePrivateDirs(blobsDir_);
  makePrivateDirs(ingestRoot_);
  createSchema();
  reconcile();
}

ContentStore::~ContentStore() = default;

void ContentStore::createSchema() {
  std::lock_guard lock(dbMutex_);
  Transaction tx(db_);
  db_.exec(R"sql(
    CREATE TABLE IF NOT EXISTS content_blobs (
      digest     TEXT PRIMARY KEY,
      size       INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS content_labels (
      digest TEXT NOT NULL REFERENCES content_blobs(digest) ON DELETE CASCADE,
      key    TEXT NOT NULL,
      value  TEXT NOT NULL,
      PRIMARY KEY (digest, key)
    );
    CREATE TABLE IF NOT EXISTS content_ingests (
      id         TEXT PRIMARY KEY,
      ref        TEXT NOT NULL,
      total      INTEGER NOT NULL,
      expected   TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
  )sql");
  tx.commit();
}

// After a crash: an ingest record without its data, ingest data without a record, or a blob
// record whose file is gone. None of these is usable, so each is removed. The opposite case, a
// blob file without a record (crash between rename and record), is a valid blob: info() falls
// back to the file's times.
void ContentStore::reconcile() {
  std::lock_guard lock(dbMutex_);
  std::set<std::string> ingestIds;
  std::vector<std::string> staleIngests;
  {
    Statement q = db_.prepare("SELECT id FROM content_ingests");
    while (q.step()) {
      std::string id = q.text(0);
      struct stat st {};
      if (isHexName(id) && ::stat((ingestRoot_ / id / "data").c_str(), &st) == 0 &&
          S_ISREG(st.st_mode)) {
        ingestIds.insert(id);
      } else {
        staleIngests.push_back(id);
      }
    }
  }
  std::vector<std::string> staleBlobs;
  {
    Statement q = db_.prepare("SELECT digest FROM content_blobs");
    while (q.step()) {
      std::string digest = q.text(0);
      struct stat st {};
      if (!Digest::isValid(digest) || ::stat(blobPath(Digest::parse(digest)).c_str(), &st) != 0) {
        staleBlobs.push_back(digest);
      }
    }
  }
  if (!staleIngests.empty() || !staleBlobs.empty()) {
    Transaction tx(db_);
    Statement delIngest = db_.prepare("DELETE FROM content_ingests WHERE id = ?");
    for (const auto& id : staleIngests) {
      delIngest.bind(1, id).run();
      delIngest.reset();
    }
    Statement delBlob = db_.prepare("DELETE FROM content_blobs WHERE digest = ?");
    for (const auto& d : staleBlobs) {
      delBlob.bind(1, d).run();
      delBlob.reset();
    }
    tx.commit();
  }
  size_t removedDirs = 0;
  for (const auto& name : listDirectory(ingestRoot_)) {
    if (ingestIds.count(name)) continue;
    std::error_code ec;
    fs::remove_all(ingestRoot_ / name, ec);
    if (ec) {
      log::warn("cannot remove orphan ingest",
                {{"path", (ingestRoot_ / name).string()}, {"error", ec.message()}});
    } else {
      ++removedDirs;
    }
  }
  if (!staleIngests.empty() || !staleBlobs.empty() || removedDirs) {
    log::info("content store recovered from an interrupted run",
              {{"ingest_records_removed", std::to_string(staleIngests.size())},
               {"blob_records_removed", std::to_string(staleBlobs.size())},
               {"ingest_dirs_removed", std::to_string(removedDirs)}});
  }
}

fs::path ContentStore::blobPath(const Digest& digest) const {
  return blobsDir_ / std::string(digest.hex());
}

fs::path ContentStore::ingestDir(const std::string& ref) const {
  return ingestRoot_ / std::string(Digest::of(ref).hex());
}

// ---------------------------------------------------------------------------------------------
// Blobs

bool ContentStore::contains(const Digest& digest) const {
  struct stat st {};
  return ::stat(blobPath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Labels ContentStore::loadLabels(const std::string& digest) {
  Labels labels;
  Statement q = db_.prepare("SELECT key, value FROM content_labels WHERE digest = ?");
  q.bind(1, digest);
  while (q.step()) labels.emplace(q.text(0), q.text(1));
  return labels;
}

BlobInfo ContentStore::infoLocked(const Digest& digest, int64_t size, int64_t mtimeNs) {
  BlobInfo info{digest, size, fromNanos(mtimeNs), fromNanos(mtimeNs), {}};
  Statement q = db_.prepare("SELECT created_at, updated_at FROM content_blobs WHERE digest = ?");
  q.bind(1, digest.str());
  if (q.step()) {
    info.createdAt = fromNanos(q.int64(0));
    info.updatedAt = fromNanos(q.int64(1));
    info.labels = loadLabels(digest.str());
  }
  return info;
}

BlobInfo ContentStore::info(const Digest& digest) {
  struct stat st {};
  if (::stat(blobPath(digest).c_str(), &st) != 0) {
    if (errno == ENOENT) fail(ErrorClass::NotFound, "content " + digest.str() + ": not found");
    fail(ErrorClass::Internal,
         "stat blob " + blobPath(digest).string() + " failed: " + errnoText(errno));
  }
  std::lock_guard lock(dbMutex_);
  return infoLocked(digest, st.st_size, mtimeNanos(st));
}

BlobInfo ContentStore::update(const Digest& digest, const Labels& labels,
                              const std::vector<std::string>& fieldpaths) {
  bool replaceAll = fieldpaths.empty();
  Labels changes;  // for per-key updates: key -> new value, "" removes
  for (const auto& path : fieldpaths) {
    if (path == "labels") {
      replaceAll = true;
    } else if (path.rfind("labels.", 0) == 0 && path.size() > 7) {
      std::string key = path.substr(7);
      auto it = labels.find(key);
      changes[key] = it == labels.end() ? "" : it->second;
    } else {
      fail(ErrorClass::InvalidArgument,
           "cannot update field \"" + path + "\" of content " + digest.str() +
               ": only \"labels\" and \"labels.<key>\" can be updated");
    }
  }
  validateLabels(replaceAll ? labels : changes);

  struct stat st {};
  if (::stat(blobPath(digest).c_str(), &st) != 0) {
    if (errno == ENOENT)
      fail(ErrorClass::NotFound, "update content " + digest.str() + ": not found");
    fail(ErrorClass::Internal,
         "stat blob " + blobPath(digest).string() + " failed: " + errnoText(errno));
  }
  int64_t now = toNanos(ContentClock::now());
  std::lock_guard lock(dbMutex_);
  Transaction tx(db_);
  // A blob committed just before a crash may lack its record; its file time stands in.
  db_.prepare(
         "INSERT OR IGNORE INTO content_blobs (digest, size, created_at, updated_at) VALUES (?, ?, "
         "?, ?)")
      .bind(1, digest.str())
      .bind(2, static_cast<int64_t>(st.st_size))
      .bind(3, mtimeNanos(st))
      .bind(4, mtimeNanos(st))
      .run();
  if (replaceAll) {
    db_.prepare("DELETE FROM content_labels WHERE digest = ?").bind(1, digest.str()).run();
  }
  Statement put = db_.prepare(
      "INSERT INTO content_labels (digest, key, value) VALUES (?, ?, ?) "
      "ON CONFLICT (digest, key) DO UPDATE SET value = excluded.value");
  Statement del = db_.prepare("DELETE FROM content_labels WHERE digest = ? AND key = ?");
  // Labels with replaceAll come first, then per-key changes on top (containerd lets both appear).
  for (const Labels* set : {replaceAll ? &labels : nullptr, static_cast<const Labels*>(&changes)}) {
    if (!set) continue;
    for (const auto& [k, v] : *set) {
      // containerd treats an empty value as "no such label" everywhere; never store one.
      if (v.empty()) {
        del.bind(1, digest.str()).bind(2, k).run();
        del.reset();
      } else {
        put.bind(1, digest.str()).bind(2, k).bind(3, v).run();
        put.reset();
      }
    }
  }
  db_.prepare("UPDATE content_blobs SET updated_at = ? WHERE digest = ?")
      .bind(1, now)
      .bind(2, digest.str())
      .run();
  tx.commit();
  return infoLocked(digest, st.st_size, mtimeNanos(st));
}

std::vector<BlobInfo> ContentStore::list(const std::vector<std::string>& filters) {
  Filter filter = Filter::parseAll(filters);
  std::vector<std::string> names = listDirectory(blobsDir_);
  std::sort(names.begin(), names.end());
  std::vector<BlobInfo> out;
  std::lock_guard lock(dbMutex_);
  std::map<std::string, std::pair<int64_t, int64_t>> times;
  {
    Statement q = db_.prepare("SELECT digest, created_at, updated_at FROM content_blobs");
    while (q.step()) times[q.text(0)] = {q.int64(1), q.int64(2)};
  }
  std::map<std::string, Labels> labels;
  {
    Statement q = db_.prepare("SELECT digest, key, value FROM content_labels");
    while (q.step()) labels[q.text(0)].emplace(q.text(1), q.text(2));
  }
  for (const auto& name : names) {
    if (!isHexName(name)) continue;  // not ours; never report a name that is not a digest
    struct stat st {};
    if (::stat((blobsDir_ / name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    Digest digest = Digest::fromHex(name);
    BlobInfo info{digest, st.st_size, fromNanos(mtimeNanos(st)), fromNanos(mtimeNanos(st)), {}};
    if (auto t = times.find(digest.str()); t != times.end()) {
      info.createdAt = fromNanos(t->second.first);
      info.updatedAt = fromNanos(t->second.second);
    }
    if (auto l = labels.find(digest.str()); l != labels.end()) info.labels = l->second;
    bool match =
        filter.match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
          if (path.empty()) return std::nullopt;
          if (path[0] == "digest" && path.size() == 1) return info.digest.str();
          if (path[0] == "size" && path.size() == 1) return std::to_string(info.size);
          if (path[0] == "labels") {
            return lookupLabel(path, 1, [&](const std::string& k) -> std::optional<std::string> {
              auto it = info.labels.find(k);
              if (it == info.labels.end()) return std::nullopt;
              return it->second;
            });
          }
          return std::nullopt;
        });
    if (match) out.push_back(std::move(info));
  }
  return out;
}

void ContentStore::remove(const Digest& digest) {
  fs::path path = blobPath(digest);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT)
      fail(ErrorClass::NotFound, "delete content " + digest.str() + ": not found");
    fail(ErrorClass::Internal, "delete blob " + path.string() + " failed: " + errnoText(errno));
  }
  // A Read that starts after Delete has answered must find nothing; Reads already under way keep
  // their file (ContentReader).
  forgetOpenBlob(digest.str());
  std::lock_guard lock(dbMutex_);
  try {
    Transaction tx(db_);
    db_.prepare("DELETE FROM content_blobs WHERE digest = ?").bind(1, digest.str()).run();
    tx.commit();
  } catch (const StoreError& e) {
    // The blob is gone, which is what Delete promises, and on a full disk it just gave its
    // space back. Its record is harmless without the file (the file is the truth; start-up drops
    // such records), so a record that cannot be deleted for lack of space fails nothing.
    if (e.errorClass() != ErrorClass::ResourceExhausted) throw;
    log::warn("deleted blob keeps its record until the next start",
              {{"digest", digest.str()}, {"error", e.what()}});
  }
}

ContentReader ContentStore::openReader(const Digest& digest) const {
  const auto now = std::chrono::steady_clock::now();
  uint64_t removals = 0;
  {
    std::lock_guard lock(openBlobsMutex_);
    auto it = openBlobs_.find(digest.str());
    if (it != openBlobs_.end() && now - it->second.lastUsed < kOpenBlobIdle) {
      it->second.lastUsed = now;
      return ContentReader(digest, it->second.fd, it->second.size);
    }
    removals = blobRemovals_;
  }
  fs::path path = blobPath(digest);
  auto fd = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!*fd) {
    if (errno == ENOENT) fail(ErrorClass::NotFound, "read content " + digest.str() + ": not found");
    fail(ErrorClass::Internal, "open blob " + path.string() + " failed: " + errnoText(errno));
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) {
    fail(ErrorClass::Internal, "stat blob " + path.string() + " failed: " + errnoText(errno));
  }
  ::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  std::lock_guard lock(openBlobsMutex_);
  // A blob removed since the open may be this one: then it is read once, not kept.
  if (blobRemovals_ != removals) return ContentReader(digest, std::move(fd), st.st_size);
  // Idle files go first; if all are busy, the least recently read one.
  for (auto it = openBlobs_.begin(); it != openBlobs_.end();) {
    it = now - it->second.lastUsed >= kOpenBlobIdle ? openBlobs_.erase(it) : std::next(it);
  }
  if (openBlobs_.size() >= kOpenBlobs) {
    openBlobs_.erase(std::min_element(
        openBlobs_.begin(), openBlobs_.end(),
        [](const auto& a, const auto& b) { return a.second.lastUsed < b.second.lastUsed; }));
  }
  openBlobs_[digest.str()] = OpenBlob{fd, st.st_size, now};
  return ContentReader(digest, std::move(fd), st.st_size);
}

void ContentStore::forgetOpenBlob(const std::string& digest) const {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(openBlobsMutex_);
  ++blobRemovals_;
  for (auto it = openBlobs_.begin(); it != openBlobs_.end();) {
    bool drop = it->first == digest || now - it->second.lastUsed >= kOpenBlobIdle;
    it = drop ? openBlobs_.erase(it) : std::next(it);
  }
}

// ---------------------------------------------------------------------------------------------
// Ingests

void ContentStore::lockRef(const std::string& ref) {
  std::unique_lock lock(refsMutex_);
  if (!refsChanged_.wait_for(lock, lockTimeout_, [&] { return lockedRefs_.count(ref) == 0; })) {
    fail(ErrorClass::Unavailable,
         "ingest ref " + quoteRef(ref) + " is locked: another writer holds it");
  }
  lockedRefs_.insert(ref);
}

void ContentStore::unlockRef(const std::string& ref) {
  {
    std::lock_guard lock(refsMutex_);
    lockedRefs_.erase(ref);
  }
  refsChanged_.notify_all();
}

std::optional<ContentStore::IngestRow> ContentStore::loadIngestRow(const std::string& id) {
  std::lock_guard lock(dbMutex_);
  Statement q = db_.prepare(
      "SELECT ref, total, expected, started_at, updated_at FROM content_ingests WHERE id = ?");
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return IngestRow{q.text(0), q.int64(1), q.text(2), q.int64(3), q.int64(4)};
}

void ContentStore::saveIngestRow(const std::string& id, const IngestRow& row) {
  std::lock_guard lock(dbMutex_);
  Transaction tx(db_);
  db_.prepare(
         "INSERT INTO content_ingests (id, ref, total, expected, started_at, updated_at) "
         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET ref = excluded.ref, "
         "total = excluded.total, expected = excluded.expected, started_at = excluded.started_at, "
         "updated_at = excluded.updated_at")
      .bind(1, id)
      .bind(2, row.ref)
      .bind(3, row.total)
      .bind(4, row.expected)
      .bind(5, row.startedAt)
      .bind(6, row.updatedAt)
      .run();
  tx.commit();
}

// Caller holds the ref's lock.
void ContentStore::deleteIngest(const std::string& ref) {
  fs::path dir = ingestDir(ref);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) {
    fail(ErrorClass::Internal,
         "remove ingest " + quoteRef(ref) + " at " + dir.string() + " failed: " + ec.message());
  }
  forgetIngest(dir.filename().string());
}

void ContentStore::recordBlob(const Digest& digest, int64_t size, const Labels& labels) {
  int64_t now = toNanos(ContentClock::now());
  std::lock_guard lock(dbMutex_);
  Transaction tx(db_);
  db_.prepare("DELETE FROM content_labels WHERE digest = ?").bind(1, digest.str()).run();
  db_.prepare(
         "INSERT INTO content_blobs (digest, size, created_at, updated_at) VALUES (?, ?, ?, ?) "
         "ON CONFLICT (digest) DO UPDATE SET size = excluded.size, "
         "created_at = excluded.created_at, updated_at = excluded.updated_at")
      .bind(1, digest.str())
      .bind(2, size)
      .bind(3, now)
      .bind(4, now)
      .run();
  Statement put = db_.prepare("INSERT INTO content_labels (digest, key, value) VALUES (?, ?, ?)");
  for (const auto& [k, v] : labels) {
    if (v.empty()) continue;
    put.bind(1, digest.str()).bind(2, k).bind(3, v).run();
    put.reset();
  }
  tx.commit();
}

void ContentStore::forgetIngest(const std::string& id) {
  std::lock_guard lock(dbMutex_);
  Transaction tx(db_);
  db_.prepare("DELETE FROM content_ingests WHERE id = ?").bind(1, id).run();
  tx.commit();
}

std::unique_ptr<Ingest> ContentStore::openIngest(const std::string& ref, int64_t total,
                                                 const std::optional<Digest>& expected) {
  validateKey(ref, "ingest ref");
  if (total < 0) {
    fail(ErrorClass::InvalidArgument,
         "open ingest " + quoteRef(ref) + ": total " + std::to_string(total) + " is negative");
  }
  lockRef(ref);
  try {
    if (expected && contains(*expected)) {
      deleteIngest(ref);
      fail(ErrorClass::AlreadyExists, "content " + expected->str() + ": already exists; ingest " +
                                          quoteRef(ref) + " is not needed");
    }
    fs::path dir = ingestDir(ref);
    std::string id = dir.filename().string();
    fs::path data = dir / "data";
    std::optional<IngestRow> row = loadIngestRow(id);
    if (row && row->ref != ref) {
      // Two refs with one sha256: not going to happen, but never hand one ref another's bytes.
      fail(ErrorClass::Internal, "ingest " + dir.string() + " belongs to ref " +
                                     quoteRef(row->ref) + ", not " + quoteRef(ref));
    }
    if (row) {
      UniqueFd fd(::open(data.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
      struct stat st {};
      bool usable = fd && ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode);
      if (usable && total > 0 && row->total > 0 && total != row->total) {
        log::info("restarting ingest whose expected size changed",
                  {{"ref", ref},
                   {"recorded_total", std::to_string(row->total)},
                   {"total", std::to_string(total)}});
        usable = false;
      }
      if (usable) {
        // A crash during a commit may have left the data read-only already.
        ::fchmod(fd.get(), 0600);
        std::optional<Digest> exp = expected;
        if (!exp && Digest::isValid(row->expected)) exp = Digest::parse(row->expected);
        int64_t updated = std::max(row->updatedAt, mtimeNanos(st));
        std::unique_ptr<Ingest> ingest(new Ingest(*this, ref, id, std::move(fd), st.st_size,
                                                  row->total > 0 ? row->total : total, exp,
                                                  fromNanos(row->startedAt), fromNanos(updated)));
        ingest->hasher_ = std::make_unique<IngestHasher>();
        rehash(ingest->fd_.get(), st.st_size, *ingest->hasher_, "resume ingest " + quoteRef(ref));
        ingest->writebackStart_ = st.st_size;
        return ingest;
      }
    }
    // A new ingest (or one not worth resuming): fresh directory, empty data, new record.
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec)
      fail(ErrorClass::Internal,
           "clear ingest directory " + dir.string() + " failed: " + ec.message());
    if (::mkdir(dir.c_str(), 0700) != 0) {
      failSystem(
          kAreaContent,
          "create ingest directory " + dir.string() + " for ref " + quoteRef(ref) + " failed",
          errno);
    }
    UniqueFd fd(::open(data.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) failSystem(kAreaContent, "create ingest file " + data.string() + " failed", errno);
    ContentTime now = ContentClock::now();
    IngestRow fresh{ref, total, expected ? expected->str() : "", toNanos(now), toNanos(now)};
    try {
      saveIngestRow(id, fresh);
    } catch (...) {
      // Without its record the directory is debris (start-up would remove it); on a full disk
      // its blocks are better given back now.
      fd.reset();
      fs::remove_all(dir, ec);
      throw;
    }
    std::unique_ptr<Ingest> ingest(
        new Ingest(*this, ref, id, std::move(fd), 0, total, expected, now, now));
    ingest->hasher_ = std::make_unique<IngestHasher>();
    return ingest;
  } catch (...) {
    unlockRef(ref);
    throw;
  }
}

IngestStatus ContentStore::status(const std::string& ref) {
  validateKey(ref, "ingest ref");
  fs::path dir = ingestDir(ref);
  std::optional<IngestRow> row = loadIngestRow(dir.filename().string());
  struct stat st {};
  if (!row || row->ref != ref || ::stat((dir / "data").c_str(), &st) != 0) {
    fail(ErrorClass::NotFound, "status of ingest ref " + quoteRef(ref) + ": not found");
  }
  IngestStatus s{ref, st.st_size, row->total, std::nullopt, fromNanos(row->startedAt),
                 // A writer keeps its times in memory; the file's mtime is the better clue.
                 fromNanos(std::max(row->updatedAt, mtimeNanos(st)))};
  if (Digest::isValid(row->expected)) s.expected = Digest::parse(row->expected);
  return s;
}

std::vector<IngestStatus> ContentStore::listStatuses(const std::vector<std::string>& filters) {
  Filter filter = Filter::parseAll(filters);
  std::vector<std::pair<std::string, IngestRow>> rows;
  {
    std::lock_guard lock(dbMutex_);
    Statement q = db_.prepare(
        "SELECT id, ref, total, expected, started_at, updated_at FROM content_ingests ORDER BY "
        "ref");
    while (q.step())
      rows.push_back(
          {q.text(0), IngestRow{q.text(1), q.int64(2), q.text(3), q.int64(4), q.int64(5)}});
  }
  std::vector<IngestStatus> out;
  for (const auto& [id, row] : rows) {
    struct stat st {};
    // Committed or aborted since the query: it is gone, as containerd's store also reports.
    if (!isHexName(id) || ::stat((ingestRoot_ / id / "data").c_str(), &st) != 0) continue;
    IngestStatus s{row.ref,
                   st.st_size,
                   row.total,
                   std::nullopt,
                   fromNanos(row.startedAt),
                   fromNanos(std::max(row.updatedAt, mtimeNanos(st)))};
    if (Digest::isValid(row.expected)) s.expected = Digest::parse(row.expected);
    bool match =
        filter.match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
          if (path.size() != 1) return std::nullopt;
          if (path[0] == "ref") return s.ref;
          if (path[0] == "expected" && s.expected) return s.expected->str();
          return std::nullopt;
        });
    if (match) out.push_back(std::move(s));
  }
  return out;
}

void ContentStore::abort(const std::string& ref) {
  validateKey(ref, "ingest ref");
  lockRef(ref);
  try {
    fs::path dir = ingestDir(ref);
    std::optional<IngestRow> row = loadIngestRow(dir.filename().string());
    struct stat st {};
    bool hasDir = ::lstat(dir.c_str(), &st) == 0;
    if ((!row || row->ref != ref) && !hasDir) {
      fail(ErrorClass::NotFound, "abort ingest ref " + quoteRef(ref) + ": not found");
    }
    deleteIngest(ref);
  } catch (...) {
    unlockRef(ref);
    throw;
  }
  unlockRef(ref);
}

}  // namespace snapimport::store
