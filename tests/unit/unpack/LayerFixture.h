#pragma once
// Shared helpers for unpack tests: in-memory sources, compressors and a scratch root with a
// sentinel tree beside the target directory.
#include <gtest/gtest.h>
#include <isa-l/igzip_lib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "../store/TempDir.h"
#include "unpack/Unpacker.h"

namespace snapimport::testing {

// Serves a string in chunks of `chunk` bytes, so block boundaries land everywhere.
class MemorySource : public unpack::Source {
 public:
  explicit MemorySource(std::string data, size_t chunk = 1 << 20)
      : data_(std::move(data)), chunk_(chunk) {}
  size_t read(void* buf, size_t len) override {
    size_t n = std::min({len, chunk_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t chunk_;
  size_t pos_ = 0;
};

inline std::string gzip(const std::string& in) {
  isal_zstream s;
  isal_deflate_init(&s);
  s.gzip_flag = IGZIP_GZIP;
  s.end_of_stream = 1;
  s.flush = NO_FLUSH;
  std::string out(in.size() + in.size() / 2 + 4096, '\0');
  s.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uint32_t>(in.size());
  s.next_out = reinterpret_cast<uint8_t*>(out.data());
  s.avail_out = static_cast<uint32_t>(out.size());
  isal_deflate(&s);
  out.resize(s.total_out);
  return out;
}

inline std::string zstd(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

constexpr const char* kTar = "application/vnd.oci.image.layer.v1.tar";
constexpr const char* kTarGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr const char* kTarZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

// <tmp>/root is the diff dir; <tmp>/outside holds a sentinel that no layer may touch.
class LayerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "root";
    outside_ = tmp_.path() / "outside";
    std::filesystem::create_directories(root_);
    std::filesystem::create_directories(outside_ / "dir");
    std::ofstream(outside_ / "sentinel") << "sentinel";
    std::ofstream(outside_ / "dir" / "file") << "untouched";
  }
  unpack::Result unpack(const std::string& tar, const char* mediaType = kTar,
                        unpack::Options opts = quiet()) {
    MemorySource src(tar, 4093);
    return unpack::unpackLayer(src, mediaType, root_, opts);
  }
  static unpack::Options quiet() {
    unpack::Options o;
    o.sync = false;
    return o;
  }
  void expectOutsideUntouched() {
    EXPECT_EQ(slurp(outside_ / "sentinel"), "sentinel");
    EXPECT_EQ(slurp(outside_ / "dir" / "file"), "untouched");
    size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::recursive_directory_iterator(outside_)) ++n;
    EXPECT_EQ(n, 3u) << "something appeared outside the root";
  }
  bool rootEmpty() { return std::filesystem::is_empty(root_); }
  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static struct stat lstatOf(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st;
  }
  static std::string xattr(const std::filesystem::path& p, const char* name) {
    char buf[256];
    ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
    return n < 0 ? std::string("<none>") : std::string(buf, static_cast<size_t>(n));
  }

  TempDir tmp_;
  std::filesystem::path root_, outside_;
};

}  // namespace snapimport::testing
