#include "cli/ImageList.h"

#include <gtest/gtest.h>

#include <sstream>

#include "plugin/CriImageClient.h"

namespace snapimport::cli {
namespace {

TEST(ImageList, SkipsCommentsAndBlanksAndTrims) {
  std::istringstream in("# warm these\n\n  busybox:1.36 \r\n127.0.0.1:5000/a/b@sha256:" +
                        std::string(64, 'a') + "\n");
  auto images = readImageList(in, "list.txt");
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0], "busybox:1.36");
}

TEST(ImageList, InnerWhitespaceNamesFileAndLine) {
  std::istringstream in("ok\nbad image\n");
  try {
    readImageList(in, "list.txt");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("list.txt:2"), std::string::npos) << e.what();
  }
}

TEST(CriEndpoint, AcceptsUnixForms) {
  EXPECT_EQ(plugin::CriImageClient::grpcTarget("unix:///run/containerd/containerd.sock"),
            "unix:/run/containerd/containerd.sock");
  EXPECT_EQ(plugin::CriImageClient::grpcTarget("/run/c.sock"), "unix:/run/c.sock");
  EXPECT_THROW(plugin::CriImageClient::grpcTarget("tcp://1.2.3.4:5"), std::runtime_error);
}

}  // namespace
}  // namespace snapimport::cli
