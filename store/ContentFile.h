#pragma once
// File-descriptor helpers for the content store: an owning fd, and loops that finish partial
// reads and writes. Errors name the operation and path and carry strerror.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

namespace snapimport::store {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// Writes all of [data, data+size) at `offset`; throws Internal naming `what`, or
// ResourceExhausted when the disk is full (NoSpace.h). The helpers below do the same.
void pwriteAll(int fd, const char* data, size_t size, int64_t offset, const std::string& what);
// Reads up to `size` bytes at `offset`, fewer only at end of file. Throws Internal naming `what`.
size_t preadFull(int fd, char* data, size_t size, int64_t offset, const std::string& what);
// fsync(2) on an open directory, so a rename or unlink in it survives a power cut.
void syncDirectory(const std::filesystem::path& dir);
// mkdir -p with mode 0700 for every directory it creates.
void makePrivateDirs(const std::filesystem::path& dir);
std::string errnoText(int err);

}  // namespace snapimport::store
