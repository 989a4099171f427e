// The diff service over an in-process channel, called as containerd's diff proxy calls it: the
// mounts of an active snapshot and a layer descriptor. It applies layers into snapimport's own
// snapshots (from the tree unpacked from the blob's write, or from the content store), answers
// NotImplemented for anything else so containerd's next differ runs, and leaves the snapshot
// empty and no staging behind when it fails.
#include "plugin/DiffService.h"

#include <sys/stat.h>

#include <optional>

#include "WriteImportFixture.h"
#include "common/ImportProgress.h"
#include "common/Metrics.h"

namespace snapimport::plugin::test {
namespace {

class DiffServiceTest : public WriteImporterTest {
 protected:
  // A plain Prepare (no snapshot.ref: containerd's image.Unpack), returning its mounts.
  google::protobuf::RepeatedPtrField<containerd::types::Mount> prepareActive(
      const std::string& key, const std::string& parent = "") {
    grpc::ClientContext ctx;
    snapshotsv1::PrepareSnapshotRequest req;
    req.set_key(key);
    req.set_parent(parent);
    snapshotsv1::PrepareSnapshotResponse resp;
    grpc::Status st = ss->Prepare(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.mounts();
  }
  grpc::Status commitActive(const std::string& name, const std::string& key) {
    grpc::ClientContext ctx;
    snapshotsv1::CommitSnapshotRequest req;
    req.set_name(name);
    req.set_key(key);
    google::protobuf::Empty e;
    return ss->Commit(&ctx, req, &e);
  }
  grpc::Status apply(const Layer& l,
                     const google::protobuf::RepeatedPtrField<containerd::types::Mount>& mounts,
                     diffv1::ApplyResponse* resp, const std::string& payloadKey = "",
                     const std::string& mediaType = "") {
    grpc::ClientContext ctx;
    diffv1::ApplyRequest req;
    req.mutable_diff()->set_media_type(mediaType.empty() ? l.mediaType : mediaType);
    req.mutable_diff()->set_digest(l.digest);
    req.mutable_diff()->set_size(static_cast<int64_t>(l.blob.size()));
    *req.mutable_mounts() = mounts;
    if (!payloadKey.empty()) (*req.mutable_payloads())[payloadKey].set_type_url("x");
    return ds->Apply(&ctx, req, resp);
  }
  // A blob in the content store that no tee saw (its ref is no "layer-" ingest).
  void storeUnteed(const Layer& l) { ASSERT_TRUE(writeBlob("blob-" + l.digest, l.blob).ok()); }
  fs::path fsOf(const google::protobuf::RepeatedPtrField<containerd::types::Mount>& mounts) {
    const auto& m = mounts[0];
    if (m.type() == "bind") return m.source();
    for (const auto& o : m.options())
      if (o.rfind("upperdir=", 0) == 0) return o.substr(9);
    return {};
  }
};

TEST_F(DiffServiceTest, AppliesALayerFromTheContentStoreIntoAnActiveSnapshot) {
  storeUnteed(layers[0]);
  auto mounts = prepareActive("k/0");
  ASSERT_EQ(mounts[0].type(), "bind");
  diffv1::ApplyResponse resp;
  grpc::Status st = apply(layers[0], mounts, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.applied().digest(), layers[0].diffId) << "the applied digest must be the diff_id";
  EXPECT_EQ(resp.applied().media_type(), "application/vnd.oci.image.layer.v1.tar");
  EXPECT_EQ(static_cast<uint64_t>(resp.applied().size()), fs::file_size(tmp.path() / "l0.tar"));
  EXPECT_EQ(slurp(fsOf(mounts) / "a/x"), "one\n");
  EXPECT_TRUE(stagingEmpty());
  EXPECT_TRUE(commitActive("c0", "k/0").ok());
}

TEST_F(DiffServiceTest, TakesTheTreeUnpackedFromTheBlobsWriteAndFixesImplicitDirs) {
  storeUnteed(layers[0]);
  auto m0 = prepareActive("k/0");
  diffv1::ApplyResponse r0;
  ASSERT_TRUE(apply(layers[0], m0, &r0).ok());
  ASSERT_TRUE(commitActive("c0", "k/0").ok());
  ASSERT_TRUE(writeLayer(1).ok());  // a "layer-" ingest: teed and unpacked as it streams in
  settle();
  ASSERT_TRUE(writes->has({layers[1].digest, ""}));
  auto m1 = prepareActive("k/1", "c0");
  ASSERT_EQ(m1[0].type(), "overlay");
  diffv1::ApplyResponse r1;
  grpc::Status st = apply(layers[1], m1, &r1);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r1.applied().digest(), layers[1].diffId);
  EXPECT_FALSE(writes->has({layers[1].digest, ""})) << "the staged tree was not taken";
  EXPECT_EQ(slurp(fsOf(m1) / "a/y"), "two\n");
  struct stat sb {};
  ASSERT_EQ(stat((fsOf(m1) / "a").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 07777, 0750u) << "implicit directory did not take the lower layer's mode";
  EXPECT_TRUE(stagingEmpty());
  EXPECT_EQ(writes->pending(), 0u);
}

TEST_F(DiffServiceTest, AnythingNotItsOwnIsLeftToContainerdsNextDiffer) {
  storeUnteed(layers[0]);
  auto mounts = prepareActive("k/0");
  diffv1::ApplyResponse resp;
  // Another snapshotter's directory.
  google::protobuf::RepeatedPtrField<containerd::types::Mount> foreign = mounts;
  fs::create_directories(tmp.path() / "elsewhere/fs");
  foreign[0].set_source((tmp.path() / "elsewhere/fs").string());
  EXPECT_EQ(apply(layers[0], foreign, &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // A read-only mount (a view).
  google::protobuf::RepeatedPtrField<containerd::types::Mount> ro = mounts;
  ro[0].clear_options();
  ro[0].add_options("ro");
  EXPECT_EQ(apply(layers[0], ro, &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // A media type snapimport does not unpack (an encrypted layer).
  EXPECT_EQ(
      apply(layers[0], mounts, &resp, "", "application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
          .error_code(),
      grpc::StatusCode::UNIMPLEMENTED);
  // A stream processor that may apply to this layer.
  EXPECT_EQ(apply(layers[0], mounts, &resp, "com.example.processor").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  // A blob that is not in the content store.
  EXPECT_EQ(apply(layers[2], mounts, &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(fs::is_empty(fsOf(mounts))) << "a declined Apply wrote into the snapshot";
  EXPECT_TRUE(fs::is_empty(tmp.path() / "elsewhere/fs"));
  // containerd 1.7's CRI sends the ocicrypt decoders' payloads on every Apply.
  grpc::Status st = apply(layers[0], mounts, &resp, "io.containerd.ocicrypt.decoder.v1.tar.gzip");
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(slurp(fsOf(mounts) / "a/x"), "one\n");
}

TEST_F(DiffServiceTest, ACorruptBlobLeavesTheSnapshotEmptyAndNoStaging) {
  Layer bad = layers[0];
  bad.blob = std::string("\x1f\x8b\x08\x00", 4) + std::string(4096, 'x');  // gzip magic, no tar
  bad.digest = sha256Digest(bad.blob);
  storeUnteed(bad);
  auto mounts = prepareActive("k/0");
  diffv1::ApplyResponse resp;
  grpc::Status st = apply(bad, mounts, &resp);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << "a corrupt layer is an error, not a reason to try another differ";
  EXPECT_TRUE(fs::is_empty(fsOf(mounts)));
  EXPECT_TRUE(stagingEmpty());
}

TEST_F(DiffServiceTest, ASnapshotThatIsNotEmptyIsNotOverwritten) {
  storeUnteed(layers[0]);
  storeUnteed(layers[2]);
  auto mounts = prepareActive("k/0");
  diffv1::ApplyResponse resp;
  ASSERT_TRUE(apply(layers[0], mounts, &resp).ok());
  grpc::Status st = apply(layers[2], mounts, &resp);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find("not empty"), std::string::npos) << st.error_message();
  EXPECT_EQ(slurp(fsOf(mounts) / "a/x"), "one\n");
  EXPECT_FALSE(fs::exists(fsOf(mounts) / "b"));
  EXPECT_TRUE(stagingEmpty());
}

// `snapimport status` shows the applied layers under their image (source content, via apply),
// the image ends with its top layer, and snapimport_diff_applies_total counts where each came from.
TEST_F(DiffServiceTest, StatusAndMetricsShowTheApplies) {
  auto& metrics = metrics::Metrics::daemon();
  const double fromStore = metrics.diffApplies("store").Value();
  const double fromWrite = metrics.diffApplies("write").Value();
  writeImage();
  const std::string manifest = sha256Digest(manifestBytes);
  auto imageNow = [&]() -> std::optional<progress::ImageProgress> {
    for (const auto& img : progress::ImportProgress::daemon().snapshot())
      if (img.manifest == manifest) return img;
    return std::nullopt;
  };
  storeUnteed(layers[0]);
  auto m0 = prepareActive("k/0");
  diffv1::ApplyResponse resp;
  ASSERT_TRUE(apply(layers[0], m0, &resp).ok());
  ASSERT_TRUE(commitActive("c0", "k/0").ok());
  ASSERT_TRUE(writeLayer(1).ok());
  settle();
  auto m1 = prepareActive("k/1", "c0");
  ASSERT_TRUE(apply(layers[1], m1, &resp).ok());
  ASSERT_TRUE(commitActive("c1", "k/1").ok());
  EXPECT_EQ(metrics.diffApplies("store").Value(), fromStore + 1);
  EXPECT_EQ(metrics.diffApplies("write").Value(), fromWrite + 1);

  auto img = imageNow();
  ASSERT_TRUE(img) << "the image of the applied layers is not in the status";
  EXPECT_FALSE(img->finished) << "its top layer is still to come";
  ASSERT_EQ(img->layers.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const auto& l = img->layers[static_cast<size_t>(i)];
    EXPECT_EQ(l.state, progress::LayerState::Done) << "layer " << i;
    EXPECT_EQ(l.source, "content") << "layer " << i;
    EXPECT_EQ(l.via, "apply") << "layer " << i;
    EXPECT_GT(l.written, 0u) << "layer " << i;
  }
  EXPECT_EQ(img->layers[2].state, progress::LayerState::Queued);
  EXPECT_EQ(img->layers[2].source, "");

  storeUnteed(layers[2]);
  auto m2 = prepareActive("k/2", "c1");
  ASSERT_TRUE(apply(layers[2], m2, &resp).ok());
  img = imageNow();
  ASSERT_TRUE(img);
  EXPECT_TRUE(img->finished) << "the top layer's apply ends the image";
  EXPECT_EQ(img->layers[2].via, "apply");
}

TEST_F(DiffServiceTest, DiffIsNotImplemented) {
  grpc::ClientContext ctx;
  diffv1::DiffRequest req;
  diffv1::DiffResponse resp;
  EXPECT_EQ(ds->Diff(&ctx, req, &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace snapimport::plugin::test
