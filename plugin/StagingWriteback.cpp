#include "StagingWriteback.h"

#include <utility>

#include "common/Log.h"
#include "common/Metrics.h"
#include "unpack/Unpacker.h"

namespace snapimport::plugin {

StagingWriteback::StagingWriteback(std::filesystem::path dir, std::chrono::milliseconds interval)
    : dir_(std::move(dir)), interval_(interval) {
  thread_ = std::thread([this] { run(); });
}

StagingWriteback::~StagingWriteback() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

StagingWriteback::Busy::Busy(Busy&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)) {}

StagingWriteback::Busy& StagingWriteback::Busy::operator=(Busy&& o) noexcept {
  if (this != &o) {
    if (owner_) owner_->leave();
    owner_ = std::exchange(o.owner_, nullptr);
  }
  return *this;
}

StagingWriteback::Busy::~Busy() {
  if (owner_) owner_->leave();
}

StagingWriteback::Busy StagingWriteback::busy() {
  {
    std::lock_guard lock(mu_);
    ++busy_;
  }
  cv_.notify_all();
  return Busy(this);
}

StagingWriteback::Busy StagingWriteback::busyOf(
    const std::shared_ptr<StagingWriteback>& writeback) {
  return writeback ? writeback->busy() : Busy();
}

void StagingWriteback::leave() {
  std::lock_guard lock(mu_);
  --busy_;
}

uint64_t StagingWriteback::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

void StagingWriteback::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait(lock, [this] { return stopping_ || busy_ > 0; });
    // The first sync one interval after an unpack starts: before that there is little to write.
    if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) break;
    if (busy_ == 0) continue;
    lock.unlock();
    std::string error;
    auto start = std::chrono::steady_clock::now();
    try {
      unpack::syncFilesystem(dir_);
    } catch (const std::exception& e) {
      error = e.what();
    }
    metrics::Metrics::daemon().stagingWritebackDuration.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    lock.lock();
    ++syncs_;
    // Each layer's own syncfs fails the same way and fails that layer; this is only a hint.
    if (!error.empty() && !warned_) {
      warned_ = true;
      log::warn("background write-back of the staging filesystem failed", {{"error", error}});
    }
  }
}

}  // namespace snapimport::plugin
