#include "ContentReader.h"

namespace snapimport::store {

size_t ContentReader::readAt(int64_t offset, char* data, size_t size) const {
  return preadFull(fd_.get(), data, size, offset, "read blob " + digest_.str());
}

}  // namespace snapimport::store
