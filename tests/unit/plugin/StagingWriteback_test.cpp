#include "plugin/StagingWriteback.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "../store/TempDir.h"
#include "common/Metrics.h"

namespace snapimport::plugin {
namespace {

using namespace std::chrono_literals;

// Polls until the writeback has run at least n syncs, or 10 s pass.
bool waitForSyncs(const StagingWriteback& w, uint64_t n) {
  for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end;) {
    if (w.syncs() >= n) return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

uint64_t writebacksObserved() {
  return metrics::Metrics::daemon().stagingWritebackDuration.Collect().histogram.sample_count;
}

TEST(StagingWriteback, SyncsOnlyWhileAnUnpackRuns) {
  testing::TempDir dir;
  const uint64_t observedBefore = writebacksObserved();
  StagingWriteback w(dir.path(), 5ms);
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(w.syncs(), 0u) << "synced with nothing unpacking";
  uint64_t whileBusy;
  {
    auto busy = w.busy();
    ASSERT_TRUE(waitForSyncs(w, 3)) << "no background sync while an unpack ran";
    whileBusy = w.syncs();
  }
  std::this_thread::sleep_for(60ms);
  uint64_t after = w.syncs();
  // One sync may have been under way when the unpack ended; none starts after it.
  EXPECT_LE(after, whileBusy + 1);
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(w.syncs(), after);
  EXPECT_GE(writebacksObserved() - observedBefore, after)
      << "snapimport_staging_writeback_seconds did not count the syncs";
}

TEST(StagingWriteback, MovedBusyCountsOnce) {
  testing::TempDir dir;
  StagingWriteback w(dir.path(), 5ms);
  {
    StagingWriteback::Busy outer;
    {
      auto inner = w.busy();
      outer = std::move(inner);
    }
    // inner's end did not end the unpack outer now holds.
    uint64_t n = w.syncs();
    ASSERT_TRUE(waitForSyncs(w, n + 2));
    StagingWriteback::Busy moved(std::move(outer));
  }
  std::this_thread::sleep_for(30ms);
  uint64_t after = w.syncs();
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(w.syncs(), after) << "a moved-from Busy left the writeback busy";
}

TEST(StagingWriteback, AMissingDirectoryIsNotFatal) {
  testing::TempDir dir;
  // The layer's own syncfs reports this error; the background one only keeps trying.
  StagingWriteback w(dir.path() / "gone", 5ms);
  auto busy = w.busy();
  EXPECT_TRUE(waitForSyncs(w, 2));
}

TEST(StagingWriteback, StopsPromptlyWhileBusy) {
  testing::TempDir dir;
  auto start = std::chrono::steady_clock::now();
  {
    auto w = std::make_unique<StagingWriteback>(dir.path(), std::chrono::hours(1));
    auto busy = w->busy();
    busy = StagingWriteback::Busy();
    w.reset();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "the destructor waited an interval";
}

}  // namespace
}  // namespace snapimport::plugin
