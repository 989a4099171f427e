#include "unpack/BlockRing.h"

#include <algorithm>
#include <stdexcept>

namespace snapimport::unpack {

BlockRing::BlockRing(size_t blocks, size_t blockBytes, size_t consumers)
    : slots_(blocks),
      batch_(std::max<uint64_t>(1, blocks / 4)),
      consumerWake_(consumers),
      consumerWants_(consumers, 0),
      released_(consumers, 0) {
  // publish() collects the consumers to wake in one 64-bit word.
  if (consumers == 0 || consumers > 64) throw std::invalid_argument("BlockRing: 1 to 64 consumers");
  for (auto& s : slots_) s.bytes.resize(blockBytes);
}

uint64_t BlockRing::slowest() const {
  return *std::min_element(released_.begin(), released_.end());
}

namespace {

// Sleeps until `available()` reaches `batch`, `ended()`, or kBatchWait passes; then until anything
// at all is available. The caller holds the lock and found nothing available; `wants` tells the
// other side what will wake this thread.
template <class Available, class Ended>
void sleepForBatch(std::unique_lock<std::mutex>& lock, std::condition_variable& wake,
                   uint64_t& wants, uint64_t batch, Available available, Ended ended) {
  auto enough = [&] { return ended() || available() >= wants; };
  wants = batch;
  if (!wake.wait_for(lock, BlockRing::kBatchWait, enough)) {
    wants = 1;
    wake.wait(lock, enough);
  }
  wants = 0;
}

}  // namespace

std::span<uint8_t> BlockRing::acquire() {
  std::unique_lock lock(mu_);
  // Block n goes into the slot of block n - size: every consumer must have released that one.
  if (!stopped_ && freeSlots() == 0) {
    sleepForBatch(
        lock, producerWake_, producerWants_, batch_, [&] { return freeSlots(); },
        [&] { return stopped_; });
  }
  if (stopped_) return {};
  return slots_[published_ % slots_.size()].bytes;
}

void BlockRing::publish(size_t size) {
  // A bit per consumer to wake once the lock is dropped.
  uint64_t wake = 0;
  {
    std::lock_guard lock(mu_);
    slots_[published_ % slots_.size()].size = size;
    ++published_;
    for (size_t c = 0; c < consumerWake_.size(); ++c) {
      if (consumerWants_[c] != 0 && ready(c) >= consumerWants_[c]) wake |= uint64_t{1} << c;
    }
  }
  for (size_t c = 0; wake != 0; ++c, wake >>= 1) {
    if (wake & 1) consumerWake_[c].notify_one();
  }
}

void BlockRing::close(std::exception_ptr error) {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    error_ = std::move(error);
  }
  for (auto& cv : consumerWake_) cv.notify_one();
}

std::span<const uint8_t> BlockRing::wait(size_t c) {
  std::unique_lock lock(mu_);
  if (!stopped_ && !closed_ && ready(c) == 0) {
    sleepForBatch(
        lock, consumerWake_[c], consumerWants_[c], batch_, [&] { return ready(c); },
        [&] { return stopped_ || closed_; });
  }
  if (stopped_) return {};
  if (ready(c) > 0) {
    const Slot& s = slots_[released_[c] % slots_.size()];
    return {s.bytes.data(), s.size};
  }
  if (error_) std::rethrow_exception(error_);
  return {};
}

void BlockRing::release(size_t c) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    ++released_[c];
    wake = producerWants_ != 0 && freeSlots() >= producerWants_;
  }
  if (wake) producerWake_.notify_one();
}

void BlockRing::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  producerWake_.notify_one();
  for (auto& cv : consumerWake_) cv.notify_one();
}

bool BlockRing::stopped() {
  std::lock_guard lock(mu_);
  return stopped_;
}

}  // namespace snapimport::unpack
