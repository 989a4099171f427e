#pragma once
// OCI image layouts (oci:DIR[:TAG]): blobs/<alg>/<hex>, index.json with
// org.opencontainers.image.ref.name annotations, oci-layout. The writer is reused by
// docker-archive, whose Docker 25+ form is an OCI layout plus manifest.json.
#include <nlohmann/json.hpp>
#include <string>

#include "registry/ImageTransport.h"

namespace snapimport::registry {

inline constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

class OciLayoutWriter : public ImageDestination {
 public:
  OciLayoutWriter(std::string dir, std::string tag);
  std::string describe() const override { return "oci:" + dir_ + (tag_.empty() ? "" : ":" + tag_); }
  bool hasBlob(const Descriptor& d) override;
  void putBlob(const Descriptor& d, const BlobSource& source,
               const std::string& mountFrom) override;
  void putManifest(const ManifestBlob& m, bool top) override;
  void commit() override;

  std::string blobPath(const Digest& d) const;
  const std::string& dir() const { return dir_; }
  // The top manifest written (for docker-archive's manifest.json).
  const ManifestBlob& top() const { return top_; }

 private:
  std::string dir_;
  std::string tag_;
  nlohmann::ordered_json index_;
  ManifestBlob top_;
};

}  // namespace snapimport::registry
