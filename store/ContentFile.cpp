#include "ContentFile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "NoSpace.h"
#include "StoreError.h"

namespace snapimport::store {

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string errnoText(int err) { return std::strerror(err); }

void pwriteAll(int fd, const char* data, size_t size, int64_t offset, const std::string& what) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      failSystem(kAreaContent, what + ": write at offset " + std::to_string(offset) + " failed",
                 errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
}

size_t preadFull(int fd, char* data, size_t size, int64_t offset, const std::string& what) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, data + done, size - done, offset + static_cast<int64_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(ErrorClass::Internal, what + ": read at offset " + std::to_string(offset + done) +
                                     " failed: " + errnoText(errno));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void syncDirectory(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    failSystem(kAreaContent, "sync directory " + dir.string() + " failed", errno);
  }
}

void makePrivateDirs(const std::filesystem::path& dir) {
  if (dir.empty()) return;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      fail(ErrorClass::Internal, dir.string() + " exists and is not a directory");
    return;
  }
  makePrivateDirs(dir.parent_path());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    failSystem(kAreaContent, "create directory " + dir.string() + " failed", errno);
  }
}

}  // namespace snapimport::store
