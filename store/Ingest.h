#pragma once
// One writer's hold on an ingest (ContentStore::openIngest). It owns the ref's writer lock and the
// open data file, and it is used by one thread at a time, the stream that opened it. Bytes are
// appended; the digest of everything written is kept up to date on the side (IngestHasher).
// close() keeps the bytes for a later resume; commit() verifies them and turns them into a blob.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ContentFile.h"
#include "ContentTypes.h"
#include "Digest.h"
#include "IngestHasher.h"

namespace snapimport::store {

class ContentStore;

class Ingest {
 public:
  ~Ingest();
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  const std::string& ref() const { return ref_; }
  int64_t offset() const { return offset_; }
  int64_t total() const { return total_; }
  const std::optional<Digest>& expected() const { return expected_; }
  ContentTime startedAt() const { return startedAt_; }
  ContentTime updatedAt() const { return updatedAt_; }
  IngestStatus status() const;
  bool isOpen() const { return fd_.operator bool(); }

  void setTotal(int64_t total) { total_ = total; }
  void setExpected(const Digest& expected) { expected_ = expected; }
  // The digest of every byte written so far.
  Digest digest();
  // Appends `data` (taken over, so it can be hashed later without a copy).
  void write(std::string data);
  // Drops everything written so far.
  void truncate();
  // Verifies the bytes against `size` (if > 0) and `expected` (if set) and makes them the blob
  // sha256:<digest> with `labels`. A mismatch gives FailedPrecondition and keeps the bytes for a
  // retry; a blob that already exists gives AlreadyExists and drops them. Either way the ingest
  // is closed afterwards and its lock released, before the caller answers its client.
  Digest commit(int64_t size, const std::optional<Digest>& expected, const Labels& labels);
  // Keeps the bytes for a later resume and releases the lock. Idempotent.
  void close();
  // Removes the ingest altogether and releases the lock.
  void discard();

 private:
  friend class ContentStore;
  Ingest(ContentStore& store, std::string ref, std::string id, UniqueFd fd, int64_t offset,
         int64_t total, std::optional<Digest> expected, ContentTime startedAt,
         ContentTime updatedAt);

  void requireOpen(const char* action) const;
  // Persists what is only in memory (times, total, expected); failures are logged, not thrown.
  void persist() noexcept;
  void release();
  std::string describe() const;

  ContentStore& store_;
  std::string ref_;
  std::string id_;
  UniqueFd fd_;
  int64_t offset_;
  int64_t total_;
  std::optional<Digest> expected_;
  ContentTime startedAt_;
  ContentTime updatedAt_;
  int64_t writebackStart_ = 0;   // bytes before this offset have been handed to writeback
  int64_t spaceCheckedAt_ = -1;  // offset of the last free-space check (see write)
  std::unique_ptr<IngestHasher> hasher_;
  bool locked_ = true;
};

}  // namespace snapimport::store
