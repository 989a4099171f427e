#include "IngestHasher.h"

#include "StoreError.h"

namespace snapimport::store {

IngestHasher::~IngestHasher() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    queue_.clear();
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void IngestHasher::push(std::string chunk) {
  if (chunk.empty()) return;
  std::unique_lock lock(mutex_);
  if (!worker_.joinable()) {
    if (chunk.size() < kAsyncThreshold) {
      sha_.update(chunk);
      return;
    }
    worker_ = std::thread([this] { run(); });
  }
  changed_.wait(lock, [&] { return queuedBytes_ < kMaxQueuedBytes || stop_; });
  queuedBytes_ += chunk.size();
  queue_.push_back(std::move(chunk));
  changed_.notify_all();
}

void IngestHasher::update(const void* data, size_t size) {
  std::unique_lock lock(mutex_);
  drain(lock);
  sha_.update(data, size);
}

Digest IngestHasher::digest() {
  std::unique_lock lock(mutex_);
  drain(lock);
  if (!failure_.empty()) fail(ErrorClass::Internal, "hashing the ingest failed: " + failure_);
  return sha_.digest();
}

void IngestHasher::reset() {
  std::unique_lock lock(mutex_);
  drain(lock);
  sha_.reset();
  failure_.clear();
}

void IngestHasher::drain(std::unique_lock<std::mutex>& lock) {
  changed_.wait(lock, [&] { return (queue_.empty() && !busy_) || stop_; });
}

void IngestHasher::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return !queue_.empty() || stop_; });
    if (stop_) return;
    std::string chunk = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    try {
      sha_.update(chunk);
    } catch (const std::exception& e) {
      // Reported by the next digest(); a failed hash must never let a commit through.
      lock.lock();
      failure_ = e.what();
      lock.unlock();
    }
    lock.lock();
    busy_ = false;
    queuedBytes_ -= chunk.size();
    changed_.notify_all();
  }
}

}  // namespace snapimport::store
