// The content service over an in-process channel: the wire semantics containerd's proxy client
// relies on, without a socket or a daemon.
#include "plugin/ContentService.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "../store/TempDir.h"
#include "store/Digest.h"

namespace snapimport::plugin {
namespace {

using store::Digest;

std::string bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u + seed) >> 11);
  return s;
}

class ContentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_shared<store::ContentStore>(dir_.path());
    store_->setLockTimeout(std::chrono::milliseconds(20));
    service_ = std::make_unique<ContentService>(store_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    builder.SetMaxReceiveMessageSize(16 << 20);
    server_ = builder.BuildAndStart();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    stub_ = contentv1::Content::NewStub(server_->InProcessChannel(args));
  }
  void TearDown() override { server_->Shutdown(); }

  using Stream =
      grpc::ClientReaderWriter<contentv1::WriteContentRequest, contentv1::WriteContentResponse>;

  // One lock-step exchange; the status if the server ended the stream instead of answering.
  grpc::Status exchange(Stream& s, const contentv1::WriteContentRequest& req,
                        contentv1::WriteContentResponse* resp) {
    s.Write(req);
    if (s.Read(resp)) return grpc::Status::OK;
    return s.Finish();
  }
  static contentv1::WriteContentRequest stat(const std::string& ref, int64_t total = 0) {
    contentv1::WriteContentRequest r;
    r.set_action(contentv1::STAT);
    r.set_ref(ref);
    r.set_total(total);
    return r;
  }
  static contentv1::WriteContentRequest write(int64_t offset, const std::string& data) {
    contentv1::WriteContentRequest r;
    r.set_action(contentv1::WRITE);
    r.set_offset(offset);
    r.set_data(data);
    return r;
  }
  static contentv1::WriteContentRequest commit(int64_t offset, int64_t total,
                                               const std::string& expected) {
    contentv1::WriteContentRequest r;
    r.set_action(contentv1::COMMIT);
    r.set_offset(offset);
    r.set_total(total);
    r.set_expected(expected);
    return r;
  }
  Digest put(const std::string& ref, const std::string& data) {
    grpc::ClientContext ctx;
    auto s = stub_->Write(&ctx);
    contentv1::WriteContentResponse resp;
    EXPECT_TRUE(exchange(*s, stat(ref), &resp).ok());
    EXPECT_TRUE(exchange(*s, write(0, data), &resp).ok());
    EXPECT_TRUE(exchange(*s, commit(resp.offset(), 0, ""), &resp).ok());
    s->WritesDone();
    EXPECT_TRUE(s->Finish().ok());
    return Digest::parse(resp.digest());
  }

  testing::TempDir dir_;
  std::shared_ptr<store::ContentStore> store_;
  std::unique_ptr<ContentService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<contentv1::Content::Stub> stub_;
};

