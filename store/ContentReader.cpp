#include "ContentReader.h"

#include <unistd.h>

#include <cerrno>

#include "StoreError.h"

namespace snapimport::store {

size_t ContentReader::readAt(int64_t offset, char* data, size_t size) const {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd_->get(), data + done, size - done, offset + static_cast<int64_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      // The message is only built on failure: this runs once per Read RPC.
      fail(ErrorClass::Internal, "read blob " + digest_.str() + ": read at offset " +
                                     std::to_string(offset + static_cast<int64_t>(done)) +
                                     " failed: " + errnoText(errno));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace snapimport::store
