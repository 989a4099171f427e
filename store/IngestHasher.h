#pragma once
// SHA-256 of an ingest's bytes, computed on a worker thread. Without SHA-NI, hashing is the
// slowest step of a write (~270 MB/s here), and the Write protocol is lock-step: the client waits
// for each reply. Hashing behind the reply lets the next chunk cross the socket while the previous
// one is hashed, so a write runs at hashing speed instead of hashing plus transfer.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "Digest.h"

namespace snapimport::store {

class IngestHasher {
 public:
  IngestHasher() = default;
  ~IngestHasher();
  IngestHasher(const IngestHasher&) = delete;
  IngestHasher& operator=(const IngestHasher&) = delete;

  // Queues `chunk` (taking it over, no copy). Blocks while more than kMaxQueuedBytes wait, so
  // memory stays bounded however fast the client sends.
  void push(std::string chunk);
  // Hashes synchronously; for bytes read back from disk when an ingest resumes.
  void update(const void* data, size_t size);
  // Waits for queued chunks, then returns the digest of every byte pushed so far.
  Digest digest();
  // Forgets everything pushed so far (truncate to zero).
  void reset();

  static constexpr size_t kMaxQueuedBytes = 64u << 20;
  // Smaller chunks are hashed inline: a thread is not worth it for manifests and configs.
  static constexpr size_t kAsyncThreshold = 256u << 10;

 private:
  void run();
  // Waits until the worker has hashed everything queued. Caller holds `lock`.
  void drain(std::unique_lock<std::mutex>& lock);

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> queue_;
  size_t queuedBytes_ = 0;
  bool busy_ = false;  // the worker is hashing a chunk it took off the queue
  bool stop_ = false;
  std::string failure_;
  Sha256 sha_;  // touched by the worker only while busy_, otherwise under mutex_
  std::thread worker_;
};

}  // namespace snapimport::store
