// `snapimport status`: the tracker the importer feeds, the /status document, and the rendering.
#include "cli/StatusCommand.h"

#include <gtest/gtest.h>

#include "../store/TempDir.h"
#include "common/HttpServer.h"

namespace snapimport::cli {
namespace {

using progress::ImportProgress;
using progress::LayerState;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Two images sharing a layer, mid-pull, as the importer would report them.
void feed(ImportProgress& t) {
  t.imageStarted("127.0.0.1:5000/app:v1", "sha256:0123456789abcdef0123",
                 {{"sha256:aaaaaaaaaaaa1111", 10 << 20},
                  {"sha256:bbbbbbbbbbbb2222", 30 << 20},
                  {"sha256:cccccccccccc3333", 1024}});
  t.layerState("sha256:aaaaaaaaaaaa1111", LayerState::Done);
  t.layerBytes("sha256:aaaaaaaaaaaa1111", 10 << 20, 25 << 20);
  t.layerState("sha256:bbbbbbbbbbbb2222", LayerState::Fetching);
  t.layerBytes("sha256:bbbbbbbbbbbb2222", 15 << 20, 20 << 20);
  t.layerState("sha256:cccccccccccc3333", LayerState::Fallback, "unknown media type");
  t.layerSource("sha256:aaaaaaaaaaaa1111", "registry", "prepare");
  t.layerSource("sha256:bbbbbbbbbbbb2222", "content", "apply");
}

TEST(StatusRender, ShowsImagesAndLayersWithProgress) {
  ImportProgress t;
  feed(t);
  std::string out = renderStatus(progress::fromJson(progress::toJson(t.snapshot())));
  EXPECT_TRUE(has(out, "IMAGE 127.0.0.1:5000/app:v1  sha256:0123456789ab\n")) << out;
  EXPECT_TRUE(has(out, "1/3 layers done, 1 left to containerd")) << out;
  EXPECT_TRUE(has(out, "fetched 25.0 MiB of 40.0 MiB  62%")) << out;
  EXPECT_TRUE(has(out, "sha256:aaaaaaaaaaaa  done")) << out;
  EXPECT_TRUE(has(out, "10.0 MiB / 10.0 MiB 100%")) << out;
  EXPECT_TRUE(has(out, "sha256:bbbbbbbbbbbb  fetching")) << out;
  EXPECT_TRUE(has(out, "15.0 MiB / 30.0 MiB  50%")) << out;
  EXPECT_TRUE(has(out, "20.0 MiB")) << out;
  EXPECT_TRUE(has(out, "sha256:cccccccccccc  fallback")) << out;
  EXPECT_TRUE(has(out, "(unknown media type)")) << out;
  EXPECT_TRUE(has(out, "running for")) << out;
  // Where each layer comes from and how it reaches containerd's snapshot; "-" before anyone knows.
  EXPECT_TRUE(has(out, "STATE       SOURCE    VIA      FETCHED")) << out;
  EXPECT_TRUE(has(out, "sha256:aaaaaaaaaaaa  done        registry  prepare  10.0 MiB")) << out;
  EXPECT_TRUE(has(out, "sha256:bbbbbbbbbbbb  fetching    content   apply    15.0 MiB")) << out;
  EXPECT_TRUE(has(out, "sha256:cccccccccccc  fallback    -         -        ")) << out;
}

TEST(StatusRender, FinishedAndEmpty) {
  ImportProgress t;
  feed(t);
  t.imageFinished("127.0.0.1:5000/app:v1", "sha256:0123456789abcdef0123");
  EXPECT_TRUE(has(renderStatus(t.snapshot()), "finished in")) << renderStatus(t.snapshot());
  EXPECT_TRUE(has(renderStatus({}), "No imports in flight"));
}

TEST(StatusRender, HumanBytes) {
  EXPECT_EQ(humanBytes(0), "0 B");
  EXPECT_EQ(humanBytes(1023), "1023 B");
  EXPECT_EQ(humanBytes(1536), "1.5 KiB");
  EXPECT_EQ(humanBytes(5ull << 30), "5.0 GiB");
}

// The daemon side of `snapimport status`: the tracker served as /status on an admin socket,
// read back by the same client the command uses.
TEST(StatusRender, OverTheAdminSocket) {
  ImportProgress t;
  feed(t);
  testing::TempDir tmp;
  std::string sock = (tmp.path() / "admin.sock").string();
  http::Server server;
  server.handle("/status", [&] {
    return http::Response{200, "application/json", progress::toJson(t.snapshot())};
  });
  server.listen(sock);
  server.start();
  int status = 0;
  std::string body = http::get(sock, "/status", status);
  ASSERT_EQ(status, 200);
  std::string out = renderStatus(progress::fromJson(body));
  EXPECT_TRUE(has(out, "sha256:bbbbbbbbbbbb  fetching")) << out;
}

}  // namespace
}  // namespace snapimport::cli
