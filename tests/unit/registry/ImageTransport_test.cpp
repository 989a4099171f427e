#include "registry/ImageTransport.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "registry/Error.h"

namespace snapimport::registry {
namespace {

namespace fs = std::filesystem;

class VerifiedFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("snapimport-verified-file-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  static Descriptor describe(const std::string& bytes) {
    Descriptor d;
    d.digest = digestOf(bytes);
    d.size = static_cast<int64_t>(bytes.size());
    return d;
  }
  // Reads exactly the descriptor's size and no more, as libcurl reads an upload body.
  static std::string readExactly(BlobReader& r, size_t size) {
    std::string out;
    char buf[4];
    while (out.size() < size) {
      size_t n = r.read(buf, std::min(sizeof buf, size - out.size()));
      if (n == 0) break;
      out.append(buf, n);
    }
    return out;
  }

  fs::path dir_;
};

TEST_F(VerifiedFile, RefusesAWrongDigestOnTheReadThatHandsOutTheLastByte) {
  const std::string good = "the layer as it was written";
  std::string bad = good;
  bad[5] = 'X';  // same size, other bytes
  auto path = write("blob", bad);
  auto reader = openVerifiedFile(path, 0, describe(good), "oci:test");
  try {
    readExactly(*reader, good.size());
    FAIL() << "a reader stopping at the size got every byte of a corrupt blob";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Verification);
    EXPECT_NE(std::string(e.what()).find("oci:test: blob " + describe(good).digest.str()),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("hashes to " + digestOf(bad).str()), std::string::npos)
        << e.what();
  }
}

TEST_F(VerifiedFile, HandsOutAGoodBlobAndThenTheEnd) {
  const std::string good = "the layer as it was written";
  auto reader = openVerifiedFile(write("blob", good), 0, describe(good), "oci:test");
  EXPECT_EQ(readExactly(*reader, good.size()), good);
  char c;
  EXPECT_EQ(reader->read(&c, 1), 0u);
  EXPECT_EQ(reader->read(&c, 1), 0u);
}

TEST_F(VerifiedFile, ChecksAnEmptyBlobsDigestToo) {
  Descriptor d = describe("something");
  d.size = 0;
  auto reader = openVerifiedFile(write("empty", ""), 0, d, "oci:test");
  char c;
  EXPECT_THROW(reader->read(&c, 1), Error);
  EXPECT_EQ(openVerifiedFile(write("empty2", ""), 0, describe(""), "oci:test")->read(&c, 1), 0u);
}

TEST_F(VerifiedFile, SizeOnlyLeavesTheDigestToTheDestinationButStillChecksTheSize) {
  const std::string good = "the layer as it was written";
  std::string bad = good;
  bad[5] = 'X';
  auto reader =
      openVerifiedFile(write("blob", bad), 0, describe(good), "oci:test", BlobCheck::Size);
  EXPECT_EQ(readExactly(*reader, good.size()), bad);
  char c;
  EXPECT_EQ(reader->read(&c, 1), 0u);

  auto shorter = openVerifiedFile(write("short", good.substr(0, 10)), 0, describe(good), "oci:test",
                                  BlobCheck::Size);
  try {
    readExactly(*shorter, good.size());
    FAIL() << "a file shorter than its descriptor was read to the end";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Verification);
    EXPECT_NE(std::string(e.what()).find("is shorter than its size"), std::string::npos)
        << e.what();
  }
}

TEST_F(VerifiedFile, ReadsAnArchiveMemberAtItsOffset) {
  const std::string member = "member bytes";
  auto path = write("archive", "header.." + member + "..trailer");
  auto reader = openVerifiedFile(path, 8, describe(member), "docker-archive:test");
  EXPECT_EQ(readExactly(*reader, member.size()), member);
}

}  // namespace
}  // namespace snapimport::registry
