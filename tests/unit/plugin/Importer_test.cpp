#include "plugin/Importer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "../store/TempDir.h"
#include "plugin/ChainId.h"
#include "store/DiskUsage.h"
#include "unpack/FileSource.h"
#include "unpack/Unpacker.h"

namespace snapimport::plugin {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

// Serves layers from local files: the same interface the registry fetcher implements, without a
// registry, so scheduling, verification and fallback are tested on real unpacking.
class LocalFetcher : public LayerFetcher {
 public:
  ImageLayers image;
  std::map<std::string, fs::path> blobs;
  std::atomic<int> opened{0};
  bool failDescribe = false;

  ImageLayers describe(const std::string&, const std::string&) override {
    if (failDescribe) throw FetchError("auth", "registry said 401 and we hold no credentials");
    return image;
  }
  std::unique_ptr<unpack::Source> open(const std::string&, const LayerDescriptor& d) override {
    ++opened;
    return std::make_unique<unpack::FileSource>(blobs.at(d.digest));
  }
  std::string hostOf(const std::string&) override { return "local"; }
};

constexpr const char* kGzip = "application/vnd.oci.image.layer.v1.tar+gzip";

class ImporterTest : public ::testing::Test {
 protected:
  testing::TempDir tmp;
  std::shared_ptr<store::SnapshotStore> store;
  std::shared_ptr<LocalFetcher> fetcher = std::make_shared<LocalFetcher>();
  std::vector<std::string> chains;
  std::string manifest = "sha256:" + std::string(64, 'e');

