#include "plugin/LayerPriority.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace snapimport::testing {
namespace {

using plugin::LayerPriority;
using Progress = LayerPriority::Progress;
using namespace std::chrono_literals;

int niceOf(pid_t tid) {
  errno = 0;
  int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  EXPECT_EQ(errno, 0);
  return n;
}

// The policy estimates from CPU time: give a thread some.
void burn(std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  volatile uint64_t x = 0;
  while (std::chrono::steady_clock::now() < until) x = x + 1;
}

TEST(LayerPriority, FavoursTheLongestEstimatedTimeLeft) {
  // Recent CPU per byte times what is left: 0.1 s per 10 bytes, 70 left: 0.7 s; 0.2 s per 10, 20
  // left: 0.4 s; 0.5 s per 10, 5 left: 0.25 s.
  std::vector<Progress> layers{{0.1, 10, 30, 100}, {0.2, 10, 80, 100}, {0.5, 10, 95, 100}};
  EXPECT_EQ(LayerPriority::favourite(layers, std::nullopt), 0u);
  // The third reaches a stretch of small files: 5 s per 10 bytes now, 2.5 s left.
  layers[2].recentCpuSeconds = 5;
  EXPECT_EQ(LayerPriority::favourite(layers, 0), 2u);
}

TEST(LayerPriority, ABottleneckThatWorkedWithoutReadingIsTheCostliest) {
  // The writer kept busy while the reader could not hand it more: no bytes, CPU spent.
  std::vector<Progress> layers{{0.5, 50, 50, 100}, {0.1, 0, 60, 100}};
  EXPECT_EQ(LayerPriority::favourite(layers, std::nullopt), 1u);
}

TEST(LayerPriority, FavoursOnlyALayerThatStandsOut) {
  // 1.0 s and 1.1 s left: about the same cost, so they share the cores evenly.
  std::vector<Progress> layers{{1.0, 50, 50, 100}, {1.1, 50, 50, 100}};
  EXPECT_EQ(LayerPriority::favourite(layers, std::nullopt), std::nullopt);
  layers[1].recentCpuSeconds = 1.3;  // 25% longer or more: favoured
  EXPECT_EQ(LayerPriority::favourite(layers, std::nullopt), 1u);
  layers[1].recentCpuSeconds = 1.1;  // its lead shrinks but stays above 5%: it stays favoured
  EXPECT_EQ(LayerPriority::favourite(layers, 1), 1u);
  EXPECT_EQ(LayerPriority::favourite(layers, std::nullopt), std::nullopt) << "not enough to start";
  layers[1].recentCpuSeconds = 1.02;  // caught up: nobody
  EXPECT_EQ(LayerPriority::favourite(layers, 1), std::nullopt);
  // The other one overtakes by 25%: it takes over.
  layers[1].recentCpuSeconds = 1.3;
  layers[0].recentCpuSeconds = 1.7;
  EXPECT_EQ(LayerPriority::favourite(layers, 1), 0u);
}

TEST(LayerPriority, NoFavouriteWithoutTwoEstimates) {
  // No CPU spent (waiting for the network), no size, or alone: nobody is slowed down.
  EXPECT_EQ(LayerPriority::favourite({{0, 0, 0, 100}, {1.0, 10, 10, 100}}, std::nullopt),
            std::nullopt);
  EXPECT_EQ(LayerPriority::favourite({{1.0, 10, 10, 0}, {1.0, 10, 10, 100}}, std::nullopt),
            std::nullopt);
  EXPECT_EQ(LayerPriority::favourite({{1.0, 10, 10, 100}}, std::nullopt), std::nullopt);
  EXPECT_EQ(LayerPriority::favourite({}, std::nullopt), std::nullopt);
  // A layer read to the end has nothing left and is not the favourite.
  EXPECT_EQ(LayerPriority::favourite({{1.0, 10, 100, 100}, {1.0, 10, 10, 100}}, 0), 1u);
}

// Two layers on real threads: the one far behind keeps the normal priority, the other's threads
// (caller and pipeline) are lowered, and every thread gets its own value back at the end.
TEST(LayerPriority, LowersTheOtherLayersThreadsAndRestoresThem) {
  auto prio = LayerPriority::create({.backgroundNice = 5, .period = 10ms, .ownCpuCgroup = true});
  if (!prio->enabled()) GTEST_SKIP() << "this process may not give a thread its priority back";
  const int normal = niceOf(::gettid());
  std::atomic<uint64_t> slowDone{1}, fastDone{90};
  std::atomic<pid_t> slowTid{0}, fastTid{0}, pipelineTid{0};
  std::atomic<bool> release{false};
  std::thread slow([&] {
    auto layer = prio->start("slow", 100, slowDone);
    burn(5ms);
    slowTid = ::gettid();
    while (!release) std::this_thread::sleep_for(5ms);
  });
  std::thread fast([&] {
    auto layer = prio->start("fast", 100, fastDone);
    burn(5ms);
    fastTid = ::gettid();
    std::thread pipeline([&] {
      layer->threadStarted();
      pipelineTid = ::gettid();
      while (!release) std::this_thread::sleep_for(5ms);
      layer->threadEnding();
    });
    while (!release) std::this_thread::sleep_for(5ms);
    pipeline.join();
    layer.reset();
    EXPECT_EQ(niceOf(::gettid()), normal) << "the caller keeps running other jobs";
  });
  // Wait for the decision rather than a fixed time: the scheduler thread ticks every 10 ms.
  auto decided = [&] {
    return slowTid != 0 && fastTid != 0 && pipelineTid != 0 && niceOf(pipelineTid) == normal + 5 &&
           niceOf(fastTid) == normal + 5;
  };
  for (int i = 0; i < 500 && !decided(); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  // Read while both layers run: once one ends, the other is alone and back to normal.
  int slowNice = niceOf(slowTid), fastNice = niceOf(fastTid), pipelineNice = niceOf(pipelineTid);
  release = true;
  slow.join();
  fast.join();
  EXPECT_EQ(slowNice, normal) << "the layer with the most time left runs at the normal priority";
  EXPECT_EQ(fastNice, normal + 5);
  EXPECT_EQ(pipelineNice, normal + 5) << "pipeline threads follow their layer";
  EXPECT_GE(prio->changes(), 2u) << "lowered once, restored once at least";
}

TEST(LayerPriority, ALayerAloneIsNeverLowered) {
  auto prio = LayerPriority::create({.backgroundNice = 5, .period = 10ms, .ownCpuCgroup = true});
  if (!prio->enabled()) GTEST_SKIP() << "this process may not give a thread its priority back";
  std::atomic<uint64_t> done{1};
  auto layer = prio->start("alone", 100, done);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(niceOf(::gettid()), niceOf(::getpid()));
  EXPECT_EQ(prio->changes(), 0u);
}

// Outside a cpu cgroup of its own the daemon must not lower any thread (CpuCgroup says why).
TEST(LayerPriority, OffWithoutACpuCgroupOfItsOwn) {
  auto prio = LayerPriority::create({.backgroundNice = 5, .period = 10ms, .ownCpuCgroup = false});
  EXPECT_FALSE(prio->enabled());
  std::atomic<uint64_t> done{1};
  EXPECT_EQ(prio->start("layer", 100, done), nullptr);
}

}  // namespace
}  // namespace snapimport::testing
