#include "store/DiskUsage.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "TempDir.h"

namespace snapimport::store {
namespace {

int64_t blocksOf(const std::filesystem::path& p) {
  struct stat st {};
  lstat(p.c_str(), &st);
  return static_cast<int64_t>(st.st_blocks) * 512;
}

TEST(DiskUsage, CountsHardlinksOnceAndDoesNotFollowSymlinks) {
  testing::TempDir t;
  auto root = t.path() / "fs";
  std::filesystem::create_directories(root / "d");
  { std::ofstream(root / "d" / "file") << std::string(100000, 'x'); }
  ASSERT_EQ(link((root / "d" / "file").c_str(), (root / "hard").c_str()), 0);
  std::filesystem::create_symlink("/usr", root / "sym");  // must not be walked into
  Usage u = diskUsage(root);
  // root, d, file (= hard), sym
  EXPECT_EQ(u.inodes, 4);
  EXPECT_EQ(u.size, blocksOf(root) + blocksOf(root / "d") + blocksOf(root / "d" / "file") +
                        blocksOf(root / "sym"));
  EXPECT_GE(u.size, 100000);
}

TEST(DiskUsage, EmptyDirectoryIsOneInode) {
  testing::TempDir t;
  Usage u = diskUsage(t.path());
  EXPECT_EQ(u.inodes, 1);
  EXPECT_EQ(u.size, blocksOf(t.path()));
}

}  // namespace
}  // namespace snapimport::store
