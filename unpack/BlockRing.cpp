#include "unpack/BlockRing.h"

#include <algorithm>

namespace snapimport::unpack {

BlockRing::BlockRing(size_t blocks, size_t blockBytes, size_t consumers)
    : slots_(blocks), released_(consumers, 0) {
  for (auto& s : slots_) s.bytes.resize(blockBytes);
}

uint64_t BlockRing::slowest() const {
  return *std::min_element(released_.begin(), released_.end());
}

std::span<uint8_t> BlockRing::acquire() {
  std::unique_lock lock(mu_);
  // Block n goes into the slot of block n - size: every consumer must have released that one.
  changed_.wait(lock, [&] { return stopped_ || published_ - slowest() < slots_.size(); });
  if (stopped_) return {};
  return slots_[published_ % slots_.size()].bytes;
}

void BlockRing::publish(size_t size) {
  {
    std::lock_guard lock(mu_);
    slots_[published_ % slots_.size()].size = size;
    ++published_;
  }
  changed_.notify_all();
}

void BlockRing::close(std::exception_ptr error) {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    error_ = std::move(error);
  }
  changed_.notify_all();
}

std::span<const uint8_t> BlockRing::wait(size_t c) {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return stopped_ || released_[c] < published_ || closed_; });
  if (stopped_) return {};
  if (released_[c] < published_) {
    const Slot& s = slots_[released_[c] % slots_.size()];
    return {s.bytes.data(), s.size};
  }
  if (error_) std::rethrow_exception(error_);
  return {};
}

void BlockRing::release(size_t c) {
  {
    std::lock_guard lock(mu_);
    ++released_[c];
  }
  changed_.notify_all();
}

void BlockRing::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  changed_.notify_all();
}

bool BlockRing::stopped() {
  std::lock_guard lock(mu_);
  return stopped_;
}

}  // namespace snapimport::unpack