TEST_F(ContentServiceTest, WriteFollowsContainerdsLockStepProtocol) {
  std::string data = bytes(3 << 20, 1);
  grpc::ClientContext ctx;
  auto s = stub_->Write(&ctx);
  contentv1::WriteContentResponse resp;
  ASSERT_TRUE(exchange(*s, stat("ns/1/layer", static_cast<int64_t>(data.size())), &resp).ok());
  EXPECT_EQ(resp.action(), contentv1::STAT);
  EXPECT_EQ(resp.offset(), 0);
  EXPECT_EQ(resp.total(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(resp.digest(), Digest::of("").str());
  EXPECT_TRUE(resp.has_started_at());

  ASSERT_TRUE(exchange(*s, write(0, data.substr(0, 1 << 20)), &resp).ok());
  EXPECT_EQ(resp.action(), contentv1::WRITE);
  EXPECT_EQ(resp.offset(), 1 << 20);
  // offset 0 with data present truncates; then append from there.
  ASSERT_TRUE(exchange(*s, write(0, data.substr(0, 2 << 20)), &resp).ok());
  EXPECT_EQ(resp.offset(), 2 << 20);
  ASSERT_TRUE(exchange(*s, stat(""), &resp).ok());
  EXPECT_EQ(resp.digest(), Digest::of(data.substr(0, 2 << 20)).str());

  auto c = commit(2 << 20, static_cast<int64_t>(data.size()), Digest::of(data).str());
  c.set_data(data.substr(2 << 20));
  (*c.mutable_labels())["containerd.io/gc.root"] = "x";
  ASSERT_TRUE(exchange(*s, c, &resp).ok());
  EXPECT_EQ(resp.action(), contentv1::COMMIT);
  EXPECT_EQ(resp.offset(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(resp.digest(), Digest::of(data).str());
  s->WritesDone();
  EXPECT_TRUE(s->Finish().ok());

  grpc::ClientContext ictx;
  contentv1::InfoRequest ireq;
  ireq.set_digest(Digest::of(data).str());
  contentv1::InfoResponse iresp;
  ASSERT_TRUE(stub_->Info(&ictx, ireq, &iresp).ok());
  EXPECT_EQ(iresp.info().size(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(iresp.info().labels().at("containerd.io/gc.root"), "x");
}

TEST_F(ContentServiceTest, WriteRefusals) {
  contentv1::WriteContentResponse resp;
  {
    grpc::ClientContext ctx;
    auto s = stub_->Write(&ctx);
    EXPECT_EQ(exchange(*s, stat(""), &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    auto s = stub_->Write(&ctx);
    ASSERT_TRUE(exchange(*s, stat("r"), &resp).ok());
    ASSERT_TRUE(exchange(*s, write(0, "abc"), &resp).ok());
    EXPECT_EQ(exchange(*s, write(5, "def"), &resp).error_code(), grpc::StatusCode::OUT_OF_RANGE);
  }
  {
    grpc::ClientContext ctx;
    auto s = stub_->Write(&ctx);
    ASSERT_TRUE(exchange(*s, stat("r"), &resp).ok());
    EXPECT_EQ(resp.offset(), 3);  // kept from the stream above
    contentv1::WriteContentRequest bad = stat("r");
    bad.set_action(static_cast<contentv1::WriteAction>(7));
    EXPECT_EQ(exchange(*s, bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    auto s = stub_->Write(&ctx);
    ASSERT_TRUE(exchange(*s, stat("r"), &resp).ok());
    EXPECT_EQ(exchange(*s, commit(3, 4, ""), &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  Digest d = put("other", "abc");
  {
    grpc::ClientContext ctx;
    auto s = stub_->Write(&ctx);
    ASSERT_TRUE(exchange(*s, stat("r"), &resp).ok());
    contentv1::WriteContentRequest w = write(3, "");
    w.set_expected(d.str());
    EXPECT_EQ(exchange(*s, w, &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  }
  grpc::ClientContext ctx;
  contentv1::StatusRequest sreq;
  sreq.set_ref("r");
  contentv1::StatusResponse sresp;
  EXPECT_EQ(stub_->Status(&ctx, sreq, &sresp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ContentServiceTest, ReadStreamsBigChunksWithOffsets) {
  std::string data = bytes(ContentService::kReadChunkBytes * 2 + 100, 2);
  Digest d = put("r", data);
  auto read = [&](int64_t offset, int64_t size, std::vector<int64_t>* offsets) {
    grpc::ClientContext ctx;
    contentv1::ReadContentRequest req;
    req.set_digest(d.str());
    req.set_offset(offset);
    req.set_size(size);
    auto r = stub_->Read(&ctx, req);
    contentv1::ReadContentResponse chunk;
    std::string out;
    while (r->Read(&chunk)) {
      if (offsets) offsets->push_back(chunk.offset());
      out += chunk.data();
    }
    EXPECT_TRUE(r->Finish().ok());
    return out;
  };
  std::vector<int64_t> offsets;
  EXPECT_EQ(read(0, 0, &offsets), data);
  int64_t chunk = static_cast<int64_t>(ContentService::kReadChunkBytes);
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, chunk, 2 * chunk}));
  EXPECT_EQ(read(chunk - 5, 10, nullptr), data.substr(static_cast<size_t>(chunk) - 5, 10));
  EXPECT_EQ(read(static_cast<int64_t>(data.size()) - 3, 1000, nullptr),
            data.substr(data.size() - 3));
}

TEST_F(ContentServiceTest, ListSendsBatchesOfAHundred) {
  for (int i = 0; i < 250; ++i) {
    // Appended, not "literal" + string&&: GCC 12 at -O3 reports a false -Wrestrict for that.
    std::string ref = "r", blob = "blob ";
    ref += std::to_string(i);
    blob += std::to_string(i);
    put(ref, blob);
  }
  grpc::ClientContext ctx;
  contentv1::ListContentRequest req;
  auto r = stub_->List(&ctx, req);
  contentv1::ListContentResponse batch;
  std::vector<int> sizes;
  while (r->Read(&batch)) sizes.push_back(batch.info_size());
  EXPECT_TRUE(r->Finish().ok());
  EXPECT_EQ(sizes, (std::vector<int>{100, 100, 50}));
}

TEST_F(ContentServiceTest, UpdateTakesAFieldMask) {
  Digest d = put("r", "labelled");
  grpc::ClientContext ctx;
  contentv1::UpdateRequest req;
  req.mutable_info()->set_digest(d.str());
  (*req.mutable_info()->mutable_labels())["a"] = "1";
  (*req.mutable_info()->mutable_labels())["b"] = "2";
  req.mutable_update_mask()->add_paths("labels.a");
  contentv1::UpdateResponse resp;
  ASSERT_TRUE(stub_->Update(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.info().labels().size(), 1u);
  EXPECT_EQ(resp.info().labels().at("a"), "1");

  grpc::ClientContext bad;
  req.mutable_update_mask()->add_paths("size");
  EXPECT_EQ(stub_->Update(&bad, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ContentServiceTest, StatusListStatusesAndAbort) {
  {
    grpc::ClientContext ctx;
    auto s = stub_->Write(&ctx);
    contentv1::WriteContentResponse resp;
    ASSERT_TRUE(exchange(*s, stat("ns/1/config", 10), &resp).ok());
    ASSERT_TRUE(exchange(*s, write(0, "12345"), &resp).ok());
    s->WritesDone();
    EXPECT_TRUE(s->Finish().ok());
  }
  grpc::ClientContext c1;
  contentv1::StatusRequest sreq;
  sreq.set_ref("ns/1/config");
  contentv1::StatusResponse sresp;
  ASSERT_TRUE(stub_->Status(&c1, sreq, &sresp).ok());
  EXPECT_EQ(sresp.status().offset(), 5);
  EXPECT_EQ(sresp.status().total(), 10);

  grpc::ClientContext c2;
  contentv1::ListStatusesRequest lreq;
  lreq.add_filters("ref==\"ns/1/config\"");
  contentv1::ListStatusesResponse lresp;
  ASSERT_TRUE(stub_->ListStatuses(&c2, lreq, &lresp).ok());
  ASSERT_EQ(lresp.statuses_size(), 1);

  grpc::ClientContext c3;
  contentv1::AbortRequest areq;
  areq.set_ref("ns/1/config");
  google::protobuf::Empty empty;
  ASSERT_TRUE(stub_->Abort(&c3, areq, &empty).ok());
  grpc::ClientContext c4;
  EXPECT_EQ(stub_->Abort(&c4, areq, &empty).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace snapimport::plugin
