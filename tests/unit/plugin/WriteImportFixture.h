#pragma once
// The services of import from containerd's writes (content, snapshots, diff) over an in-process
// channel, with a three-layer image (gzip, zstd, plain tar) and the calls containerd makes:
// shared by WriteImporter_test.cpp and DiffService_test.cpp.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "../store/TempDir.h"
#include "plugin/ChainId.h"
#include "plugin/ContentService.h"
#include "plugin/DiffService.h"
#include "plugin/ImportLabels.h"
#include "plugin/SnapshotService.h"
#include "plugin/WriteImporter.h"

namespace snapimport::plugin::test {

namespace fs = std::filesystem;

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

struct Layer {
  std::string blob;  // compressed bytes as the registry serves them
  std::string digest, diffId, mediaType;
};

class WriteImporterTest : public ::testing::Test {
 protected:
  testing::TempDir tmp;
  std::shared_ptr<store::SnapshotStore> snapshots;
  std::shared_ptr<store::ContentStore> content;
  std::shared_ptr<WriteImporter> writes;
  std::unique_ptr<ContentService> contentService;
  std::unique_ptr<SnapshotService> snapshotService;
  std::unique_ptr<DiffService> diffService;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<contentv1::Content::Stub> cs;
  std::unique_ptr<snapshotsv1::Snapshots::Stub> ss;
  std::unique_ptr<diffv1::Diff::Stub> ds;
  std::vector<Layer> layers;
  std::vector<std::string> chains;
  std::string manifestBytes, configBytes;
  int seq = 0;

  // Most tests write layers before any Prepare; teeWithoutUnpacker lets them. The default (a
  // tee only once containerd's unpacker works on the image) has tests of its own.
  WriteImportOptions options() {
    WriteImportOptions o;
    o.startWait = std::chrono::milliseconds(500);
    o.teeWithoutUnpacker = true;
    return o;
  }
  // Layer 0 written, then Prepared by containerd's unpacker: committed from its write; `base`
  // receives the snapshot's name.
  void commitBottomLayerFromItsWrite(std::string* base) {
    ASSERT_TRUE(writeLayer(0).ok());
    ASSERT_EQ(prepare(chains[0], "").error_code(), grpc::StatusCode::ALREADY_EXISTS);
    *base = committed(chains[0], "");
  }
  // containerd's unpacker commits the extraction snapshot of `chain` (Prepared last) as `name`.
  void commitLast(const std::string& name, const std::string& chain) {
    grpc::ClientContext ctx;
    snapshotsv1::CommitSnapshotRequest req;
    req.set_name(name);
    const std::string n = std::to_string(seq);
    req.set_key("k8s.io/" + n + "/extract-" + n + " " + chain);
    (*req.mutable_labels())[kLabelSnapshotRef] = chain;
    google::protobuf::Empty e;
    ASSERT_TRUE(ss->Commit(&ctx, req, &e).ok());
  }

  void SetUp() override {
    fs::path src = tmp.path() / "src";
    // Layer 0 (gzip) makes a/ 0750 with a file; layer 1 (zstd) adds a/y without an entry for a/,
    // so a/ is implicit there and must take 0750 from layer 0; layer 2 is a plain tar.
    sh("mkdir -p " + (src / "l0/a").string() + " " + (src / "l1/a").string() + " " +
       (src / "l2/b").string());
    sh("echo one > " + (src / "l0/a/x").string() + " && chmod 0750 " + (src / "l0/a").string());
    sh("echo two > " + (src / "l1/a/y").string());
    sh("head -c 3000000 /dev/urandom > " + (src / "l2/b/big").string());
    sh("tar --sort=name -C " + (src / "l0").string() + " -cf " + (tmp.path() / "l0.tar").string() +
       " a a/x");
    sh("tar --sort=name -C " + (src / "l1").string() + " -cf " + (tmp.path() / "l1.tar").string() +
       " a/y");
    sh("tar --sort=name -C " + (src / "l2").string() + " -cf " + (tmp.path() / "l2.tar").string() +
       " b b/big");
    sh("gzip -kn " + (tmp.path() / "l0.tar").string());
    sh("zstd -q -k " + (tmp.path() / "l1.tar").string());
    const std::pair<const char*, const char*> files[] = {
        {"l0.tar.gz", "application/vnd.oci.image.layer.v1.tar+gzip"},
        {"l1.tar.zst", "application/vnd.oci.image.layer.v1.tar+zstd"},
        {"l2.tar", "application/vnd.oci.image.layer.v1.tar"}};
    std::vector<std::string> diffIds;
    for (int i = 0; i < 3; ++i) {
      Layer l;
      l.blob = slurp(tmp.path() / files[i].first);
      l.digest = sha256Digest(l.blob);
      l.diffId = sha256Digest(slurp(tmp.path() / ("l" + std::to_string(i) + ".tar")));
      l.mediaType = files[i].second;
      diffIds.push_back(l.diffId);
      layers.push_back(l);
    }
    chains = chainIds(diffIds);
    startServices(options());
  }

  void startServices(WriteImportOptions o) {
    if (server) server->Shutdown();
    contentService.reset();
    snapshotService.reset();
    diffService.reset();
    writes.reset();
    snapshots =
        std::make_shared<store::SnapshotStore>(tmp.path() / "root", store::OverlayOptions{});
    content = std::make_shared<store::ContentStore>(tmp.path() / "root");
    writes = std::make_shared<WriteImporter>(snapshots, content, o);
    contentService = std::make_unique<ContentService>(content, writes);
    snapshotService = std::make_unique<SnapshotService>(snapshots, nullptr, writes);
    diffService = std::make_unique<DiffService>(snapshots, content, writes);
    grpc::ServerBuilder builder;
    builder.RegisterService(contentService.get());
    builder.RegisterService(snapshotService.get());
    builder.RegisterService(diffService.get());
    builder.SetMaxReceiveMessageSize(16 << 20);
    server = builder.BuildAndStart();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    auto channel = server->InProcessChannel(args);
    cs = contentv1::Content::NewStub(channel);
    ss = snapshotsv1::Snapshots::NewStub(channel);
    ds = diffv1::Diff::NewStub(channel);
  }

