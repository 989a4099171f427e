#pragma once
// What the filesystem holding a regular file offers for O_DIRECT, as DirectFileWriter probes it.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>

namespace snapimport::testing {

// The file offset alignment of direct I/O on `file`'s filesystem; 0 when it takes none (tmpfs).
inline uint32_t directIoOffsetAlign(const std::filesystem::path& file) {
  struct statx stx {};
  if (::statx(AT_FDCWD, file.c_str(), 0, STATX_DIOALIGN, &stx) != 0) return 0;
  return (stx.stx_mask & STATX_DIOALIGN) ? stx.stx_dio_offset_align : 0;
}

}  // namespace snapimport::testing
