#include "unpack/BlockRing.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace snapimport::testing {
namespace {

using unpack::BlockRing;
using namespace std::chrono_literals;

void publishNumber(BlockRing& ring, uint32_t n) {
  auto slot = ring.acquire();
  ASSERT_GE(slot.size(), sizeof n);
  std::memcpy(slot.data(), &n, sizeof n);
  ring.publish(sizeof n);
}

uint32_t numberIn(std::span<const uint8_t> block) {
  uint32_t n = 0;
  EXPECT_EQ(block.size(), sizeof n);
  std::memcpy(&n, block.data(), sizeof n);
  return n;
}

TEST(BlockRing, EveryConsumerSeesEveryBlockInOrder) {
  constexpr uint32_t kBlocks = 5000;
  BlockRing ring(4, 64, 2);
  std::thread producer([&] {
    for (uint32_t i = 0; i < kBlocks; ++i) publishNumber(ring, i);
    ring.close();
  });
  auto consume = [&](size_t c, bool slow, uint32_t& seen) {
    for (;;) {
      auto b = ring.wait(c);
      if (b.empty()) break;
      EXPECT_EQ(numberIn(b), seen);
      ++seen;
      if (slow && seen % 500 == 0) std::this_thread::sleep_for(1ms);
      ring.release(c);
    }
  };
  uint32_t fast = 0, slow = 0;
  std::thread other([&] { consume(1, true, slow); });
  consume(0, false, fast);
  other.join();
  producer.join();
  EXPECT_EQ(fast, kBlocks);
  EXPECT_EQ(slow, kBlocks);
}

// A ring of 16 wakes a sleeping thread after 4 blocks; these cover every way to wake: a full
// batch, the bounded wait with fewer blocks, a producer sleeping for free slots, the end.
TEST(BlockRing, BatchedWakeUpsLoseAndReorderNothing) {
  constexpr uint32_t kBlocks = 3000;
  BlockRing ring(16, 64, 2);
  std::thread producer([&] {
    for (uint32_t i = 0; i < kBlocks; ++i) {
      publishNumber(ring, i);
      if (i % 700 == 3) std::this_thread::sleep_for(2 * BlockRing::kBatchWait);  // a stall
    }
    ring.close();
  });
  auto consume = [&](size_t c, uint32_t& seen) {
    for (;;) {
      auto b = ring.wait(c);
      if (b.empty()) break;
      EXPECT_EQ(numberIn(b), seen);
      ++seen;
      if (c == 1 && seen % 300 == 0) std::this_thread::sleep_for(1ms);  // the producer fills up
      ring.release(c);
    }
  };
  uint32_t first = 0, second = 0;
  std::thread other([&] { consume(1, second); });
  consume(0, first);
  other.join();
  producer.join();
  EXPECT_EQ(first, kBlocks);
  EXPECT_EQ(second, kBlocks);
}

// One block and a source that stalls: the consumer gets the block without waiting for a batch.
TEST(BlockRing, ALoneBlockReachesASleepingConsumer) {
  BlockRing ring(16, 16, 1);
  std::atomic<bool> got{false};
  std::thread consumer([&] {
    EXPECT_EQ(numberIn(ring.wait(0)), 42u);
    got = true;
    ring.release(0);
    EXPECT_TRUE(ring.wait(0).empty());
  });
  std::this_thread::sleep_for(20ms);  // the consumer is asleep by now
  publishNumber(ring, 42);
  for (int i = 0; i < 1000 && !got; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(got) << "a lone block waited for the producer to fill a batch";
  ring.close();
  consumer.join();
}

TEST(BlockRing, ProducerWaitsForTheSlowestConsumer) {
  BlockRing ring(2, 16, 2);
  publishNumber(ring, 0);
  publishNumber(ring, 1);
  std::atomic<bool> acquired{false};
  std::thread producer([&] {
    ring.acquire();  // block 2 reuses block 0's slot
    acquired = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(acquired) << "slot reused while both consumers still hold block 0";
  EXPECT_EQ(numberIn(ring.wait(0)), 0u);
  ring.release(0);
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(acquired) << "slot reused while consumer 1 still holds block 0";
  EXPECT_EQ(numberIn(ring.wait(1)), 0u);
  ring.release(1);
  producer.join();
  EXPECT_TRUE(acquired);
}

TEST(BlockRing, AnErrorArrivesAfterTheBlocksPublishedBeforeIt) {
  BlockRing ring(4, 16, 1);
  publishNumber(ring, 7);
  publishNumber(ring, 8);
  ring.close(std::make_exception_ptr(std::length_error("inflate failed")));
  EXPECT_EQ(numberIn(ring.wait(0)), 7u);
  ring.release(0);
  EXPECT_EQ(numberIn(ring.wait(0)), 8u);
  ring.release(0);
  EXPECT_THROW(ring.wait(0), std::length_error);
  EXPECT_THROW(ring.wait(0), std::length_error) << "the error must stick";
}

TEST(BlockRing, StopWakesAWaitingConsumerAndABlockedProducer) {
  BlockRing ring(1, 16, 1);
  publishNumber(ring, 1);
  ring.wait(0);  // held, never released: the producer cannot get the slot back
  std::thread producer([&] { EXPECT_TRUE(ring.acquire().empty()); });
  BlockRing idle(1, 16, 1);
  std::thread consumer([&] { EXPECT_TRUE(idle.wait(0).empty()); });
  std::this_thread::sleep_for(20ms);
  ring.stop();
  idle.stop();
  producer.join();
  consumer.join();
  EXPECT_TRUE(ring.stopped());
}

}  // namespace
}  // namespace snapimport::testing
