// Layers staged from containerd's writes, through the real content and snapshot services over an
// in-process channel: the Write stream tees into the unpack pipeline, a Prepare naming the chain
// commits the staged tree and answers AlreadyExists, and everything that is not exactly right
// leaves no snapshot and no staging behind.
#include "plugin/WriteImporter.h"

#include <sys/stat.h>

#include <future>

#include "WriteImportFixture.h"
#include "common/ImportProgress.h"

namespace snapimport::plugin::test {
namespace {

TEST_F(WriteImporterTest, CommitsLayersStagedFromTheirWritesOnTheirParents) {
  writeImage();
  for (size_t i = 0; i < layers.size(); ++i) ASSERT_TRUE(writeLayer(i).ok());
  std::string parent;
  for (size_t i = 0; i < layers.size(); ++i) {
    grpc::Status st = prepare(chains[i], parent);
    ASSERT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << i << ": " << st.error_message();
    std::string name = committed(chains[i], parent);
    ASSERT_FALSE(name.empty()) << i;
    EXPECT_EQ(snapshots->stat(name).parent, parent);
    parent = name;
  }
  auto dirs = snapshots->chainFsDirs(parent);
  ASSERT_EQ(dirs.size(), 3u);
  EXPECT_EQ(fs::file_size(dirs[0] / "b/big"), 3000000u);
  EXPECT_EQ(slurp(dirs[1] / "a/y"), "two\n");  // zstd, detected from its first bytes
  EXPECT_EQ(slurp(dirs[2] / "a/x"), "one\n");
  struct stat st {};
  ASSERT_EQ(stat((dirs[1] / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u) << "implicit directory did not take the lower layer's mode";
  EXPECT_EQ(writes->stats().imported, 3u);
  EXPECT_TRUE(stagingEmpty());
  EXPECT_EQ(writes->pending(), 0u);
  // The blobs are in the content store as containerd wrote them.
  for (const auto& l : layers) EXPECT_TRUE(content->contains(store::Digest::parse(l.digest)));
}

TEST_F(WriteImporterTest, PrepareWaitsForALayerStillStreamingIn) {
  writeImage();
  std::string base;
  ASSERT_NO_FATAL_FAILURE(commitBottomLayerFromItsWrite(&base));
  const std::string& blob = layers[2].blob;
  auto w = open("layer-" + layers[2].digest, blob);
  ASSERT_TRUE(send(*w, blob.substr(0, blob.size() / 2)));
  // Layer 1 (below layer 2 in the image) by containerd itself: it has no write.
  ASSERT_TRUE(prepare(chains[1], base).ok()) << "a layer nobody wrote must be prepared as usual";
  std::string mid = "k8s.io/mid";
  commitLast(mid, chains[1]);
  auto pending = std::async(std::launch::async, [&] { return prepare(chains[2], mid); });
  EXPECT_EQ(pending.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "Prepare did not wait for the layer still streaming in";
  ASSERT_TRUE(send(*w, blob.substr(blob.size() / 2)));
  ASSERT_TRUE(commit(*w, static_cast<int64_t>(blob.size()), layers[2].digest).ok());
  grpc::Status st = pending.get();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << st.error_message();
  EXPECT_FALSE(committed(chains[2], mid).empty());
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(WriteImporterTest, PrepareWaitsForAWriteThatHasNotBegunWhenTheLayerBelowIsWritten) {
  writeImage();
  std::string base;
  ASSERT_NO_FATAL_FAILURE(commitBottomLayerFromItsWrite(&base));
  auto pending = std::async(std::launch::async, [&] { return prepare(chains[1], base); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(writeLayer(1).ok());
  EXPECT_EQ(pending.get().error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

// A cancelled pull: containerd's Prepare gives up while snapimport waits for the layer. containerd
// has rolled back its record of that Prepare, so a snapshot made for it would be known to nobody.
TEST_F(WriteImporterTest, APrepareWhoseClientLeavesWhileTheLayerStreamsInCreatesNothing) {
  writeImage();
  std::string base;
  ASSERT_NO_FATAL_FAILURE(commitBottomLayerFromItsWrite(&base));
  const std::string& blob = layers[1].blob;
  auto w = open("layer-" + layers[1].digest, blob);
  ASSERT_TRUE(send(*w, blob.substr(0, blob.size() / 2)));
  std::string key;
  EXPECT_EQ(prepare(chains[1], base, std::chrono::milliseconds(300), &key).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server notices within its 100 ms wait slice; give it that and a margin.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_THROW(snapshots->stat(key), std::exception)
      << "an active snapshot was made for a Prepare whose client had gone";
  EXPECT_TRUE(committed(chains[1], base).empty());
  EXPECT_EQ(writes->stats().fallbacks, 0u) << "a cancelled Prepare is no fallback";
  // The layer goes on streaming in; the pull's retry takes it.
  ASSERT_TRUE(send(*w, blob.substr(blob.size() / 2)));
  ASSERT_TRUE(commit(*w, static_cast<int64_t>(blob.size()), layers[1].digest).ok());
  grpc::Status st = prepare(chains[1], base);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << st.error_message();
}

TEST_F(WriteImporterTest, APrepareWhoseClientLeavesBeforeTheWriteBeginsCreatesNothing) {
  writeImage();
  std::string base;
  ASSERT_NO_FATAL_FAILURE(commitBottomLayerFromItsWrite(&base));
  std::string key;
  EXPECT_EQ(prepare(chains[1], base, std::chrono::milliseconds(200), &key).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_THROW(snapshots->stat(key), std::exception)
      << "an active snapshot was made for a Prepare whose client had gone";
  // Not taken for a layer containerd applies itself: its write is still unpacked for the retry.
  ASSERT_TRUE(writeLayer(1).ok());
  grpc::Status st = prepare(chains[1], base);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << st.error_message();
}

// `ctr images pull` on 1.6/1.7: every blob is fetched before the first Prepare, and that Prepare
// carries no snapshot.ref. Trees unpacked from those writes would only cost the pull CPU and disk.
TEST_F(WriteImporterTest, LayerWritesBeforeContainerdsUnpackerBeginsAreNotUnpacked) {
  WriteImportOptions o = options();
  o.teeWithoutUnpacker = false;
  startServices(o);
  writeImage();
  ASSERT_TRUE(writeLayer(0).ok());
  ASSERT_TRUE(writeLayer(1).ok());
  EXPECT_EQ(writes->stats().tees, 0u);
  EXPECT_TRUE(stagingEmpty());
  // Once the diff service is in use, it takes such trees.
  writes->keepDeclinedLayers();
  ASSERT_TRUE(writeLayer(2).ok());
  settle();
  EXPECT_EQ(writes->stats().tees, 1u);
}

// CRI pulls and 2.x's transfer service: the unpacker Prepares the bottom layer (applied by
// containerd), and only then fetches; the layers above it are unpacked from their writes.
TEST_F(WriteImporterTest, LayerWritesAfterTheUnpackersFirstPrepareAreUnpacked) {
  WriteImportOptions o = options();
  o.teeWithoutUnpacker = false;
  startServices(o);
  writeImage();
  ASSERT_TRUE(prepare(chains[0], "").ok());
  commitLast("k8s.io/base", chains[0]);
  ASSERT_TRUE(writeLayer(0).ok());
  ASSERT_TRUE(writeLayer(1).ok());
  settle();
  EXPECT_EQ(writes->stats().tees, 1u) << "only layer 1: layer 0 is containerd's own";
  grpc::Status st = prepare(chains[1], "k8s.io/base");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << st.error_message();
}

// A corrupt layer fails the pull's fetch, so the writes of the layers above may never begin;
// containerd 2.x waits for the Prepare of the next layer before it reports the failure.
TEST_F(WriteImporterTest, APrepareDoesNotWaitForAWriteOnceAnotherLayerOfTheImageFailed) {
  WriteImportOptions o = options();
  o.startWait = std::chrono::seconds(30);
  startServices(o);
  writeImage();
  std::string base;
  ASSERT_NO_FATAL_FAILURE(commitBottomLayerFromItsWrite(&base));
  std::string corrupt = layers[2].blob;
  corrupt[corrupt.size() / 2] ^= 0x55;
  EXPECT_FALSE(writeBlob("layer-" + layers[2].digest, corrupt, layers[2].digest).ok());
  settle();
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(prepare(chains[1], base).ok()) << "Prepare must fall back to an ordinary snapshot";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5))
      << "Prepare waited for a write the failing pull will not make";
}

TEST_F(WriteImporterTest, TheBottomLayerOfAnImageNobodyWritesIsNotWaitedFor) {
  writeImage();
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(prepare(chains[0], "").ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
}

TEST_F(WriteImporterTest, ALayerContainerdAppliesItselfIsNotUnpackedWhenItsWriteFollows) {
  writeImage();
  ASSERT_TRUE(prepare(chains[0], "").ok());  // containerd's unpacker: first Prepare, then fetch
  ASSERT_TRUE(writeLayer(0).ok());
  ASSERT_TRUE(writeLayer(1).ok());
  settle();
  EXPECT_EQ(writes->stats().tees, 1u) << "layer 0 was unpacked although nobody would claim it";
  EXPECT_EQ(writes->pending(), 1u);
  // `snapimport status`: layer 0 is containerd's, even though its Prepare came before the image
  // was shown and its write before any tee (it stayed "queued" then).
  const std::string manifest = sha256Digest(manifestBytes);
  std::optional<progress::ImageProgress> image;
  for (const auto& img : progress::ImportProgress::daemon().snapshot())
    if (img.manifest == manifest) image = img;
  ASSERT_TRUE(image) << "the image is not in the status";
  ASSERT_FALSE(image->layers.empty());
  EXPECT_EQ(image->layers[0].state, progress::LayerState::Fallback);
}

TEST_F(WriteImporterTest, ABlobFailingItsDigestLeavesNoSnapshotAndNoStaging) {
  writeImage();
  std::string corrupt = layers[0].blob;
  corrupt[corrupt.size() / 2] ^= 0x55;
  grpc::Status st = writeBlob("layer-" + layers[0].digest, corrupt, layers[0].digest);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  settle();
  EXPECT_TRUE(prepare(chains[0], "").ok()) << "Prepare must fall back to an ordinary snapshot";
  EXPECT_TRUE(committed(chains[0], "").empty());
  EXPECT_TRUE(stagingEmpty());
  EXPECT_EQ(writes->pending(), 0u);
}

TEST_F(WriteImporterTest, ABlobThatIsNoLayerFallsBack) {
  writeImage();
  std::string garbage(100000, 'x');
  garbage[0] = '\x1f';
  garbage[1] = '\x8b';  // claims to be gzip
  ASSERT_TRUE(writeBlob("layer-" + sha256Digest(garbage), garbage).ok())
      << "the content write itself must succeed";
  settle();
  EXPECT_EQ(writes->stats().failed, 1u);
  EXPECT_TRUE(stagingEmpty());
  EXPECT_EQ(writes->pending(), 0u);
}

TEST_F(WriteImporterTest, ADiffIdTheConfigDoesNotGiveIsNotCommitted) {
  // The config claims layer 1 unpacks to layer 2's diff_id: containerd computes its chain IDs
  // from that, and the staged tree of layer 1 cannot give them.
  std::vector<std::string> wrong = {layers[0].diffId, layers[2].diffId, layers[2].diffId};
  writeImage(wrong);
  auto wrongChains = chainIds(wrong);
  ASSERT_TRUE(writeLayer(0).ok());
  ASSERT_TRUE(writeLayer(1).ok());
  ASSERT_EQ(prepare(wrongChains[0], "").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  std::string base = committed(wrongChains[0], "");
  grpc::Status st = prepare(wrongChains[1], base);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(committed(wrongChains[1], base).empty());
  EXPECT_TRUE(stagingEmpty());
  EXPECT_EQ(writes->pending(), 0u);
}

TEST_F(WriteImporterTest, AResumedWriteIsNotImported) {
  writeImage();
  const std::string& blob = layers[0].blob;
  std::string ref;
  {
    auto w = open("layer-" + layers[0].digest, blob);
    ref = w->ref;
    ASSERT_TRUE(send(*w, blob.substr(0, blob.size() / 2)));
    w->s->WritesDone();
    EXPECT_TRUE(w->s->Finish().ok());  // the client went away; the ingest keeps its bytes
  }
  settle();
  EXPECT_EQ(writes->pending(), 0u) << "the abandoned tee is still registered";
  Writer w2;
  w2.s = cs->Write(&w2.ctx);
  contentv1::WriteContentRequest r;
  r.set_action(contentv1::STAT);
  r.set_ref(ref);
  r.set_expected(layers[0].digest);
  contentv1::WriteContentResponse resp;
  ASSERT_TRUE(w2.s->Write(r));
  ASSERT_TRUE(w2.s->Read(&resp));
  w2.offset = resp.offset();
  ASSERT_EQ(w2.offset, static_cast<int64_t>(blob.size() / 2))
      << "the ingest did not keep its bytes";
  ASSERT_TRUE(send(w2, blob.substr(static_cast<size_t>(w2.offset))));
  ASSERT_TRUE(commit(w2, static_cast<int64_t>(blob.size()), layers[0].digest).ok());
  EXPECT_TRUE(prepare(chains[0], "").ok());
  EXPECT_TRUE(committed(chains[0], "").empty());
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(WriteImporterTest, OtherServicesTakeAStagedTreeByDiffId) {
  writeImage();
  ASSERT_TRUE(writeLayer(1).ok());
  WriteImporter::LayerQuery q{"", layers[1].diffId};
  EXPECT_TRUE(writes->has(q));
  EXPECT_FALSE(writes->has({layers[1].digest, layers[0].diffId}))
      << "blob and diff_id must both match";
  auto staged = writes->take(q, std::chrono::seconds(10));
  ASSERT_TRUE(staged);
  EXPECT_EQ(staged->blobDigest, layers[1].digest);
  EXPECT_EQ(staged->diffId, layers[1].diffId);
  EXPECT_EQ(slurp(staged->dir / "fs/a/y"), "two\n");
  EXPECT_FALSE(writes->has(q)) << "a taken tree belongs to its taker";
  EXPECT_FALSE(writes->take(q, std::chrono::milliseconds(10)));
  fs::remove_all(staged->dir);
}

TEST_F(WriteImporterTest, UnclaimedStagedLayersAreRemovedByCleanup) {
  WriteImportOptions o = options();
  o.stagedGrace = std::chrono::seconds(0);
  startServices(o);
  writeImage();
  ASSERT_TRUE(writeLayer(2).ok());
  settle();
  EXPECT_FALSE(stagingEmpty());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  grpc::ClientContext ctx;
  snapshotsv1::CleanupRequest req;
  google::protobuf::Empty e;
  ASSERT_TRUE(ss->Cleanup(&ctx, req, &e).ok());
  EXPECT_TRUE(stagingEmpty());
  EXPECT_EQ(writes->pending(), 0u);
}

// containerd's GC deletes the blobs of a failed pull: their staged trees go with them.
TEST_F(WriteImporterTest, AStagedLayerGoesWhenContainerdDeletesItsBlob) {
  writeImage();
  ASSERT_TRUE(writeLayer(2).ok());
  settle();
  ASSERT_FALSE(stagingEmpty());
  grpc::ClientContext ctx;
  contentv1::DeleteContentRequest req;
  req.set_digest(layers[2].digest);
  google::protobuf::Empty e;
  ASSERT_TRUE(cs->Delete(&ctx, req, &e).ok());
  EXPECT_TRUE(stagingEmpty());
  EXPECT_FALSE(writes->has({layers[2].digest, ""}));
}

TEST_F(WriteImporterTest, AtMostMaxConcurrentUnpacksRun) {
  WriteImportOptions o = options();
  o.maxConcurrent = 1;
  startServices(o);
  writeImage();
  auto w = open("layer-" + layers[2].digest, layers[2].blob);
  ASSERT_TRUE(send(*w, layers[2].blob.substr(0, 1000)));
  ASSERT_TRUE(writeLayer(0).ok()) << "a write past the limit goes on without a tee";
  EXPECT_EQ(writes->stats().tees, 1u);
  ASSERT_TRUE(send(*w, layers[2].blob.substr(1000)));
  ASSERT_TRUE(commit(*w, static_cast<int64_t>(layers[2].blob.size()), layers[2].digest).ok());
  EXPECT_TRUE(prepare(chains[0], "").ok()) << "layer 0 had no tee, so containerd applies it";
}

TEST_F(WriteImporterTest, OffTurnsTheTeeOff) {
  WriteImportOptions o = options();
  o.maxConcurrent = 0;
  startServices(o);
  writeImage();
  ASSERT_TRUE(writeLayer(0).ok());
  EXPECT_EQ(writes->stats().tees, 0u);
  EXPECT_TRUE(prepare(chains[0], "").ok());
}

}  // namespace
}  // namespace snapimport::plugin::test
