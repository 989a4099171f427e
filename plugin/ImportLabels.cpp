#include "ImportLabels.h"

namespace snapimport::plugin {

bool isSha256Digest(const std::string& s) {
  if (s.size() != 71 || s.rfind("sha256:", 0) != 0) return false;
  for (size_t i = 7; i < s.size(); ++i) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<ImportLabels> ImportLabels::from(const store::Labels& labels) {
  auto get = [&](const char* k) -> std::string {
    auto it = labels.find(k);
    return it == labels.end() ? std::string() : it->second;
  };
  ImportLabels l;
  l.chainId = get(kLabelSnapshotRef);
  l.imageRef = get(kLabelImageRef);
  l.manifestDigest = get(kLabelManifestDigest);
  l.layerDigest = get(kLabelLayerDigest);
  if (l.imageRef.empty() || !isSha256Digest(l.chainId) || !isSha256Digest(l.manifestDigest) ||
      !isSha256Digest(l.layerDigest)) {
    return std::nullopt;
  }
  std::string layers = get(kLabelImageLayers);
  size_t start = 0;
  while (start < layers.size()) {
    size_t comma = layers.find(',', start);
    std::string d =
        layers.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    // The list is cut to fit the 4096-byte label limit; a cut entry is just dropped.
    if (isSha256Digest(d)) l.imageLayers.push_back(d);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (l.imageLayers.empty() || l.imageLayers.front() != l.layerDigest) {
    l.imageLayers.insert(l.imageLayers.begin(), l.layerDigest);
  }
  return l;
}

}  // namespace snapimport::plugin