  void SetUp() override {
    store = std::make_shared<store::SnapshotStore>(tmp.path() / "root", store::OverlayOptions{});
    fs::path src = tmp.path() / "src";
    // Layer 0 creates a/ (0750) with a file; layer 1 adds a/y without an entry for a/, so a/ is
    // implicit there and must take 0750 from layer 0.
    sh("mkdir -p " + (src / "l0/a").string() + " " + (src / "l1/a").string());
    sh("echo one > " + (src / "l0/a/x").string() + " && chmod 0750 " + (src / "l0/a").string());
    sh("echo two > " + (src / "l1/a/y").string());
    sh("tar --sort=name -C " + (src / "l0").string() + " -cf " + (tmp.path() / "l0.tar").string() +
       " a a/x");
    sh("tar --sort=name -C " + (src / "l1").string() + " -cf " + (tmp.path() / "l1.tar").string() +
       " a/y");
    std::vector<std::string> diffIds;
    for (const char* l : {"l0", "l1"}) {
      fs::path tar = tmp.path() / (std::string(l) + ".tar");
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
            {kLabelImageRef, "127.0.0.1:5000/test/image:1"},
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

TEST_F(ImporterTest, ImportsEveryLayerOnTheExpectedParent) {
  Importer importer(store, fetcher, {});
  ASSERT_EQ(importer.prepare("ns/1/extract-1 " + chains[0], "", labelsFor(0)),
            Importer::Outcome::Imported);
  std::string base = committedName(0, "");
  ASSERT_FALSE(base.empty());
  ASSERT_EQ(importer.prepare("ns/2/extract-2 " + chains[1], base, labelsFor(1)),
            Importer::Outcome::Imported);
  std::string top = committedName(1, base);
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(store->stat(top).parent, base);
  EXPECT_EQ(store->stat(top).kind, store::Kind::Committed);
  // Prefetch: both layers were fetched by the first Prepare's schedule, each exactly once.
  EXPECT_EQ(fetcher->opened.load(), 2);
  auto dirs = store->chainFsDirs(top);
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_EQ(slurp(dirs[0] / "a/y"), "two\n");
  EXPECT_EQ(slurp(dirs[1] / "a/x"), "one\n");
  struct stat st {};
  ASSERT_EQ(stat((dirs[0] / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u) << "implicit directory did not take the lower layer's mode";
  // The usage recorded at commit is that of the committed tree: root, a/ and a/y on top.
  for (const auto& [name, dir] : {std::pair{top, dirs[0]}, std::pair{base, dirs[1]}}) {
    store::Usage recorded = store->usage(name), walked = store::diskUsage(dir);
    EXPECT_EQ(recorded.inodes, walked.inodes) << name;
    EXPECT_EQ(recorded.size, walked.size) << name;
  }
  EXPECT_EQ(store->usage(top).inodes, 3);
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(ImporterTest, SecondPullOfSameChainIsDeduplicated) {
  Importer importer(store, fetcher, {});
  ASSERT_EQ(importer.prepare("a/1/k", "", labelsFor(0)), Importer::Outcome::Imported);
  int opened = fetcher->opened.load();
  ASSERT_EQ(importer.prepare("b/7/k", "", labelsFor(0)), Importer::Outcome::Imported);
  EXPECT_EQ(importer.stats().deduplicated, 1u);
  EXPECT_EQ(fetcher->opened.load(), opened);
}

// A fetch that returns only once the staging filesystem was written back in the background: the
// running job counts as an unpack for the writeback.
class WaitsForWritebackFetcher : public LocalFetcher {
 public:
  std::shared_ptr<StagingWriteback> writeback;
  std::atomic<bool> sawSyncs{false};
  std::unique_ptr<unpack::Source> open(const std::string& ref, const LayerDescriptor& d) override {
    for (int i = 0; i < 5000 && writeback->syncs() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    sawSyncs = writeback->syncs() >= 2;
    return LocalFetcher::open(ref, d);
  }
};

TEST_F(ImporterTest, RunningJobsAreWrittenBackInTheBackground) {
  auto waiting = std::make_shared<WaitsForWritebackFetcher>();
  waiting->image = fetcher->image;
  waiting->blobs = fetcher->blobs;
  waiting->writeback =
      std::make_shared<StagingWriteback>(store->stagingDir(), std::chrono::milliseconds(5));
  ImporterOptions options;
  options.writeback = waiting->writeback;
  Importer importer(store, waiting, options);
  ASSERT_EQ(importer.prepare("a/1/k", "", labelsFor(0)), Importer::Outcome::Imported);
  EXPECT_TRUE(waiting->sawSyncs) << "no background sync while the layer job ran";
}

TEST_F(ImporterTest, NoLabelsFallsBack) {
  Importer importer(store, fetcher, {});
  EXPECT_EQ(importer.prepare("k", "", {}), Importer::Outcome::Fallback);
  EXPECT_EQ(fetcher->opened.load(), 0);
}

TEST_F(ImporterTest, UnsupportedMediaTypeFallsBack) {
  fetcher->image.layers[0].mediaType = "application/vnd.example.unknown";
  Importer importer(store, fetcher, {});
  EXPECT_EQ(importer.prepare("k", "", labelsFor(0)), Importer::Outcome::Fallback);
  EXPECT_EQ(committedName(0, ""), "");
}

TEST_F(ImporterTest, WrongChainForParentFallsBack) {
  Importer importer(store, fetcher, {});
  store::Labels l = labelsFor(0);
  l[kLabelSnapshotRef] = chains[1];  // containerd asks for a chain the config does not give
  EXPECT_EQ(importer.prepare("k", "", l), Importer::Outcome::Fallback);
}

TEST_F(ImporterTest, CorruptBlobFallsBackAndLeavesNothing) {
  // Same size, different bytes: the digest check at the end of the stream must catch it.
  fs::path bad = tmp.path() / "bad.gz";
  std::string bytes = slurp(fetcher->blobs[fetcher->image.layers[0].digest]);
  bytes[bytes.size() / 2] ^= 0x55;
  std::ofstream(bad, std::ios::binary) << bytes;
  fetcher->blobs[fetcher->image.layers[0].digest] = bad;
  Importer importer(store, fetcher, {});
  // Only this layer is listed, so no prefetched sibling sits in staging.
  store::Labels l = labelsFor(0);
  l[kLabelImageLayers] = fetcher->image.layers[0].digest;
  EXPECT_EQ(importer.prepare("k", "", l), Importer::Outcome::Fallback);
  EXPECT_EQ(committedName(0, ""), "");
  EXPECT_TRUE(stagingEmpty());
  size_t n = 0;
  store->list(store::Filter::parseAll({}), [&](const store::SnapshotInfo&) { ++n; });
  EXPECT_EQ(n, 0u);
}

TEST_F(ImporterTest, TheNextLayerDownloadsWhileALayerSyncs) {
  // One registry slot: the second layer can only start once the first gave its slot back. It
  // must not wait for the first one's sync to disk, which uses neither the registry nor the CPU.
  ImporterOptions options;
  options.maxJobsPerHost = 1;
  options.maxJobs = 2;
  std::atomic<int> syncs{0};
  std::atomic<bool> secondOpenedDuringFirstSync{false};
  options.syncStaged = [&](const fs::path& dir) {
    if (syncs.fetch_add(1) == 0) {
      for (int i = 0; i < 5000 && fetcher->opened.load() < 2; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      secondOpenedDuringFirstSync = fetcher->opened.load() >= 2;
    }
    unpack::syncFilesystem(dir);
  };
  Importer importer(store, fetcher, options);
  ASSERT_EQ(importer.prepare("ns/1/k", "", labelsFor(0)), Importer::Outcome::Imported);
  ASSERT_EQ(importer.prepare("ns/2/k", committedName(0, ""), labelsFor(1)),
            Importer::Outcome::Imported);
  EXPECT_TRUE(secondOpenedDuringFirstSync)
      << "the second layer's download waited for the first layer's sync";
  EXPECT_EQ(syncs.load(), 2) << "every layer is synced before its commit";
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(ImporterTest, AFailedSyncFallsBackAndLeavesNothing) {
  ImporterOptions options;
  options.syncStaged = [](const fs::path& dir) {
    throw unpack::UnpackError("syncfs on " + dir.string() + " failed: Input/output error");
  };
  Importer importer(store, fetcher, options);
  store::Labels l = labelsFor(0);
  l[kLabelImageLayers] = fetcher->image.layers[0].digest;
  EXPECT_EQ(importer.prepare("k", "", l), Importer::Outcome::Fallback);
  EXPECT_EQ(committedName(0, ""), "") << "a layer that never reached the disk was committed";
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(ImporterTest, RegistryWithoutCredentialsFallsBack) {
  fetcher->failDescribe = true;
  Importer importer(store, fetcher, {});
  EXPECT_EQ(importer.prepare("k", "", labelsFor(0)), Importer::Outcome::Fallback);
}

TEST_F(ImporterTest, UnclaimedStagedLayersAreCleanedUp) {
  Importer importer(store, fetcher, {});
  ASSERT_EQ(importer.prepare("k", "", labelsFor(0)), Importer::Outcome::Imported);
  // Layer 1 was prefetched but its Prepare never comes (the pull was cancelled).
  for (int i = 0; i < 200 && fetcher->opened.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (int i = 0; i < 200 && stagingEmpty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(importer.cleanupStaged(false), 0u);  // still within the grace period
  for (int i = 0; i < 200 && importer.cleanupStaged(true) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(stagingEmpty());
}

TEST(ImportLabels, NeedsAllFourWellFormed) {
  std::string d = "sha256:" + std::string(64, 'a');
  store::Labels l = {{kLabelSnapshotRef, d},
                     {kLabelImageRef, "r/x:1"},
                     {kLabelManifestDigest, d},
                     {kLabelLayerDigest, d}};
  auto parsed = ImportLabels::from(l);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->imageLayers, std::vector<std::string>{d});
  l[kLabelLayerDigest] = "sha256:../../etc";
  EXPECT_FALSE(ImportLabels::from(l));
  l.erase(kLabelLayerDigest);
  EXPECT_FALSE(ImportLabels::from(l));
}

TEST(ChainId, FollowsTheOciDefinition) {
  std::string a = "sha256:" + std::string(64, '1'), b = "sha256:" + std::string(64, '2');
  auto c = chainIds({a, b});
  EXPECT_EQ(c[0], a);
  EXPECT_EQ(c[1], sha256Digest(a + " " + b));
  EXPECT_EQ(sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace snapimport::plugin

namespace snapimport::plugin {
namespace {

// A fetcher whose streams verify digests themselves: the unpacker must not hash again, and the
// import must still succeed on the size and diff_id checks.
class VerifyingFetcher : public LocalFetcher {
 public:
  bool verifiesDigests() const override { return true; }
};

TEST_F(ImporterTest, SourcesThatVerifyAreNotHashedTwice) {
  auto verifying = std::make_shared<VerifyingFetcher>();
  verifying->image = fetcher->image;
  verifying->blobs = fetcher->blobs;
  Importer importer(store, verifying, {});
  ASSERT_EQ(importer.prepare("k", "", labelsFor(0)), Importer::Outcome::Imported);
  EXPECT_FALSE(committedName(0, "").empty());
}

}  // namespace
}  // namespace snapimport::plugin
