#pragma once
// containerd's content store on local disk:
//   <root>/content/blobs/sha256/<hex>   committed blobs, read-only, named by their digest
//   <root>/content/ingest/<id>/data     blobs being written; <id> is sha256(ref), so a client's
//                                       ref (which holds '/' and may hold "../") never becomes a
//                                       path
// plus three tables in <root>/meta.db (its own connection; the snapshot store shares the file):
//   content_blobs    created/updated times of blobs
//   content_labels   labels of blobs
//   content_ingests  ref, expected size and digest and times of every ingest, so ingests survive a
//                    restart and resume from the bytes already on disk.
// The blob files are the truth about which blobs exist and their size; the tables add what a file
// cannot hold. A blob only ever appears through Ingest::commit: verify size and digest, fsync,
// rename. Start-up removes what a crash left half done.
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ContentReader.h"
#include "ContentTypes.h"
#include "Database.h"
#include "Digest.h"

namespace snapimport::store {

class Ingest;

class ContentStore {
 public:
  explicit ContentStore(const std::filesystem::path& daemonRoot);
  ~ContentStore();
  ContentStore(const ContentStore&) = delete;
  ContentStore& operator=(const ContentStore&) = delete;

  // --- committed blobs ---
  // NotFound when the blob is not there.
  BlobInfo info(const Digest& digest);
  bool contains(const Digest& digest) const;
  // Updates labels as containerd does: no fieldpaths or "labels" replace them all, "labels.<k>"
  // sets (or, with an empty value, removes) one label. Other paths give InvalidArgument.
  BlobInfo update(const Digest& digest, const Labels& labels,
                  const std::vector<std::string>& fieldpaths);
  // Blobs matching containerd filters on digest, size and labels.<k> (ORed strings), by digest.
  std::vector<BlobInfo> list(const std::vector<std::string>& filters);
  void remove(const Digest& digest);
  // NotFound when the blob is not there. A blob read moments ago is not opened again: its open
  // file is kept for kOpenBlobIdle after its last read (at most kOpenBlobs of them), because
  // containerd reads a layer through one Read RPC per 32 KiB and open+fstat per call is a good
  // part of each call's cost. remove() drops the blob's kept file first.
  ContentReader openReader(const Digest& digest) const;
  static constexpr std::chrono::milliseconds kOpenBlobIdle{2000};
  static constexpr size_t kOpenBlobs = 16;
  std::filesystem::path blobPath(const Digest& digest) const;

  // --- ingests ---
  // Starts or resumes the ingest for `ref` and holds its writer lock until the Ingest is closed
  // or destroyed. A ref held by another writer gives Unavailable after lockTimeout(); an
  // `expected` digest that is already committed gives AlreadyExists (and drops any ingest data).
  // A resume whose `total` contradicts the recorded one starts over, as containerd's store does.
  // The store must outlive every Ingest it hands out.
  std::unique_ptr<Ingest> openIngest(const std::string& ref, int64_t total,
                                     const std::optional<Digest>& expected);
  IngestStatus status(const std::string& ref);
  // Ingests matching containerd filters on ref (and expected).
  std::vector<IngestStatus> listStatuses(const std::vector<std::string>& filters);
  // Removes the ingest and its data; NotFound if there is none, Unavailable if a writer holds it.
  void abort(const std::string& ref);

  // How long openIngest and abort wait for another writer of the same ref to let go. A client
  // that closes a stream and at once reopens the ref races the server noticing the close.
  void setLockTimeout(std::chrono::milliseconds timeout) { lockTimeout_ = timeout; }
  std::chrono::milliseconds lockTimeout() const { return lockTimeout_; }
  // Ingest writes stop (ResourceExhausted) when they would leave less than this free on the
  // root's filesystem: layer data must not take the last bytes meta.db needs to record a commit
  // or a removal. The importer keeps the same reserve (ImporterOptions::stagingReserveBytes).
  void setReserveBytes(uint64_t bytes) { reserveBytes_ = bytes; }
  uint64_t reserveBytes() const { return reserveBytes_; }

  const std::filesystem::path& contentRoot() const { return contentRoot_; }
  std::filesystem::path ingestDir(const std::string& ref) const;

 private:
  friend class Ingest;

  struct IngestRow {
    std::string ref;
    int64_t total = 0;
    std::string expected;
    int64_t startedAt = 0;
    int64_t updatedAt = 0;
  };

  void createSchema();
  void reconcile();
  // Waits up to lockTimeout_ for `ref` to be free and takes it; throws Unavailable otherwise.
  void lockRef(const std::string& ref);
  void unlockRef(const std::string& ref);
  std::optional<IngestRow> loadIngestRow(const std::string& id);
  void saveIngestRow(const std::string& id, const IngestRow& row);
  void deleteIngest(const std::string& ref);
  // A blob's record and labels. Written just before its file is renamed into place: a crash in
  // between leaves a record without a file, which start-up drops.
  void recordBlob(const Digest& digest, int64_t size, const Labels& labels);
  void forgetIngest(const std::string& id);
  Labels loadLabels(const std::string& digest);
  BlobInfo infoLocked(const Digest& digest, int64_t size, int64_t mtimeNs);

  std::filesystem::path contentRoot_;
  std::filesystem::path blobsDir_;
  std::filesystem::path ingestRoot_;

  mutable std::mutex dbMutex_;
  Database db_;

  struct OpenBlob {
    std::shared_ptr<const UniqueFd> fd;
    int64_t size = 0;
    std::chrono::steady_clock::time_point lastUsed;
  };
  // After `digest` was unlinked: drops its kept file (if any) and every one idle for
  // kOpenBlobIdle, and makes openReader calls that opened the file before the unlink not keep it.
  void forgetOpenBlob(const std::string& digest) const;

  mutable std::mutex openBlobsMutex_;
  mutable std::map<std::string, OpenBlob> openBlobs_;  // by digest string
  mutable uint64_t blobRemovals_ = 0;                  // forgetOpenBlob calls so far

  std::mutex refsMutex_;
  std::condition_variable refsChanged_;
  std::set<std::string> lockedRefs_;
  std::chrono::milliseconds lockTimeout_{1000};
  uint64_t reserveBytes_ = 8 << 20;
};

}  // namespace snapimport::store
