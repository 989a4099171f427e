// DirectFileWriter on the test machine's own filesystem (ext4 here, which takes O_DIRECT) and on
// a tmpfs (which may not): the bytes and the size of every file must come out exact whichever way
// they went, and a file that went direct must be left without O_DIRECT for its metadata calls.
#include "unpack/DirectFileWriter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "../store/SmallFilesystem.h"
#include "../store/TempDir.h"
#include "DirectIoProbe.h"

namespace snapimport::unpack {
namespace {

std::string pattern(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string readAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Writes `data` through `w` in pieces of `piece` bytes (the tar reader's block sizes vary).
bool writeFile(DirectFileWriter& w, const std::filesystem::path& p, const std::string& data,
               size_t piece) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0) << p;
  bool direct = w.begin(fd, p.string());
  if (direct) {
    for (size_t off = 0; off < data.size(); off += piece) {
      w.append(data.data() + off, std::min(piece, data.size() - off));
    }
    w.finish();
    EXPECT_EQ(::fcntl(fd, F_GETFL) & O_DIRECT, 0) << "finish leaves the fd buffered";
  } else {
    EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }
  ::close(fd);
  return direct;
}

void expectExactFiles(const std::filesystem::path& dir, DirectFileWriter& w) {
  // Around the alignment and the 64 KiB chunk the test uses: empty, sub-block, exact blocks, one
  // chunk, chunk plus one, several chunks plus an odd tail.
  const size_t sizes[] = {0, 1, 511, 512, 4095, 4096, 4097, 65536, 65537, 3 * 65536 + 517};
  const size_t pieces[] = {1000, 65536, 7, 100000};
  unsigned seed = 1;
  for (size_t size : sizes) {
    for (size_t piece : pieces) {
      if (size > 70000 && piece == 7) continue;  // slow and adds nothing
      // Appended piece by piece: GCC 12 at -O3 sees a false -Wrestrict in "f" + to_string(...).
      std::string name = "f";
      name += std::to_string(size);
      name += '-';
      name += std::to_string(piece);
      auto p = dir / name;
      std::string data = pattern(size, seed++);
      writeFile(w, p, data, piece);
      struct stat st {};
      ASSERT_EQ(::stat(p.c_str(), &st), 0);
      EXPECT_EQ(static_cast<size_t>(st.st_size), size) << p;
      EXPECT_EQ(readAll(p), data) << p;
    }
  }
}

TEST(DirectFileWriter, FilesComeOutExactOnTheWorkFilesystem) {
  testing::TempDir tmp;
  DirectFileWriter w(64 << 10);
  expectExactFiles(tmp.path(), w);
  if (testing::directIoOffsetAlign(tmp.path() / "f1-1000") > 0) {
    EXPECT_GT(w.directBytes(), 0u) << "the filesystem offers direct I/O, so the big files use it";
  } else {
    EXPECT_EQ(w.directBytes(), 0u);
  }
}

TEST(DirectFileWriter, FilesComeOutExactOnTmpfs) {
  testing::SmallFilesystem fs(64 << 20);
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a small tmpfs: " << fs.whyNot();
  DirectFileWriter w(64 << 10);
  expectExactFiles(fs.path(), w);
}

// A full filesystem on the direct path is the disk-full end-to-end test's zeros layer: it needs an
// ext4 (tmpfs takes no direct I/O here), and it checks the "cannot write" error and the cleanup.

}  // namespace
}  // namespace snapimport::unpack
