#include "common/ImportProgress.h"

#include <gtest/gtest.h>

namespace snapimport::progress {
namespace {

const std::vector<std::pair<std::string, uint64_t>> kLayers = {{"sha256:aaa", 100},
                                                               {"sha256:bbb", 200}};

TEST(ImportProgress, TracksLayersOfAnImage) {
  ImportProgress t;
  t.imageStarted("reg/app:1", "sha256:m1", kLayers);
  t.layerState("sha256:aaa", LayerState::Fetching);
  t.layerBytes("sha256:aaa", 60, 150);
  t.layerState("sha256:bbb", LayerState::Failed, "digest mismatch");
  auto s = t.snapshot();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ref, "reg/app:1");
  EXPECT_FALSE(s[0].finished);
  ASSERT_EQ(s[0].layers.size(), 2u);
  EXPECT_EQ(s[0].layers[0].state, LayerState::Fetching);
  EXPECT_EQ(s[0].layers[0].fetched, 60u);
  EXPECT_EQ(s[0].layers[0].written, 150u);
  EXPECT_EQ(s[0].layers[0].size, 100u);
  EXPECT_EQ(s[0].layers[1].state, LayerState::Failed);
  EXPECT_EQ(s[0].layers[1].error, "digest mismatch");
}

TEST(ImportProgress, SharedLayerShowsInBothImages) {
  ImportProgress t;
  t.imageStarted("reg/a:1", "sha256:m1", kLayers);
  t.imageStarted("reg/b:1", "sha256:m2", {{"sha256:aaa", 100}, {"sha256:ccc", 5}});
  t.layerState("sha256:aaa", LayerState::Done);
  auto s = t.snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].layers[0].state, LayerState::Done);
  EXPECT_EQ(s[1].layers[0].state, LayerState::Done);
}

TEST(ImportProgress, SameImageTwiceIsOneEntry) {
  ImportProgress t;
  t.imageStarted("reg/a:1", "sha256:m1", kLayers);
  t.imageStarted("reg/a:1", "sha256:m1", kLayers);
  EXPECT_EQ(t.snapshot().size(), 1u);
}

TEST(ImportProgress, FinishedImagesStayBrieflyThenGo) {
  ImportProgress t;
  t.imageStarted("reg/old:1", "sha256:m0", {{"sha256:000", 1}});
  t.imageFinished("reg/old:1", "sha256:m0");
  t.imageStarted("reg/a:1", "sha256:m1", kLayers);
  auto s = t.snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].ref, "reg/a:1");  // running first
  EXPECT_TRUE(s[1].finished);
  auto later = ImportProgress::Clock::now() + ImportProgress::kRecentFor + std::chrono::seconds(1);
  s = t.snapshot(later);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ref, "reg/a:1");
}

TEST(ImportProgress, KeepsAtMostSomeFinishedImages) {
  ImportProgress t;
  for (size_t i = 0; i < ImportProgress::kRecentImages + 5; ++i) {
    std::string m = "sha256:m" + std::to_string(i);
    t.imageStarted("reg/x:" + std::to_string(i), m, {{"sha256:l" + std::to_string(i), 1}});
    t.imageFinished("reg/x:" + std::to_string(i), m);
  }
  auto s = t.snapshot();
  ASSERT_EQ(s.size(), ImportProgress::kRecentImages);
  EXPECT_EQ(s[0].ref,
            "reg/x:" + std::to_string(ImportProgress::kRecentImages + 4));  // newest first
}

TEST(ImportProgress, UnknownLayersAreIgnored) {
  ImportProgress t;
  t.layerState("sha256:nope", LayerState::Done);
  t.layerBytes("sha256:nope", 1, 1);
  EXPECT_TRUE(t.snapshot().empty());
}

TEST(ImportProgress, JsonRoundTrip) {
  ImportProgress t;
  t.imageStarted("reg/app:\"q\"", "sha256:m1", kLayers);
  t.layerState("sha256:aaa", LayerState::Committing);
  t.layerBytes("sha256:aaa", 100, 400);
  t.layerSource("sha256:aaa", "content", "apply");
  auto before = t.snapshot();
  auto after = fromJson(toJson(before));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].ref, "reg/app:\"q\"");
  EXPECT_EQ(after[0].manifest, "sha256:m1");
  ASSERT_EQ(after[0].layers.size(), 2u);
  EXPECT_EQ(after[0].layers[0].state, LayerState::Committing);
  EXPECT_EQ(after[0].layers[0].written, 400u);
  EXPECT_EQ(after[0].layers[1].size, 200u);
  EXPECT_EQ(after[0].layers[0].source, "content");
  EXPECT_EQ(after[0].layers[0].via, "apply");
  EXPECT_EQ(after[0].layers[1].source, "");
  EXPECT_EQ(toJson({}), "{\"images\":[]}");
}

// A daemon from before the source and via fields: its document still reads, with both empty.
TEST(ImportProgress, JsonWithoutSourceReads) {
  auto images = fromJson(
      R"({"images":[{"ref":"r","manifest":"sha256:m","finished":false,"seconds":1.5,"layers":[)"
      R"({"digest":"sha256:a","size":1,"fetched_bytes":1,"written_bytes":2,"state":"done",)"
      R"("error":"","seconds":1.0}]}]})");
  ASSERT_EQ(images.size(), 1u);
  ASSERT_EQ(images[0].layers.size(), 1u);
  EXPECT_EQ(images[0].layers[0].state, LayerState::Done);
  EXPECT_EQ(images[0].layers[0].source, "");
  EXPECT_EQ(images[0].layers[0].via, "");
}

TEST(ImportProgress, MalformedJsonIsAnError) {
  EXPECT_THROW(fromJson("{"), std::runtime_error);
  EXPECT_THROW(fromJson("{\"images\":[{\"ref\":1}]}"), std::runtime_error);
}

}  // namespace
}  // namespace snapimport::progress
