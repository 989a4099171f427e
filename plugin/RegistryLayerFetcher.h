#pragma once
// LayerFetcher over registry::Client: manifests by digest, the config's diff_ids, verified layer
// streams. Credentials and mirrors come from the client's options (docker config.json, credential
// helpers, hosts.toml).
#include <memory>

#include "LayerFetcher.h"
#include "registry/Client.h"

namespace snapimport::plugin {

class RegistryLayerFetcher : public LayerFetcher {
 public:
  // maxConfigBytes caps the image config read to learn the diff_ids.
  explicit RegistryLayerFetcher(registry::ClientOptions options, size_t maxConfigBytes = 8 << 20);
  ImageLayers describe(const std::string& imageRef, const std::string& manifestDigest) override;
  std::unique_ptr<unpack::Source> open(const std::string& imageRef, const LayerDescriptor& layer) override;
  std::string hostOf(const std::string& imageRef) override;
  // registry::BlobReader reports the end of a blob only after its size and digest matched.
  bool verifiesDigests() const override { return true; }

  // Maps a registry error to a metrics failure reason ("auth", "fetch", "verify").
  static std::string reasonFor(const registry::Error& e);

 private:
  registry::Client client_;
  size_t maxConfigBytes_;
};

}  // namespace snapimport::plugin
