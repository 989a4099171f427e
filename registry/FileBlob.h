#pragma once
// Helpers shared by the file-based transports: verified file readers and atomic blob writes.
#include <string>

#include "registry/Client.h"
#include "registry/Descriptor.h"

namespace snapimport::registry {

// Streams `source` into `finalPath` through a temp file in the same directory, renaming only
// after the reader has verified size and digest. Returns bytes written.
uint64_t writeVerifiedBlob(const std::string& finalPath, BlobReader& source);
void writeFileAtomic(const std::string& path, const std::string& data);
std::string readSmallFile(const std::string& path, size_t limit);
// The manifest in file `path`, checked against `d` (its digest must match; media type detected
// as for a registry); `source` names the image in errors.
ManifestBlob readVerifiedManifest(const std::string& path, const Descriptor& d,
                                  const std::string& source);

}  // namespace snapimport::registry
