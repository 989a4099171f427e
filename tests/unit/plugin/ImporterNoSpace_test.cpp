// The importer on a full disk: a layer that does not fit fails the Prepare with ResourceExhausted
// (no fallback: containerd would download the same layer into the same full disk), leaves nothing
// in staging, is counted, and imports once space is freed, also when the failure was an earlier
// pull's prefetch. The snapshot root is a real, small tmpfs (tests/unit/store/SmallFilesystem.h).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "../store/SmallFilesystem.h"
#include "../store/TempDir.h"
#include "common/Metrics.h"
#include "plugin/ChainId.h"
#include "plugin/Importer.h"
#include "store/StoreError.h"
#include "unpack/FileSource.h"

namespace snapimport::plugin {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
const std::string kNoSpace = std::strerror(ENOSPC);

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

// Layers from local files, counting how often each is opened (a fetch from the registry).
class FileFetcher : public LayerFetcher {
 public:
  ImageLayers image;
  std::map<std::string, fs::path> blobs;
  std::atomic<int> opened{0};

  ImageLayers describe(const std::string&, const std::string&) override { return image; }
  std::unique_ptr<unpack::Source> open(const std::string&, const LayerDescriptor& d) override {
    ++opened;
    return std::make_unique<unpack::FileSource>(blobs.at(d.digest));
  }
  std::string hostOf(const std::string&) override { return "local"; }
};

double metric(prometheus::Counter& c) { return c.Value(); }

class ImporterNoSpaceTest : public ::testing::Test {
 protected:
  testing::SmallFilesystem disk{24 << 20};
  testing::TempDir src;
  std::shared_ptr<store::SnapshotStore> store;
  std::shared_ptr<FileFetcher> fetcher = std::make_shared<FileFetcher>();
  std::vector<std::string> chains;
  const std::string manifest = "sha256:" + std::string(64, 'd');

  void SetUp() override {
    if (!disk.mounted()) GTEST_SKIP() << "cannot mount a small tmpfs: " << disk.whyNot();
    store = std::make_shared<store::SnapshotStore>(disk.path() / "root", store::OverlayOptions{});
    // Layer 0: one small file. Layer 1: 6 MiB of random bytes, which gzip cannot shrink.
    std::vector<std::string> diffIds;
    for (int i = 0; i < 2; ++i) {
      fs::path dir = src.path() / ("l" + std::to_string(i));
      fs::create_directories(dir);
      if (i == 0) {
        std::ofstream(dir / "small.txt") << "small\n";
      } else {
        sh("head -c 6291456 /dev/urandom > " + (dir / "big.bin").string());
      }
      fs::path tar = src.path() / ("l" + std::to_string(i) + ".tar");
      sh("tar -C " + dir.string() + " -cf " + tar.string() + " .");
      sh("gzip -kn " + tar.string());
      fs::path gz = tar.string() + ".gz";
      std::string digest = sha256Digest(slurp(gz));
      diffIds.push_back(sha256Digest(slurp(tar)));
      fetcher->image.layers.push_back({digest, kGzip, static_cast<int64_t>(fs::file_size(gz))});
      fetcher->blobs[digest] = gz;
    }
    fetcher->image.diffIds = diffIds;
    chains = chainIds(diffIds);
  }

  store::Labels labelsFor(size_t i) {
    std::string later;
    for (size_t j = i; j < fetcher->image.layers.size(); ++j) {
      later += (later.empty() ? "" : ",") + fetcher->image.layers[j].digest;
    }
    return {{kLabelSnapshotRef, chains[i]},
            {kLabelImageRef, "127.0.0.1:5000/test/full:1"},
            {kLabelManifestDigest, manifest},
            {kLabelLayerDigest, fetcher->image.layers[i].digest},
            {kLabelImageLayers, later}};
  }

  std::string committedName(size_t i, const std::string& parent) {
    auto info = store->findCommitted(kLabelSnapshotRef, chains[i], parent);
    return info ? info->name : "";
  }

