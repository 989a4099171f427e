#pragma once
// The importer's view of a registry: describe an image manifest and open verified layer streams.
// RegistryLayerFetcher implements it over registry::Client; the seam keeps the importer's
// scheduling testable on local files and keeps registry/ free of importer concerns.
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "unpack/Unpacker.h"

namespace snapimport::plugin {

struct LayerDescriptor {
  std::string digest;
  std::string mediaType;
  int64_t size = 0;
};

struct ImageLayers {
  std::vector<LayerDescriptor> layers;  // manifest order, bottom first
  std::vector<std::string> diffIds;     // from the image config, same order
};

// A fetch failure with a reason from metrics::kFailureReasons ("fetch", "auth", "verify", ...).
class FetchError : public std::runtime_error {
 public:
  FetchError(std::string reason, const std::string& message)
      : std::runtime_error(message), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

// Bytes of a blob already on this node (containerd wrote the manifest and the config of a pull
// into snapimport's content store before its first Prepare), at most maxBytes and verified
// against the digest; nullopt when absent or larger.
using LocalBlobReader =
    std::function<std::optional<std::string>(const std::string& digest, size_t maxBytes)>;

class LayerFetcher {
 public:
  virtual ~LayerFetcher() = default;
  // The layers of manifest `manifestDigest` of `imageRef` and the diff_ids of its config.
  virtual ImageLayers describe(const std::string& imageRef, const std::string& manifestDigest) = 0;
  // A stream of one layer blob whose size and digest are verified before it reports the end.
  virtual std::unique_ptr<unpack::Source> open(const std::string& imageRef,
                                               const LayerDescriptor& layer) = 0;
  // The registry host that serves `imageRef`, for per-host concurrency limits.
  virtual std::string hostOf(const std::string& imageRef) = 0;
  // True when open()'s streams check size and digest themselves, so the unpacker need not hash
  // the compressed bytes a second time.
  virtual bool verifiesDigests() const { return false; }
  // Where describe() may read manifests and configs instead of fetching them again.
  virtual void useLocalBlobs(LocalBlobReader) {}
};

}  // namespace snapimport::plugin
