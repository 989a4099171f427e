#pragma once
// Copies an image (or with `all`, every image of an index) from a source to a destination: blobs
// first (in parallel, skipping what the destination has), then each manifest, then the index,
// then the name (tag). Manifest bytes are never rewritten, so digests survive the copy.
#include <functional>
#include <string>

#include "registry/ImageTransport.h"

namespace snapimport::registry {

class CopyObserver {
 public:
  virtual ~CopyObserver() = default;
  virtual void blobStarted(const Descriptor&) {}
  virtual void blobProgress(const Descriptor&, uint64_t /*done*/) {}
  virtual void blobFinished(const Descriptor&, bool /*skipped*/) {}
  virtual void manifestWritten(const ManifestBlob&) {}
};

struct CopyOptions {
  bool all = false;  // every platform of an index
  Platform platform = Platform::host();
  int parallelBlobs = 4;
  CopyObserver* observer = nullptr;
};

struct CopyResult {
  Digest digest;  // of what the destination name now points at
  uint64_t bytesCopied = 0;
  int blobsCopied = 0, blobsSkipped = 0;
};

CopyResult copyImage(ImageSource& src, ImageDestination& dst, const CopyOptions& options);

}  // namespace snapimport::registry
