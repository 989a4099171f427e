// The live view of `snapimport pull` on a terminal: /status snapshots in, one line per image out.
#include "cli/PullProgress.h"

#include <gtest/gtest.h>

namespace snapimport::cli {
namespace {

using progress::ImageProgress;
using progress::LayerProgress;
using progress::LayerState;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

LayerProgress layer(const std::string& digest, uint64_t size, uint64_t fetched, LayerState state) {
  LayerProgress l;
  l.digest = digest;
  l.size = size;
  l.fetched = fetched;
  l.state = state;
  return l;
}

// 30 MiB of 40 MiB: one layer done, one fetching, one small one queued.
ImageProgress app(uint64_t secondFetched = 20 << 20, bool finished = false) {
  ImageProgress p;
  p.ref = "127.0.0.1:5000/team/app:v1";
  p.manifest = "sha256:0123456789abcdef";
  p.finished = finished;
  p.layers = {layer("sha256:aa", 10 << 20, 10 << 20, LayerState::Done),
              layer("sha256:bb", 29 << 20, secondFetched, LayerState::Fetching),
              layer("sha256:cc", 1 << 20, 0, LayerState::Queued)};
  return p;
}

TEST(PullProgressRender, ShowsBytesOfTotalRateLayersAndTime) {
  ImageProgress p = app();
  std::string line = renderPullLine({"127.0.0.1:5000/team/app:v1", 4.04, &p, 2.5 * (1 << 20)}, 120);
  EXPECT_EQ(line,
            "127.0.0.1:5000/team/app:v1  [===============>    ]  30.0 MiB / 40.0 MiB  2.5 MiB/s  "
            "1/3 layers  4.0s");
}

TEST(PullProgressRender, FitsTheWidthDroppingTheBarThenCuttingTheName) {
  ImageProgress p = app();
  const std::string name = "registry.example.com/some/very/long/repository/name:with-a-long-tag";
  for (size_t width : {200u, 100u, 80u, 60u, 40u}) {
    std::string line = renderPullLine({name, 12.0, &p, 1 << 20}, width);
    EXPECT_LE(line.size(), width) << line;
    EXPECT_TRUE(has(line, "1/3 layers  12.0s")) << width << ": " << line;
  }
  EXPECT_TRUE(has(renderPullLine({name, 12.0, &p, 1 << 20}, 200), name + "  [")) << "room for all";
  std::string narrow = renderPullLine({name, 12.0, &p, 1 << 20}, 80);
  EXPECT_FALSE(has(narrow, "[")) << narrow;
  EXPECT_TRUE(narrow.starts_with("registry.example.com/")) << narrow;
  EXPECT_TRUE(has(narrow, "...  30.0 MiB / 40.0 MiB")) << narrow;
}

// Redrawn in place, a bar that came and went with the rate would flicker.
TEST(PullProgressRender, TheBarDoesNotDependOnWhetherTheRateIsKnownYet) {
  ImageProgress p = app();
  const std::string name = "127.0.0.1:44795/test/live:v1";
  for (size_t width : {99u, 110u, 130u}) {
    bool withRate = has(renderPullLine({name, 1.0, &p, 250.0 * 1024}, width), "[");
    bool withoutRate = has(renderPullLine({name, 1.0, &p, std::nullopt}, width), "[");
    EXPECT_EQ(withRate, withoutRate) << width;
  }
  EXPECT_TRUE(has(renderPullLine({name, 1.0, &p, std::nullopt}, 130), "["));
}

TEST(PullProgressRender, WithoutDaemonReportShowsOnlyTheTime) {
  EXPECT_EQ(renderPullLine({"busybox", 2.0, nullptr, std::nullopt}, 80),
            "busybox  pulling ...  2.0s");
}

TEST(PullProgressRender, CountsFallbackAndFailedLayersAndOmitsUnknownRate) {
  ImageProgress p = app();
  p.layers[1].state = LayerState::Fallback;
  p.layers[2].state = LayerState::Failed;
  std::string line = renderPullLine({"app", 1.0, &p, std::nullopt}, 120);
  EXPECT_TRUE(has(line, "1/3 layers, 1 by containerd, 1 failed  1.0s")) << line;
  EXPECT_FALSE(has(line, "/s ")) << line;
}

TEST(PullProgress, FindsImagesByNormalisedReference) {
  ImageProgress busybox;
  busybox.ref = "docker.io/library/busybox:latest";
  busybox.manifest = "sha256:bb";
  busybox.layers = {layer("sha256:l1", 100, 50, LayerState::Fetching)};
  PullProgress view({"busybox", "127.0.0.1:5000/team/app:v1", "quay.io/other:1"});
  view.update({app(), busybox}, 1.0);
  ASSERT_NE(view.entryFor(0), nullptr);
  EXPECT_EQ(view.entryFor(0)->ref, "docker.io/library/busybox:latest");
  ASSERT_NE(view.entryFor(1), nullptr);
  EXPECT_EQ(view.entryFor(1)->ref, "127.0.0.1:5000/team/app:v1");
  EXPECT_EQ(view.entryFor(2), nullptr);
  auto lines = view.lines({{2, 3.0}, {0, 3.0}}, 100);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "quay.io/other:1  pulling ...  3.0s");
  EXPECT_TRUE(lines[1].starts_with("busybox  [")) << lines[1];
}

TEST(PullProgress, RateOverTheLastSeconds) {
  PullProgress view({"127.0.0.1:5000/team/app:v1"});
  view.update({app(20 << 20)}, 1.0);
  EXPECT_FALSE(view.rateFor(0)) << "one sample is no rate";
  view.update({app(20 << 20)}, 1.2);
  EXPECT_FALSE(view.rateFor(0)) << "0.2 s is too short to measure";
  view.update({app(22 << 20)}, 2.0);
  ASSERT_TRUE(view.rateFor(0));
  EXPECT_DOUBLE_EQ(*view.rateFor(0), 2.0 * (1 << 20));
  // Older samples leave the window: the rate follows the recent stall.
  view.update({app(22 << 20)}, 5.0);
  view.update({app(22 << 20)}, 8.0);
  ASSERT_TRUE(view.rateFor(0));
  EXPECT_DOUBLE_EQ(*view.rateFor(0), 0.0);
  // A retried layer counts from 0 again: no negative rate, measuring starts over.
  view.update({app(1 << 20)}, 8.5);
  EXPECT_FALSE(view.rateFor(0));
  // The daemon stopped answering: nothing is shown but the time.
  view.clear();
  EXPECT_EQ(view.entryFor(0), nullptr);
  EXPECT_FALSE(view.rateFor(0));
}

TEST(PullProgress, AnEarlierFinishedPullIsNotThisOne) {
  PullProgress view({"127.0.0.1:5000/team/app:v1"});
  view.baseline({app(29 << 20, /*finished=*/true)});
  view.update({app(29 << 20, true)}, 1.0);
  EXPECT_EQ(view.entryFor(0), nullptr) << "finished before this pull began";
  // The daemon imports it again (it was removed meanwhile): from now on it is this pull's.
  view.update({app(1 << 20)}, 2.0);
  ASSERT_NE(view.entryFor(0), nullptr);
  view.update({app(29 << 20, true)}, 3.0);
  ASSERT_NE(view.entryFor(0), nullptr);
  EXPECT_TRUE(view.entryFor(0)->finished);
}

}  // namespace
}  // namespace snapimport::cli