  void TearDown() override {
    server->Shutdown();
    contentService.reset();
    snapshotService.reset();
    diffService.reset();
    writes.reset();
  }

  // The manifest and config containerd writes first; `diffIds` overrides the config's.
  void writeImage(std::vector<std::string> diffIds = {}) {
    if (diffIds.empty()) {
      for (const auto& l : layers) diffIds.push_back(l.diffId);
    }
    std::string ids;
    for (const auto& d : diffIds) ids += (ids.empty() ? "\"" : ",\"") + d + "\"";
    configBytes = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[)" +
                  ids + "]}}";
    std::string ls;
    for (const auto& l : layers) {
      ls += std::string(ls.empty() ? "" : ",") + R"({"mediaType":")" + l.mediaType +
            R"(","digest":")" + l.digest + R"(","size":)" + std::to_string(l.blob.size()) + "}";
    }
    manifestBytes =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        sha256Digest(configBytes) + R"(","size":)" + std::to_string(configBytes.size()) +
        R"(},"layers":[)" + ls + "]}";
    ASSERT_TRUE(writeBlob("manifest-" + sha256Digest(manifestBytes), manifestBytes).ok());
    ASSERT_TRUE(writeBlob("config-" + sha256Digest(configBytes), configBytes).ok());
  }

  using Stream =
      grpc::ClientReaderWriter<contentv1::WriteContentRequest, contentv1::WriteContentResponse>;

  // containerd's proxy writer: STAT with ref, total and expected, WRITEs, COMMIT. `ref` gets the
  // "<namespace>/<seq>/" prefix containerd's metadata store puts on it.
  struct Writer {
    grpc::ClientContext ctx;
    std::unique_ptr<Stream> s;
    int64_t offset = 0;
    std::string ref;
  };
  std::unique_ptr<Writer> open(const std::string& ref, const std::string& data,
                               const std::string& expected = "") {
    auto w = std::make_unique<Writer>();
    w->s = cs->Write(&w->ctx);
    contentv1::WriteContentRequest r;
    r.set_action(contentv1::STAT);
    w->ref = "k8s.io/" + std::to_string(++seq) + "/" + ref;
    r.set_ref(w->ref);
    r.set_total(static_cast<int64_t>(data.size()));
    r.set_expected(expected.empty() ? sha256Digest(data) : expected);
    contentv1::WriteContentResponse resp;
    EXPECT_TRUE(w->s->Write(r));
    EXPECT_TRUE(w->s->Read(&resp));
    w->offset = resp.offset();
    return w;
  }
  bool send(Writer& w, const std::string& data, size_t chunk = 64 << 10) {
    for (size_t pos = 0; pos < data.size(); pos += chunk) {
      contentv1::WriteContentRequest r;
      r.set_action(contentv1::WRITE);
      r.set_offset(w.offset);
      r.set_data(data.substr(pos, chunk));
      contentv1::WriteContentResponse resp;
      if (!w.s->Write(r) || !w.s->Read(&resp)) return false;
      w.offset = resp.offset();
    }
    return true;
  }
  grpc::Status commit(Writer& w, int64_t total, const std::string& expected) {
    contentv1::WriteContentRequest r;
    r.set_action(contentv1::COMMIT);
    r.set_offset(w.offset);
    r.set_total(total);
    r.set_expected(expected);
    contentv1::WriteContentResponse resp;
    w.s->Write(r);
    if (w.s->Read(&resp)) {
      w.s->WritesDone();
      return w.s->Finish();
    }
    return w.s->Finish();
  }
  grpc::Status writeBlob(const std::string& ref, const std::string& data,
                         const std::string& expected = "") {
    std::string want = expected.empty() ? sha256Digest(data) : expected;
    auto w = open(ref, data, want);
    send(*w, data);
    return commit(*w, static_cast<int64_t>(data.size()), want);
  }
  grpc::Status writeLayer(size_t i) {
    return writeBlob("layer-" + layers[i].digest, layers[i].blob);
  }

  // containerd's unpacker: Prepare "<ns>/<seq>/extract-... <chain>" with snapshot.ref = chain.
  // With `deadline`, the client gives up after it; `key` receives the snapshot key used.
  grpc::Status prepare(const std::string& chain, const std::string& parent,
                       std::chrono::milliseconds deadline = {}, std::string* key = nullptr) {
    grpc::ClientContext ctx;
    if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    snapshotsv1::PrepareSnapshotRequest req;
    const std::string n = std::to_string(++seq);
    req.set_key("k8s.io/" + n + "/extract-" + n + " " + chain);
    if (key) *key = req.key();
    req.set_parent(parent);
    (*req.mutable_labels())[kLabelSnapshotRef] = chain;
    snapshotsv1::PrepareSnapshotResponse resp;
    return ss->Prepare(&ctx, req, &resp);
  }
  std::string committed(const std::string& chain, const std::string& parent) {
    auto info = snapshots->findCommitted(kLabelSnapshotRef, chain, parent);
    return info ? info->name : "";
  }
  bool stagingEmpty() { return fs::is_empty(snapshots->stagingDir()); }
  // Waits for every unpack to settle (staged or gone).
  void settle() {
    for (int i = 0;
         i < 500 && writes->stats().staged + writes->stats().failed < writes->stats().tees; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
};

}  // namespace snapimport::plugin::test
