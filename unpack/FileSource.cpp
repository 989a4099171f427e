#include "unpack/FileSource.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace snapimport::unpack {

FileSource::FileSource(const std::filesystem::path& path) : name_(path.string()) {
  if (path == "-") {
    fd_ = STDIN_FILENO;
    name_ = "stdin";
    return;
  }
  owned_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!owned_) {
    throw UnpackError("cannot open layer file " + path.string() + ": " + std::strerror(errno));
  }
  fd_ = owned_.get();
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
}

size_t FileSource::read(void* buf, size_t len) {
  for (;;) {
    ssize_t n = ::read(fd_, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    throw UnpackError("cannot read layer from " + name_ + ": " + std::strerror(errno));
  }
}

}  // namespace snapimport::unpack