  bool stagingEmpty() { return fs::is_empty(store->stagingDir()); }
};

TEST_F(ImporterNoSpaceTest, ALayerThatDoesNotFitFailsThePrepareInsteadOfFallingBack) {
  auto& m = metrics::Metrics::daemon();
  double failedBefore = metric(m.importsFailed("no_space"));
  double areaBefore = metric(m.noSpaceErrors("import"));
  double fallbacksBefore = metric(m.fallbacks("import_failed"));
  Importer importer(store, fetcher, {});
  // Base layer first, then leave 2 MiB for the 6 MiB layer.
  ASSERT_EQ(importer.prepare("k8s.io/1/extract-1 " + chains[0], "", labelsFor(0)),
            Importer::Outcome::Imported);
  std::string base = committedName(0, "");
  // The big layer was prefetched while there was room; drop it, as Cleanup would after the grace.
  size_t dropped = 0;
  for (int i = 0; i < 500 && dropped == 0; ++i) {
    dropped = importer.cleanupStaged(true);
    if (dropped == 0) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(dropped, 1u);
  ASSERT_TRUE(stagingEmpty());
  disk.fill(2 << 20);

  const int openedBefore = fetcher->opened;
  try {
    importer.prepare("k8s.io/1/extract-2 " + chains[1], base, labelsFor(1));
    FAIL() << "the Prepare of a layer that does not fit did not fail";
  } catch (const store::StoreError& e) {
    EXPECT_EQ(e.errorClass(), store::ErrorClass::ResourceExhausted);
    std::string msg = e.what();
    EXPECT_NE(msg.find(store->stagingDir().string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(kNoSpace), std::string::npos) << msg;
    EXPECT_NE(msg.find(fetcher->image.layers[1].digest), std::string::npos) << msg;
  }
  EXPECT_EQ(fetcher->opened, openedBefore + 1) << "the layer was fetched more than once";
  EXPECT_EQ(importer.stats().fallbacks, 0u);
  EXPECT_EQ(metric(m.fallbacks("import_failed")), fallbacksBefore);
  EXPECT_EQ(metric(m.importsFailed("no_space")), failedBefore + 1);
  EXPECT_EQ(metric(m.noSpaceErrors("import")), areaBefore + 1);
  EXPECT_TRUE(stagingEmpty());
  EXPECT_EQ(committedName(1, base), "");

  // containerd's retry after space was freed: a fresh fetch, and the layer is imported.
  disk.freeFiller();
  ASSERT_EQ(importer.prepare("k8s.io/1/extract-3 " + chains[1], base, labelsFor(1)),
            Importer::Outcome::Imported);
  EXPECT_FALSE(committedName(1, base).empty());
  EXPECT_EQ(fetcher->opened, openedBefore + 2);
  EXPECT_TRUE(stagingEmpty());
}

// Waits until the prefetch of layer 1 has failed for lack of space.
void waitForNoSpaceFailure(double before) {
  auto& m = metrics::Metrics::daemon();
  for (int i = 0; i < 500 && metric(m.importsFailed("no_space")) == before; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(metric(m.importsFailed("no_space")), before + 1)
      << "the prefetch did not run out of space";
}

TEST_F(ImporterNoSpaceTest, APrefetchThatRanOutOfSpaceIsNotFetchedAgainIntoTheSameFullDisk) {
  double before = metric(metrics::Metrics::daemon().importsFailed("no_space"));
  disk.fill(2 << 20);
  Importer importer(store, fetcher, {});
  ASSERT_EQ(importer.prepare("k8s.io/1/extract-1 " + chains[0], "", labelsFor(0)),
            Importer::Outcome::Imported);
  std::string base = committedName(0, "");
  waitForNoSpaceFailure(before);
  // The same pull goes on to layer 1: its prefetch failed, the disk is as full as then.
  EXPECT_THROW(importer.prepare("k8s.io/1/extract-2 " + chains[1], base, labelsFor(1)),
               store::StoreError);
  EXPECT_EQ(fetcher->opened, 2) << "the layer was downloaded again into the full disk";
  EXPECT_EQ(importer.stats().fallbacks, 0u);
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(ImporterNoSpaceTest, AnEarlierPullsNoSpaceFailureIsFetchedAgainOnceSpaceIsFreed) {
  auto& m = metrics::Metrics::daemon();
  double failedBefore = metric(m.importsFailed("no_space"));
  disk.fill(2 << 20);
  Importer importer(store, fetcher, {});
  // The first pull: layer 0 fits; layer 1, prefetched alongside, does not. The pull then stops
  // (containerd never asks for layer 1 here).
  ASSERT_EQ(importer.prepare("k8s.io/1/extract-1 " + chains[0], "", labelsFor(0)),
            Importer::Outcome::Imported);
  std::string base = committedName(0, "");
  waitForNoSpaceFailure(failedBefore);
  EXPECT_TRUE(stagingEmpty());

  // Space is freed; the retried pull asks for layer 1. The stale failure must not fail it.
  disk.freeFiller();
  ASSERT_EQ(importer.prepare("k8s.io/2/extract-2 " + chains[1], base, labelsFor(1)),
            Importer::Outcome::Imported);
  EXPECT_FALSE(committedName(1, base).empty());
  EXPECT_EQ(fetcher->opened, 3);
  EXPECT_TRUE(stagingEmpty());
}

}  // namespace
}  // namespace snapimport::plugin
