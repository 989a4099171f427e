#pragma once
#include <filesystem>

#include "unpack/Fd.h"
#include "unpack/Unpacker.h"

namespace snapimport::unpack {

// A Source over a file descriptor (a file, stdin or a pipe).
class FileSource : public Source {
 public:
  // Opens `path` read-only; "-" means stdin (not closed afterwards).
  explicit FileSource(const std::filesystem::path& path);
  // Borrows `fd`; the caller keeps ownership.
  explicit FileSource(int fd) : fd_(fd) {}
  size_t read(void* buf, size_t len) override;

 private:
  Fd owned_;
  int fd_ = -1;
  std::string name_ = "fd";
};

}  // namespace snapimport::unpack
