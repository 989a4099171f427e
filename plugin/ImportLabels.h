#pragma once
// The labels containerd puts on Prepare for a layer it is about to unpack (reference §2.3, §3.4).
// Together they say which registry blob the snapshot should hold, which lets the importer fetch it
// itself.
#include <optional>
#include <string>
#include <vector>

#include "store/Snapshot.h"

namespace snapimport::plugin {

inline constexpr const char* kLabelSnapshotRef = "containerd.io/snapshot.ref";
inline constexpr const char* kLabelImageRef = "containerd.io/snapshot/cri.image-ref";
inline constexpr const char* kLabelManifestDigest = "containerd.io/snapshot/cri.manifest-digest";
inline constexpr const char* kLabelLayerDigest = "containerd.io/snapshot/cri.layer-digest";
inline constexpr const char* kLabelImageLayers = "containerd.io/snapshot/cri.image-layers";

struct ImportLabels {
  std::string chainId;                   // target chain ID (containerd.io/snapshot.ref)
  std::string imageRef;                  // normalised image reference
  std::string manifestDigest;            // the platform manifest's digest
  std::string layerDigest;               // this layer's compressed digest
  std::vector<std::string> imageLayers;  // this layer and every later one (may be cut short)

  // Present only when all four single-valued labels are there and the digests are well formed.
  static std::optional<ImportLabels> from(const store::Labels& labels);
};

// "sha256:" followed by 64 lowercase hex digits.
bool isSha256Digest(const std::string& s);

}  // namespace snapimport::plugin
