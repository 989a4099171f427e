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
  std::string base;  // layer 0's committed snapshot, once importBase() ran

  void SetUp() override {
    if (!disk.mounted()) GTEST_SKIP() << "cannot mount a small tmpfs: " << disk.whyNot();
    store = std::make_shared<store::SnapshotStore>(disk.path() / "root", store::OverlayOptions{});
    // Layer 0: one small file. Layer 1: 12 MiB of zeros, a few KiB to download: the space runs
    // out while it unpacks. Layer 2: 6 MiB of random bytes, as much to download as to unpack.
    const char* contents[] = {"echo small > small.txt", "head -c 12582912 /dev/zero > zeros.bin",
                              "head -c 6291456 /dev/urandom > random.bin"};
    std::vector<std::string> diffIds;
    for (int i = 0; i < 3; ++i) {
      // Not "l" + std::to_string(i): GCC 12 at -O2 warns (-Wrestrict, a false positive, GCC
      // PR 105651) on a literal prepended to a temporary string.
      std::string name = "l";
      name += std::to_string(i);
      fs::path dir = src.path() / name;
      fs::create_directories(dir);
      sh("cd " + dir.string() + " && " + contents[i]);
      fs::path tar = src.path() / (name + ".tar");
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

  // Labels of layer i on top of layer 0 (or of layer 0 itself), prefetching `also` with it. The
  // chain IDs of layers 1 and 2 are taken on layer 0 alone (both sit right on the base here).
  store::Labels labelsFor(size_t i, const std::vector<size_t>& also = {}) {
    std::string layers = fetcher->image.layers[i].digest;
    for (size_t j : also) layers += "," + fetcher->image.layers[j].digest;
    return {{kLabelSnapshotRef, chainOf(i)},
            {kLabelImageRef, "127.0.0.1:5000/test/full:1"},
            {kLabelManifestDigest, manifest},
            {kLabelLayerDigest, fetcher->image.layers[i].digest},
            {kLabelImageLayers, layers}};
  }
  std::string chainOf(size_t i) {
    return i == 0 ? chains[0] : chainIdOf(chains[0], fetcher->image.diffIds[i]);
  }
  Importer::Outcome prepare(Importer& importer, size_t i, const store::Labels& labels) {
    return importer.prepare("k8s.io/1/extract-" + std::to_string(i) + " " + chainOf(i),
                            i == 0 ? "" : base, labels);
  }
  // The StoreError a Prepare throws (a test failure if it does not).
  store::StoreError prepareError(Importer& importer, size_t i) {
    try {
      prepare(importer, i, labelsFor(i));
    } catch (const store::StoreError& e) {
      return e;
    }
    ADD_FAILURE() << "the Prepare of layer " << i << " on a full disk did not fail";
    return store::StoreError(store::ErrorClass::Internal, "");
  }
  void importBase(Importer& importer, const std::vector<size_t>& also = {}) {
    ASSERT_EQ(prepare(importer, 0, labelsFor(0, also)), Importer::Outcome::Imported);
    base = store->findCommitted(kLabelSnapshotRef, chains[0], "")->name;
  }
  bool committed(size_t i) {
    return store->findCommitted(kLabelSnapshotRef, chainOf(i), base).has_value();
  }
  bool stagingEmpty() { return fs::is_empty(store->stagingDir()); }
  // Waits until a prefetch has failed for lack of space.
  void waitForNoSpaceFailure(double before) {
    auto& c = metrics::Metrics::daemon().importsFailed("no_space");
    for (int i = 0; i < 500 && metric(c) == before; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_EQ(metric(c), before + 1) << "the prefetch did not run out of space";
  }
};

TEST_F(ImporterNoSpaceTest,
       ALayerThatRunsOutOfSpaceWhileUnpackingFailsThePrepareInsteadOfFallingBack) {
  auto& m = metrics::Metrics::daemon();
  double failedBefore = metric(m.importsFailed("no_space"));
  double areaBefore = metric(m.noSpaceErrors("import"));
  double fallbacksBefore = metric(m.fallbacks("import_failed"));
  Importer importer(store, fetcher, {});
  importBase(importer);
  disk.fill(10 << 20);

  store::StoreError e = prepareError(importer, 1);
  EXPECT_EQ(e.errorClass(), store::ErrorClass::ResourceExhausted);
  std::string msg = e.what();
  EXPECT_NE(msg.find(store->stagingDir().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find(kNoSpace), std::string::npos) << msg;
  EXPECT_NE(msg.find(fetcher->image.layers[1].digest), std::string::npos) << msg;
  EXPECT_EQ(fetcher->opened, 2) << "the layer was not fetched once";
  EXPECT_EQ(importer.stats().fallbacks, 0u);
  EXPECT_EQ(metric(m.fallbacks("import_failed")), fallbacksBefore);
  EXPECT_EQ(metric(m.importsFailed("no_space")), failedBefore + 1);
  EXPECT_EQ(metric(m.noSpaceErrors("import")), areaBefore + 1);
  EXPECT_TRUE(stagingEmpty());
  EXPECT_FALSE(committed(1));

  // containerd's retry after space was freed: a fresh fetch, and the layer is imported.
  disk.freeFiller();
  ASSERT_EQ(prepare(importer, 1, labelsFor(1)), Importer::Outcome::Imported);
  EXPECT_TRUE(committed(1));
  EXPECT_EQ(fetcher->opened, 3);
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(ImporterNoSpaceTest, ALayerWhoseDownloadAloneDoesNotFitIsNotDownloaded) {
  Importer importer(store, fetcher, {});
  importBase(importer);
  disk.fill(10 << 20);  // 6 MiB to download, 10 MiB free of which 8 MiB stay for the database

  store::StoreError e = prepareError(importer, 2);
  EXPECT_EQ(e.errorClass(), store::ErrorClass::ResourceExhausted);
  std::string msg = e.what();
  EXPECT_NE(msg.find(store->stagingDir().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find(kNoSpace), std::string::npos) << msg;
  EXPECT_EQ(fetcher->opened, 1) << "the layer was downloaded although it could not fit";
  EXPECT_TRUE(stagingEmpty());

  disk.freeFiller();
  ASSERT_EQ(prepare(importer, 2, labelsFor(2)), Importer::Outcome::Imported);
  EXPECT_EQ(fetcher->opened, 2);
}

TEST_F(ImporterNoSpaceTest, APrefetchThatRanOutOfSpaceIsNotFetchedAgainIntoTheSameFullDisk) {
  double before = metric(metrics::Metrics::daemon().importsFailed("no_space"));
  disk.fill(10 << 20);
  Importer importer(store, fetcher, {});
  importBase(importer, {1});  // layer 1 is prefetched alongside and runs out of space
  waitForNoSpaceFailure(before);
  // The same pull goes on to layer 1: its prefetch failed, the disk is as full as then.
  store::StoreError e = prepareError(importer, 1);
  EXPECT_EQ(e.errorClass(), store::ErrorClass::ResourceExhausted);
  EXPECT_EQ(fetcher->opened, 2) << "the layer was downloaded again into the full disk";
  EXPECT_EQ(importer.stats().fallbacks, 0u);
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(ImporterNoSpaceTest, AnEarlierPullsNoSpaceFailureIsFetchedAgainOnceSpaceIsFreed) {
  double before = metric(metrics::Metrics::daemon().importsFailed("no_space"));
  disk.fill(10 << 20);
  Importer importer(store, fetcher, {});
  // The first pull: layer 0 fits; layer 1, prefetched alongside, does not. That pull then stops
  // (containerd never asks for layer 1 here).
  importBase(importer, {1});
  waitForNoSpaceFailure(before);
  EXPECT_TRUE(stagingEmpty());

  // Space is freed; the next pull asks for layer 1. The old failure must not fail it.
  disk.freeFiller();
  ASSERT_EQ(prepare(importer, 1, labelsFor(1)), Importer::Outcome::Imported);
  EXPECT_TRUE(committed(1));
  EXPECT_EQ(fetcher->opened, 3);
  EXPECT_TRUE(stagingEmpty());
}

}  // namespace
}  // namespace snapimport::plugin
