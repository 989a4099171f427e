#pragma once
// LayerFetcher over registry::Client: manifests by digest, the config's diff_ids, verified layer
// streams. Credentials and mirrors come from the client's options (docker config.json, credential
// helpers, hosts.toml, credential providers), and for a CRI pull that brought its own credential
// (PullCredentials) from a client of that pull alone, so its tokens serve nobody else.
// Manifests and configs containerd already wrote into the content store are read from there.
#include <map>
#include <memory>
#include <mutex>

#include "LayerFetcher.h"
#include "PullCredentials.h"
#include "registry/Client.h"

namespace snapimport::plugin {

class RegistryLayerFetcher : public LayerFetcher {
 public:
  // maxConfigBytes caps the image config read to learn the diff_ids.
  explicit RegistryLayerFetcher(registry::ClientOptions options, size_t maxConfigBytes = 8 << 20,
                                std::shared_ptr<PullCredentials> pullCredentials = nullptr);
  ImageLayers describe(const std::string& imageRef, const std::string& manifestDigest) override;
  std::unique_ptr<unpack::Source> open(const std::string& imageRef,
                                       const LayerDescriptor& layer) override;
  std::string hostOf(const std::string& imageRef) override;
  // registry::BlobReader reports the end of a blob only after its size and digest matched.
  bool verifiesDigests() const override { return true; }
  void useLocalBlobs(LocalBlobReader reader) override;

  // Maps a registry error to a metrics failure reason ("auth", "fetch", "verify").
  static std::string reasonFor(const registry::Error& e);

  // How many manifests and configs describe() took from the content store instead of the
  // registry (tests, the log).
  struct Stats {
    uint64_t localManifests = 0, localConfigs = 0, pullClients = 0;
  };
  Stats stats();

 private:
  // The client for requests on behalf of imageRef: the pull's own when it brought a credential.
  std::shared_ptr<registry::Client> clientFor(const std::string& imageRef);
  std::optional<std::string> local(const std::string& digest, size_t maxBytes);

  registry::ClientOptions options_;
  std::shared_ptr<registry::Client> client_;
  size_t maxConfigBytes_;
  std::shared_ptr<PullCredentials> pullCredentials_;
  std::mutex mu_;
  LocalBlobReader localBlobs_;
  std::map<uint64_t, std::shared_ptr<registry::Client>> pullClients_;  // by PullCredentials ticket
  Stats stats_;
};

}  // namespace snapimport::plugin
