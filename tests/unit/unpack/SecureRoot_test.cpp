#include "unpack/SecureRoot.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "../store/TempDir.h"
#include "unpack/Unpacker.h"

namespace snapimport::unpack {
namespace {

class SecureRootTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "root";
    std::filesystem::create_directories(root_ / "real/sub");
    std::filesystem::create_directories(tmp_.path() / "outside");
    std::filesystem::create_symlink("/", root_ / "slash");
    std::filesystem::create_symlink("../../..", root_ / "up");
    std::filesystem::create_symlink((tmp_.path() / "outside").string(), root_ / "abs");
    std::filesystem::create_symlink("real", root_ / "toreal");
    std::ofstream(root_ / "file") << "f";
  }
  SecureRoot open() {
    SecureRoot r(root_);
    if (!GetParam()) r.disableOpenat2();
    return r;
  }
  static ino_t inoOf(int fd) {
    struct stat st {};
    fstat(fd, &st);
    return st.st_ino;
  }
  static ino_t inoOf(const std::filesystem::path& p) {
    struct stat st {};
    lstat(p.c_str(), &st);
    return st.st_ino;
  }
  testing::TempDir tmp_;
  std::filesystem::path root_;
};

TEST_P(SecureRootTest, ResolvesSymlinksInsideTheRoot) {
  auto r = open();
  EXPECT_EQ(inoOf(r.dir("slash", false, nullptr)->get()), inoOf(root_));
  EXPECT_EQ(inoOf(r.dir("up/real", false, nullptr)->get()), inoOf(root_ / "real"));
  EXPECT_EQ(inoOf(r.dir("toreal/sub", false, nullptr)->get()), inoOf(root_ / "real/sub"));
  EXPECT_THROW(r.dir("file", false, nullptr), UnpackError);
  EXPECT_THROW(r.dir("missing", false, nullptr), UnpackError);
  EXPECT_EQ(r.findDir("missing/x"), nullptr);
}

TEST_P(SecureRootTest, CreatesMissingDirectoriesInsideAndReportsThem) {
  auto r = open();
  std::vector<std::string> created;
  r.dir("abs/new/deeper", true, &created);
  EXPECT_TRUE(std::filesystem::is_empty(tmp_.path() / "outside"));
  auto inside = (tmp_.path() / "outside").string().substr(1);
  EXPECT_TRUE(std::filesystem::is_directory(root_ / inside / "new/deeper"));
  ASSERT_FALSE(created.empty());
  EXPECT_EQ(created.back(), inside + "/new/deeper");
}

TEST_P(SecureRootTest, RemovesDeepTreesWithoutFollowingSymlinks) {
  std::filesystem::path p = root_ / "deep";
  for (int i = 0; i < 300; ++i) p /= "d";
  std::filesystem::create_directories(p);
  std::ofstream(p / "leaf") << "x";
  std::filesystem::create_symlink(tmp_.path() / "outside", root_ / "deep/d/link");
  std::ofstream(tmp_.path() / "outside/keep") << "k";
  auto r = open();
  SecureRoot::removeAt(r.fd(), "deep");
  EXPECT_FALSE(std::filesystem::exists(root_ / "deep"));
  EXPECT_TRUE(std::filesystem::exists(tmp_.path() / "outside/keep"));
}

INSTANTIATE_TEST_SUITE_P(Openat2AndWalk, SecureRootTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "openat2" : "walk"; });

}  // namespace
}  // namespace snapimport::unpack
