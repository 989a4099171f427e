#include "registry/ImageTransport.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "registry/Error.h"
#include "registry/FileBlob.h"

namespace fs = std::filesystem;

namespace snapimport::registry {

// Defined in the transport files.
std::unique_ptr<ImageSource> openRegistrySource(const std::string& ref, const ClientOptions& o);
std::unique_ptr<ImageDestination> openRegistryDestination(const std::string& ref,
                                                          const ClientOptions& o);
std::unique_ptr<ImageSource> openOciSource(const std::string& spec);
std::unique_ptr<ImageDestination> openOciDestination(const std::string& spec);
std::unique_ptr<ImageSource> openDirSource(const std::string& dir);
std::unique_ptr<ImageDestination> openDirDestination(const std::string& dir);
std::unique_ptr<ImageSource> openArchiveSource(const std::string& spec);
std::unique_ptr<ImageDestination> openArchiveDestination(const std::string& spec);

namespace {

[[noreturn]] void badName(const std::string& name) {
  throw Error(ErrorKind::Invalid,
              "invalid image name '" + name +
                  "': use docker://REF, oci:DIR[:TAG], docker-archive:FILE[:REF] or dir:DIR");
}

class FileReader : public BlobReader {
 public:
  FileReader(const std::string& path, uint64_t offset, const Descriptor& d, std::string what,
             BlobCheck check)
      : desc_(d),
        hasher_(d.digest.algorithm()),
        checkDigest_(check == BlobCheck::SizeAndDigest),
        left_(static_cast<uint64_t>(d.size)),
        what_(std::move(what)),
        path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      throw Error(errno == ENOENT ? ErrorKind::NotFound : ErrorKind::Io,
                  what_ + ": blob " + d.digest.str() + " missing: cannot open " + path + ": " +
                      std::strerror(errno));
    }
    offset_ = offset;
  }
  ~FileReader() override {
    if (fd_ >= 0) ::close(fd_);
  }
  // Only whole files are read, so one more byte than the size is never asked for: an archive
  // member is exactly sized by the archive's index, and a longer layout file changes the digest.
  size_t read(void* buf, size_t len) override {
    if (left_ == 0) {
      checkDigest();  // an empty blob
      return 0;
    }
    ssize_t n = ::pread(fd_, buf, std::min<uint64_t>(len, left_), static_cast<off_t>(offset_));
    if (n < 0)
      throw Error(ErrorKind::Io, what_ + ": reading " + path_ + ": " + std::strerror(errno));
    if (n == 0) {
      throw Error(ErrorKind::Verification, what_ + ": blob " + desc_.digest.str() + " in " + path_ +
                                               " is shorter than its size " +
                                               std::to_string(desc_.size));
    }
    if (checkDigest_) hasher_.update(buf, static_cast<size_t>(n));
    offset_ += static_cast<uint64_t>(n);
    left_ -= static_cast<uint64_t>(n);
    // Checked before the last bytes are handed out: an upload reads exactly the size and never
    // asks again, so a check on a later read would never run for it.
    if (left_ == 0) checkDigest();
    return static_cast<size_t>(n);
  }

 private:
  void checkDigest() {
    if (!checkDigest_ || checked_) return;
    Digest got = hasher_.digest();
    if (got != desc_.digest) {
      throw Error(ErrorKind::Verification, what_ + ": blob " + desc_.digest.str() + " in " + path_ +
                                               " hashes to " + got.str() + "; refusing it");
    }
    checked_ = true;
  }

  Descriptor desc_;
  Hasher hasher_;
  bool checkDigest_;
  bool checked_ = false;
  uint64_t left_;
  uint64_t offset_ = 0;
  std::string what_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace

std::unique_ptr<BlobReader> openVerifiedFile(const std::string& path, uint64_t offset,
                                             const Descriptor& d, const std::string& what,
                                             BlobCheck check) {
  return std::make_unique<FileReader>(path, offset, d, what, check);
}

uint64_t writeVerifiedBlob(const std::string& finalPath, BlobReader& source) {
  fs::path target(finalPath);
  fs::create_directories(target.parent_path());
  std::string tmp = (target.parent_path() /
                     (".tmp-" + target.filename().string() + "-" + std::to_string(::getpid())))
                        .string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorKind::Io, "cannot create " + tmp + ": " + std::strerror(errno));
  uint64_t total = 0;
  try {
    std::vector<char> buf(1 << 20);
    while (size_t n = source.read(buf.data(), buf.size())) {
      size_t off = 0;
      while (off < n) {
        ssize_t w = ::write(fd, buf.data() + off, n - off);
        if (w < 0) throw Error(ErrorKind::Io, "writing " + tmp + ": " + std::strerror(errno));
        off += static_cast<size_t>(w);
      }
      total += n;
    }
    if (::fsync(fd) != 0) throw Error(ErrorKind::Io, "fsync " + tmp + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());  // nothing unverified is left behind
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), finalPath.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::Io, "rename to " + finalPath + ": " + std::strerror(errno));
  }
  return total;
}

void writeFileAtomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
    out.flush();
    if (!out) throw Error(ErrorKind::Io, "cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw Error(ErrorKind::Io, "rename to " + path + ": " + std::strerror(errno));
  }
}

std::string readSmallFile(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::NotFound, "cannot read " + path);
  std::string s;
  s.resize(limit + 1);
  in.read(s.data(), static_cast<std::streamsize>(limit + 1));
  s.resize(static_cast<size_t>(in.gcount()));
  if (s.size() > limit)
    throw Error(ErrorKind::Invalid, path + " is larger than " + std::to_string(limit) + " bytes");
  return s;
}

ManifestBlob readVerifiedManifest(const std::string& path, const Descriptor& d,
                                  const std::string& source) {
  ManifestBlob b;
  b.bytes = readSmallFile(path, kMaxManifestSize);
  b.digest = digestOf(b.bytes, d.digest.algorithm());
  if (b.digest != d.digest) {
    throw Error(ErrorKind::Verification,
                source + ": manifest " + d.digest.str() + " hashes to " + b.digest.str());
  }
  b.mediaType = detectManifestType(b.bytes, d.mediaType, source);
  return b;
}

std::unique_ptr<ImageSource> openSource(const std::string& name, const EndpointOptions& options) {
  if (name.starts_with("docker://")) return openRegistrySource(name.substr(9), options.client);
  if (name.starts_with("oci:")) return openOciSource(name.substr(4));
  if (name.starts_with("dir:")) return openDirSource(name.substr(4));
  if (name.starts_with("docker-archive:")) return openArchiveSource(name.substr(15));
  badName(name);
}

std::unique_ptr<ImageDestination> openDestination(const std::string& name,
                                                  const EndpointOptions& options) {
  if (name.starts_with("docker://")) return openRegistryDestination(name.substr(9), options.client);
  if (name.starts_with("oci:")) return openOciDestination(name.substr(4));
  if (name.starts_with("dir:")) return openDirDestination(name.substr(4));
  if (name.starts_with("docker-archive:")) return openArchiveDestination(name.substr(15));
  badName(name);
}

}  // namespace snapimport::registry
