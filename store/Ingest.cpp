#include "Ingest.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "ContentStore.h"
#include "CrashPoint.h"
#include "Labels.h"
#include "NoSpace.h"
#include "StoreError.h"
#include "common/Log.h"

namespace snapimport::store {
namespace {

// Dirty pages are handed to writeback every this many bytes, so the fsync at commit has little
// left to do instead of flushing a whole layer at once.
constexpr int64_t kWritebackChunk = 16 << 20;

int64_t toNanos(ContentTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

Ingest::Ingest(ContentStore& store, std::string ref, std::string id, UniqueFd fd, int64_t offset,
               int64_t total, std::optional<Digest> expected, ContentTime startedAt,
               ContentTime updatedAt)
    : store_(store),
      ref_(std::move(ref)),
      id_(std::move(id)),
      fd_(std::move(fd)),
      offset_(offset),
      total_(total),
      expected_(std::move(expected)),
      startedAt_(startedAt),
      updatedAt_(updatedAt) {}

Ingest::~Ingest() { close(); }

std::string Ingest::describe() const { return "ingest \"" + ref_ + "\""; }

void Ingest::requireOpen(const char* action) const {
  if (!fd_)
    fail(ErrorClass::FailedPrecondition,
         std::string(action) + " " + describe() + ": the writer is closed");
}

IngestStatus Ingest::status() const {
  return IngestStatus{ref_, offset_, total_, expected_, startedAt_, updatedAt_};
}

Digest Ingest::digest() {
  requireOpen("digest of");
  return hasher_->digest();
}

void Ingest::write(std::string data) {
  requireOpen("write to");
  if (data.empty()) return;
  const std::string what = "write " + std::to_string(data.size()) + " bytes to " + describe() +
                           " (" + (store_.ingestRoot_ / id_ / "data").string() + ")";
  // The reserve is checked once per MiB written, not per write: statvfs is cheap, not free.
  if (store_.reserveBytes_ > 0 && (spaceCheckedAt_ < 0 || offset_ - spaceCheckedAt_ >= (1 << 20))) {
    spaceCheckedAt_ = offset_;
    uint64_t free = availableBytes(store_.ingestRoot_);
    if (free < data.size() + store_.reserveBytes_) {
      failNoSpace(kAreaContent, what + ": " + std::to_string(free >> 10) + " KiB free, of which " +
                                    std::to_string(store_.reserveBytes_ >> 10) +
                                    " KiB stay for the database: " + errnoText(ENOSPC));
    }
  }
  try {
    pwriteAll(fd_.get(), data.data(), data.size(), offset_, what);
  } catch (...) {
    // Keep the file and offset_ in step, so a resume starts from what was acknowledged.
    if (::ftruncate(fd_.get(), offset_) != 0) {
      log::warn("cannot cut ingest back after a failed write",
                {{"ref", ref_}, {"error", errnoText(errno)}});
    }
    throw;
  }
  offset_ += static_cast<int64_t>(data.size());
  updatedAt_ = ContentClock::now();
  if (offset_ - writebackStart_ >= kWritebackChunk) {
    // Only starts writeback; it does not wait. Failure just leaves the work to fsync.
    ::sync_file_range(fd_.get(), writebackStart_, offset_ - writebackStart_, SYNC_FILE_RANGE_WRITE);
    writebackStart_ = offset_;
  }
  hasher_->push(std::move(data));
}

void Ingest::truncate() {
  requireOpen("truncate");
  if (::ftruncate(fd_.get(), 0) != 0) {
    fail(ErrorClass::Internal, "truncate " + describe() + " to 0 failed: " + errnoText(errno));
  }
  hasher_->reset();
  offset_ = 0;
  writebackStart_ = 0;
  spaceCheckedAt_ = -1;
  updatedAt_ = ContentClock::now();
}

Digest Ingest::commit(int64_t size, const std::optional<Digest>& expected, const Labels& labels) {
  requireOpen("commit");
  // Whatever happens below, the lock goes before the caller answers: a client that sees the
  // answer may reopen the ref at once.
  struct Closer {
    Ingest& ingest;
    ~Closer() { ingest.close(); }
  } closer{*this};

  validateLabels(labels);
  if (size > 0 && size != offset_) {
    fail(ErrorClass::FailedPrecondition,
         "commit " + describe() + " refused: it holds " + std::to_string(offset_) +
             " bytes but the commit expects size " + std::to_string(size));
  }
  Digest actual = hasher_->digest();
  if (expected && *expected != actual) {
    fail(ErrorClass::FailedPrecondition, "commit " + describe() +
                                             " refused: its content has digest " + actual.str() +
                                             " but the commit expects " + expected->str());
  }

  std::filesystem::path dir = store_.ingestRoot_ / id_;
  std::filesystem::path data = dir / "data";
  std::filesystem::path target = store_.blobPath(actual);
  if (store_.contains(actual)) {
    // The same bytes were committed before; like containerd, drop ours.
    discard();
    fail(ErrorClass::AlreadyExists,
         "content " + actual.str() + ": already exists (committing " + describe() + ")");
  }
  // Read-only from the moment it has a blob's name, and durable before it gets that name.
  if (::fsync(fd_.get()) != 0) {
    failSystem(kAreaContent, "sync " + describe() + " at " + data.string() + " failed", errno);
  }
  if (::fchmod(fd_.get(), 0444) != 0) {
    fail(ErrorClass::Internal, "make " + data.string() + " read-only failed: " + errnoText(errno));
  }
  crashPoint("content.commit.synced");
  store_.recordBlob(actual, offset_, labels);
  crashPoint("content.commit.recorded");
  if (::renameat2(AT_FDCWD, data.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EEXIST) {
      // Another ingest committed the same bytes a moment ago.
      discard();
      fail(ErrorClass::AlreadyExists,
           "content " + actual.str() + ": already exists (committing " + describe() + ")");
    }
    ::fchmod(fd_.get(), 0600);
    failSystem(kAreaContent, "rename " + data.string() + " to " + target.string() + " failed", err);
  }
  syncDirectory(target.parent_path());
  crashPoint("content.commit.renamed");
  store_.forgetIngest(id_);
  if (::rmdir(dir.c_str()) != 0) {
    log::warn("cannot remove committed ingest directory",
              {{"path", dir.string()}, {"error", errnoText(errno)}});
  }
  // The record is gone; close() must not write it back.
  fd_.reset();
  release();
  return actual;
}

void Ingest::persist() noexcept {
  try {
    store_.saveIngestRow(id_,
                         ContentStore::IngestRow{ref_, total_, expected_ ? expected_->str() : "",
                                                 toNanos(startedAt_), toNanos(updatedAt_)});
  } catch (const std::exception& e) {
    log::warn("cannot record ingest progress", {{"ref", ref_}, {"error", e.what()}});
  }
}

void Ingest::release() {
  hasher_.reset();
  if (locked_) {
    locked_ = false;
    store_.unlockRef(ref_);
  }
}

void Ingest::close() {
  if (fd_) {
    persist();
    fd_.reset();
  }
  release();
}

void Ingest::discard() {
  fd_.reset();
  hasher_.reset();
  try {
    store_.deleteIngest(ref_);
  } catch (...) {
    release();
    throw;
  }
  release();
}

}  // namespace snapimport::store
