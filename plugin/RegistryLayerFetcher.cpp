#include "RegistryLayerFetcher.h"

#include <nlohmann/json.hpp>

namespace snapimport::plugin {
namespace {

class BlobSource : public unpack::Source {
 public:
  explicit BlobSource(std::unique_ptr<registry::BlobReader> r) : reader_(std::move(r)) {}
  size_t read(void* buf, size_t len) override {
    try {
      return reader_->read(buf, len);
    } catch (const registry::Error& e) {
      throw FetchError(RegistryLayerFetcher::reasonFor(e), e.what());
    }
  }

 private:
  std::unique_ptr<registry::BlobReader> reader_;
};

}  // namespace

RegistryLayerFetcher::RegistryLayerFetcher(registry::ClientOptions options, size_t maxConfigBytes,
                                           std::shared_ptr<PullCredentials> pullCredentials)
    : options_(std::move(options)),
      client_(std::make_shared<registry::Client>(options_)),
      maxConfigBytes_(maxConfigBytes),
      pullCredentials_(std::move(pullCredentials)) {}

void RegistryLayerFetcher::useLocalBlobs(LocalBlobReader reader) {
  std::lock_guard lock(mu_);
  localBlobs_ = std::move(reader);
}

RegistryLayerFetcher::Stats RegistryLayerFetcher::stats() {
  std::lock_guard lock(mu_);
  return stats_;
}

std::optional<std::string> RegistryLayerFetcher::local(const std::string& digest, size_t maxBytes) {
  LocalBlobReader reader;
  {
    std::lock_guard lock(mu_);
    reader = localBlobs_;
  }
  if (!reader) return std::nullopt;
  return reader(digest, maxBytes);
}

std::shared_ptr<registry::Client> RegistryLayerFetcher::clientFor(const std::string& imageRef) {
  if (!pullCredentials_) return client_;
  auto found = pullCredentials_->find(imageRef);
  std::lock_guard lock(mu_);
  // Clients of pulls whose credential is gone go with it (their tokens too).
  for (auto it = pullClients_.begin(); it != pullClients_.end();) {
    if (!found || it->first != found->ticket) {
      if (!pullCredentials_->live(it->first)) {
        it = pullClients_.erase(it);
        continue;
      }
    }
    ++it;
  }
  if (!found) return client_;
  auto& c = pullClients_[found->ticket];
  if (!c) {
    registry::ClientOptions o = options_;
    o.pullCredential = found->credential;
    c = std::make_shared<registry::Client>(std::move(o));
    ++stats_.pullClients;
  }
  return c;
}

std::string RegistryLayerFetcher::reasonFor(const registry::Error& e) {
  switch (e.kind()) {
    case registry::ErrorKind::Unauthorized:
    case registry::ErrorKind::Denied:
      return "auth";
    case registry::ErrorKind::Verification:
      return "verify";
    default:
      return "fetch";
  }
}

ImageLayers RegistryLayerFetcher::describe(const std::string& imageRef,
                                           const std::string& manifestDigest) {
  try {
    registry::Reference ref =
        registry::Reference::parse(imageRef).withDigest(registry::Digest::parse(manifestDigest));
    std::shared_ptr<registry::Client> client;
    // containerd fetched (and verified) both before its first Prepare; asking the registry again
    // costs two round trips before the first layer starts, and a manifest GET counts against
    // pull-rate limits.
    std::optional<std::string> manifestBytes = local(manifestDigest, options_.maxManifestBytes);
    if (manifestBytes) {
      std::lock_guard lock(mu_);
      ++stats_.localManifests;
    } else {
      client = clientFor(imageRef);
      manifestBytes = client->getManifest(ref).bytes;
    }
    registry::ImageManifest manifest = registry::parseManifest(*manifestBytes, ref.str());
    ImageLayers out;
    for (const auto& d : manifest.layers)
      out.layers.push_back({d.digest.str(), d.mediaType, d.size});
    // Image configs are small; the cap keeps a hostile registry from feeding us gigabytes of JSON.
    std::optional<std::string> localConfig =
        manifest.config.size <= static_cast<int64_t>(maxConfigBytes_)
            ? local(manifest.config.digest.str(), maxConfigBytes_)
            : std::nullopt;
    std::string config;
    if (localConfig) {
      config = std::move(*localConfig);
      std::lock_guard lock(mu_);
      ++stats_.localConfigs;
    } else {
      if (!client) client = clientFor(imageRef);
      config = client->fetchBlob(ref, manifest.config, maxConfigBytes_);
    }
    nlohmann::json j = nlohmann::json::parse(config, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("rootfs") || !j["rootfs"].is_object() ||
        !j["rootfs"].contains("diff_ids") || !j["rootfs"]["diff_ids"].is_array()) {
      throw FetchError("verify", "config " + manifest.config.digest.str() + " of " + imageRef +
                                     " has no rootfs.diff_ids array");
    }
    for (const auto& d : j["rootfs"]["diff_ids"]) {
      if (!d.is_string() || !registry::Digest::isValid(d.get<std::string>())) {
        throw FetchError("verify", "config " + manifest.config.digest.str() + " of " + imageRef +
                                       " has a malformed diff_id");
      }
      out.diffIds.push_back(d.get<std::string>());
    }
    return out;
  } catch (const registry::Error& e) {
    throw FetchError(reasonFor(e), e.what());
  }
}

std::unique_ptr<unpack::Source> RegistryLayerFetcher::open(const std::string& imageRef,
                                                           const LayerDescriptor& layer) {
  try {
    registry::Reference ref = registry::Reference::parse(imageRef);
    registry::Descriptor d;
    d.mediaType = layer.mediaType;
    d.digest = registry::Digest::parse(layer.digest);
    d.size = layer.size;
    return std::make_unique<BlobSource>(clientFor(imageRef)->openBlob(ref, d));
  } catch (const registry::Error& e) {
    throw FetchError(reasonFor(e), e.what());
  }
}

std::string RegistryLayerFetcher::hostOf(const std::string& imageRef) {
  try {
    return registry::Reference::parse(imageRef).domain;
  } catch (const registry::Error&) {
    return imageRef;
  }
}

}  // namespace snapimport::plugin
