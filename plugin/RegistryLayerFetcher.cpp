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

RegistryLayerFetcher::RegistryLayerFetcher(registry::ClientOptions options, size_t maxConfigBytes)
    : client_(std::move(options)), maxConfigBytes_(maxConfigBytes) {}

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

ImageLayers RegistryLayerFetcher::describe(const std::string& imageRef, const std::string& manifestDigest) {
  try {
    registry::Reference ref = registry::Reference::parse(imageRef).withDigest(registry::Digest::parse(manifestDigest));
    registry::ManifestBlob blob = client_.getManifest(ref);
    registry::ImageManifest manifest = registry::parseManifest(blob.bytes, ref.str());
    ImageLayers out;
    for (const auto& d : manifest.layers) out.layers.push_back({d.digest.str(), d.mediaType, d.size});
    // Image configs are small; the cap keeps a hostile registry from feeding us gigabytes of JSON.
    std::string config = client_.fetchBlob(ref, manifest.config, maxConfigBytes_);
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

std::unique_ptr<unpack::Source> RegistryLayerFetcher::open(const std::string& imageRef, const LayerDescriptor& layer) {
  try {
    registry::Reference ref = registry::Reference::parse(imageRef);
    registry::Descriptor d;
    d.mediaType = layer.mediaType;
    d.digest = registry::Digest::parse(layer.digest);
    d.size = layer.size;
    return std::make_unique<BlobSource>(client_.openBlob(ref, d));
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
