// libFuzzer target for the whole extraction path: decompression, tar parsing, whiteouts, path
// resolution and the secure writer. The first input byte picks the compression, the rest is the
// layer blob. Beyond "no crash, no sanitizer report", it checks the two invariants every layer
// must keep: nothing appears beside the root, and a refused layer leaves the root empty.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "common/Log.h"
#include "unpack/SecureRoot.h"
#include "unpack/Unpacker.h"

namespace {

namespace fs = std::filesystem;
using namespace snapimport::unpack;

class BytesSource : public Source {
 public:
  BytesSource(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  size_t read(void* buf, size_t len) override {
    size_t k = std::min(len, n_ - pos_);
    std::memcpy(buf, d_ + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

fs::path g_base, g_root;

size_t countEntries(const fs::path& p) {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(p)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  snapimport::log::setLevel(snapimport::log::Level::Error);
  // tmpfs when there is one: the target writes real files on every run.
  std::string tmpl = fs::is_directory("/dev/shm") ? "/dev/shm/snapimport-fuzz-XXXXXX"
                                                  : "/tmp/snapimport-fuzz-XXXXXX";
  g_base = mkdtemp(tmpl.data());
  g_root = g_base / "root";
  fs::create_directory(g_root);
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(g_base, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kTypes[] = {"application/vnd.oci.image.layer.v1.tar",
                                 "application/vnd.oci.image.layer.v1.tar+gzip",
                                 "application/vnd.oci.image.layer.v1.tar+zstd"};
  const char* type = kTypes[data[0] % 3];
  BytesSource src(data + 1, size - 1);
  Options opts;
  opts.sync = false;
  // Small limits keep each run fast; the limit paths themselves are what gets exercised.
  opts.limits.maxUncompressedBytes = 8 << 20;
  opts.limits.maxEntries = 4000;
  bool ok = true;
  try {
    unpackLayer(src, type, g_root, opts);
  } catch (const UnpackError&) {
    ok = false;
  }
  if (!ok && countEntries(g_root) != 0) {
    std::fprintf(stderr, "refused layer left files behind\n");
    std::abort();
  }
  if (countEntries(g_base) != 1) {
    std::fprintf(stderr, "something was written outside the root\n");
    std::abort();
  }
  int fd = ::open(g_root.c_str(), O_RDONLY | O_DIRECTORY);
  SecureRoot::emptyDir(fd);
  ::close(fd);
  return 0;
}
