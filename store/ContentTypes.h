#pragma once
// What the content store hands out: committed blobs and in-progress ingests.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "Digest.h"
#include "Snapshot.h"  // store::Labels

namespace snapimport::store {

using ContentClock = std::chrono::system_clock;
using ContentTime = ContentClock::time_point;

// A committed blob, addressed by its digest.
struct BlobInfo {
  Digest digest;
  int64_t size = 0;
  ContentTime createdAt;
  ContentTime updatedAt;
  Labels labels;
};

// An ingest: a blob being written under a client-chosen ref, resumable until committed.
struct IngestStatus {
  std::string ref;
  int64_t offset = 0;  // bytes written so far
  int64_t total = 0;   // expected size, 0 when unknown
  std::optional<Digest> expected;
  ContentTime startedAt;
  ContentTime updatedAt;
};

}  // namespace snapimport::store
