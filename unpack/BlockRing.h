#pragma once
// A fixed ring of byte blocks handed from one producer thread to several consumer threads, each of
// which sees every block in order. A slot is reused only when every consumer has released the block
// in it, so memory is bounded by blocks x blockBytes whatever the stream's length.
//
// The end of the stream, or the error that ended it, travels with the blocks: a consumer sees the
// error only after the blocks published before it (the stage in front may have failed at the very
// end, after handing on good data). stop() ends everything at once, for teardown.
//
// Wake-ups come in batches: a thread that has to sleep (a consumer with nothing to read, the
// producer with no free slot) is woken once a quarter of the ring is ready for it, or at the end;
// after kBatchWait with less than that, by the next block. On two cores a wake-up at every
// 128-256 KiB block was a futex call and a context switch per block and thread, about 5% of an
// unpack's CPU. The wait bound keeps a slow or stalled source's bytes from sitting unread behind
// an unfilled batch (progress, stall timeouts). A thread that does not have to sleep takes what
// is there at once.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <vector>

namespace snapimport::unpack {

class BlockRing {
 public:
  BlockRing(size_t blocks, size_t blockBytes, size_t consumers);
  BlockRing(const BlockRing&) = delete;
  BlockRing& operator=(const BlockRing&) = delete;

  // Producer: the next slot to fill, once every consumer is done with its previous contents; an
  // empty span after stop().
  std::span<uint8_t> acquire();
  // Producer: hands the acquired slot's first `size` bytes to the consumers.
  void publish(size_t size);
  // Producer: no more blocks; `error` (if any) is what consumers get after the last block.
  void close(std::exception_ptr error = nullptr);

  // Consumer `c`: the next block, valid until release(c); empty at the end of the stream or after
  // stop(). Rethrows the producer's error once the blocks before it are consumed.
  std::span<const uint8_t> wait(size_t c);
  void release(size_t c);

  // Wakes everybody; acquire() and wait() return empty from now on.
  void stop();
  bool stopped();

  static constexpr std::chrono::milliseconds kBatchWait{5};

 private:
  uint64_t slowest() const;
  uint64_t freeSlots() const { return slots_.size() - (published_ - slowest()); }
  uint64_t ready(size_t c) const { return published_ - released_[c]; }

  struct Slot {
    std::vector<uint8_t> bytes;
    size_t size = 0;
  };
  std::vector<Slot> slots_;
  const uint64_t batch_;  // blocks a sleeping thread waits for: a quarter of the ring, at least 1
  std::mutex mu_;
  std::condition_variable producerWake_;
  std::vector<std::condition_variable> consumerWake_;
  // How many blocks (free slots) wake a sleeping thread; 0 while it is not sleeping.
  uint64_t producerWants_ = 0;
  std::vector<uint64_t> consumerWants_;
  uint64_t published_ = 0;
  std::vector<uint64_t> released_;  // per consumer: blocks it is done with
  bool closed_ = false, stopped_ = false;
  std::exception_ptr error_;
};

}  // namespace snapimport::unpack
