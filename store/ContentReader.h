#pragma once
// An open committed blob. It stays readable even if the blob is deleted meanwhile (the fd keeps
// the inode), so a Read that has started always finishes consistently. Copies share one open
// file: ContentStore hands the same one to every Read of a blob for a short while
// (ContentStore::openReader), since containerd reads a layer as one Read RPC per 32 KiB.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ContentFile.h"
#include "Digest.h"

namespace snapimport::store {

class ContentReader {
 public:
  ContentReader(Digest digest, std::shared_ptr<const UniqueFd> fd, int64_t size)
      : digest_(std::move(digest)), fd_(std::move(fd)), size_(size) {}

  const Digest& digest() const { return digest_; }
  int64_t size() const { return size_; }
  // Reads up to `size` bytes at `offset`; fewer only at the end of the blob. pread only, so
  // readers sharing the file never disturb each other.
  size_t readAt(int64_t offset, char* data, size_t size) const;

 private:
  Digest digest_;
  std::shared_ptr<const UniqueFd> fd_;
  int64_t size_;
};

}  // namespace snapimport::store
