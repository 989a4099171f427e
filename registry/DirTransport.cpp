// dir:DIR, containers/image's directory format: manifest.json, blobs named by their hex digest,
// index children as <hex>.manifest.json, and a version file.
#include <filesystem>

#include "registry/Error.h"
#include "registry/FileBlob.h"
#include "registry/ImageTransport.h"

namespace fs = std::filesystem;

namespace snapimport::registry {
namespace {

constexpr const char* kVersion = "Directory Transport Version: 1.1\n";

std::string blobName(const Digest& d) {
  // sha256 blobs are named by hex alone; other algorithms keep a prefix (as containers/image).
  return d.algorithm() == "sha256" ? std::string(d.hex())
                                   : std::string(d.algorithm()) + "-" + std::string(d.hex());
}

class DirSource : public ImageSource {
 public:
  explicit DirSource(std::string dir) : dir_(std::move(dir)) {
    if (!fs::is_directory(dir_)) throw Error(ErrorKind::NotFound, describe() + ": not a directory");
  }
  std::string describe() const override { return "dir:" + dir_; }
  ManifestBlob topManifest() override {
    ManifestBlob b;
    b.bytes = readSmallFile((fs::path(dir_) / "manifest.json").string(), kMaxManifestSize);
    b.digest = digestOf(b.bytes);
    b.mediaType = detectManifestType(b.bytes, "", describe());
    return b;
  }
  ManifestBlob manifest(const Descriptor& d) override {
    auto p = fs::path(dir_) / (blobName(d.digest) + ".manifest.json");
    if (!fs::exists(p)) p = fs::path(dir_) / blobName(d.digest);
    return readVerifiedManifest(p.string(), d, describe());
  }
  std::unique_ptr<BlobReader> blob(const Descriptor& d, BlobCheck check) override {
    return openVerifiedFile((fs::path(dir_) / blobName(d.digest)).string(), 0, d, describe(),
                            check);
  }

 private:
  std::string dir_;
};

class DirDestination : public ImageDestination {
 public:
  explicit DirDestination(std::string dir) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    writeFileAtomic((fs::path(dir_) / "version").string(), kVersion);
  }
  std::string describe() const override { return "dir:" + dir_; }
  bool hasBlob(const Descriptor& d) override {
    std::error_code ec;
    return fs::file_size(fs::path(dir_) / blobName(d.digest), ec) ==
               static_cast<uint64_t>(d.size) &&
           !ec;
  }
  void putBlob(const Descriptor& d, const BlobSource& source, const std::string&) override {
    auto r = source();
    writeVerifiedBlob((fs::path(dir_) / blobName(d.digest)).string(), *r);
  }
  void putManifest(const ManifestBlob& m, bool top) override {
    auto name = top ? std::string("manifest.json") : blobName(m.digest) + ".manifest.json";
    writeFileAtomic((fs::path(dir_) / name).string(), m.bytes);
  }

 private:
  std::string dir_;
};

}  // namespace

std::unique_ptr<ImageSource> openDirSource(const std::string& dir) {
  if (dir.empty()) throw Error(ErrorKind::Invalid, "dir: needs a directory");
  return std::make_unique<DirSource>(dir);
}

std::unique_ptr<ImageDestination> openDirDestination(const std::string& dir) {
  if (dir.empty()) throw Error(ErrorKind::Invalid, "dir: needs a directory");
  return std::make_unique<DirDestination>(dir);
}

}  // namespace snapimport::registry
