#pragma once
// Manifests and indexes: validation of the exact bytes a registry (or a layout) handed us, and
// platform selection. Bytes are never re-serialised: digests are over what was read.
#include <cstddef>
#include <string>
#include <vector>

#include "registry/Descriptor.h"

namespace snapimport::registry {

// The cap containers/image uses (distribution refuses manifest PUTs above 4 MiB too).
inline constexpr size_t kMaxManifestSize = 4 << 20;

// Manifest or index bytes with the media type they were served as and their digest.
struct ManifestBlob {
  std::string bytes;
  std::string mediaType;
  Digest digest;
};

struct ImageManifest {
  std::string mediaType;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
};

struct ImageIndex {
  std::string mediaType;
  std::vector<Descriptor> manifests;
};

// Works out the media type of `bytes`: the body's mediaType, checked against the Content-Type it
// was served with (empty when unknown). Refuses schema1 by name, ambiguous documents (manifests
// together with layers/config, CVE-2021-41190), non-JSON and oversize bodies. `what` names the
// image for messages.
std::string detectManifestType(const std::string& bytes, const std::string& contentType,
                               const std::string& what);
ImageManifest parseManifest(const std::string& bytes, const std::string& what);
ImageIndex parseIndex(const std::string& bytes, const std::string& what);

bool isAttestation(const Descriptor& d);
// The entry of `index` for `want`: attestations and unknown media types are skipped; the best
// compatible platform wins, the first entry among equals. Throws Error(NotFound) listing what the
// index offers.
Descriptor selectPlatform(const ImageIndex& index, const Platform& want, const std::string& what);

}  // namespace snapimport::registry
