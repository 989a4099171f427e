#include "WrittenImageIndex.h"

#include <nlohmann/json.hpp>

#include "ChainId.h"
#include "ImportLabels.h"
#include "registry/Manifest.h"

namespace snapimport::plugin {

bool WrittenImageIndex::addManifest(const std::string& digest, const std::string& bytes) {
  Manifest m;
  try {
    registry::ImageManifest parsed = registry::parseManifest(bytes, "manifest " + digest);
    m.config = parsed.config.digest.str();
    for (const auto& l : parsed.layers) {
      m.layers.emplace_back(l.digest.str(), static_cast<uint64_t>(std::max<int64_t>(l.size, 0)));
    }
  } catch (const std::exception&) {
    return false;  // an index, an artifact manifest, or not JSON: nothing to learn from it
  }
  std::lock_guard lock(mu_);
  if (manifests_.size() >= kMaxImages) {
    manifests_.clear();
    configs_.clear();
    diffIds_.clear();
    chains_.clear();
    imageOfLayer_.clear();
  }
  auto& slot = manifests_[digest];
  std::string ref = std::move(slot.ref);  // a label may have come first
  slot = std::move(m);
  slot.ref = std::move(ref);
  linkLocked(digest);
  return true;
}

bool WrittenImageIndex::addConfig(const std::string& digest, const std::string& bytes) {
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object()) return false;
  auto ids = rootfs->find("diff_ids");
  if (ids == rootfs->end() || !ids->is_array()) return false;
  std::vector<std::string> diffIds;
  for (const auto& d : *ids) {
    if (!d.is_string() || !isSha256Digest(d.get<std::string>())) return false;
    diffIds.push_back(d.get<std::string>());
  }
  std::lock_guard lock(mu_);
  if (configs_.size() >= kMaxImages) configs_.clear();
  configs_[digest] = std::move(diffIds);
  for (const auto& [md, m] : manifests_) {
    if (m.config == digest) linkLocked(md);
  }
  return true;
}

void WrittenImageIndex::addSourceLabel(const std::string& manifestDigest, const std::string& host,
                                       const std::string& repo) {
  std::lock_guard lock(mu_);
  auto it = manifests_.find(manifestDigest);
  if (it == manifests_.end()) return;
  it->second.ref = host + "/" + repo + "@" + manifestDigest;
}

void WrittenImageIndex::linkLocked(const std::string& manifestDigest) {
  const Manifest& m = manifests_.at(manifestDigest);
  auto c = configs_.find(m.config);
  if (c == configs_.end()) return;
  const std::vector<std::string>& diffIds = c->second;
  // A config that disagrees with its manifest about the number of layers describes no image
  // containerd could unpack; learn nothing from it.
  if (diffIds.size() != m.layers.size()) return;
  std::string parent;
  for (size_t i = 0; i < diffIds.size(); ++i) {
    const std::string& blob = m.layers[i].first;
    std::string chain = chainIdOf(parent, diffIds[i]);
    diffIds_[blob] = diffIds[i];
    imageOfLayer_[blob] = manifestDigest;
    std::string below = i > 0 ? m.layers[i - 1].first : std::string();
    chains_[chain] =
        Chain{parent, {blob, diffIds[i], manifestDigest, below, i + 1 == diffIds.size()}};
    parent = chain;
  }
}

std::optional<WrittenImageIndex::ExpectedLayer> WrittenImageIndex::layerAt(
    const std::string& parentChain, const std::string& chainId) const {
  std::lock_guard lock(mu_);
  auto it = chains_.find(chainId);
  if (it == chains_.end() || it->second.parentChain != parentChain) return std::nullopt;
  return it->second.layer;
}

std::string WrittenImageIndex::diffIdOf(const std::string& layerDigest) const {
  std::lock_guard lock(mu_);
  auto it = diffIds_.find(layerDigest);
  return it == diffIds_.end() ? std::string() : it->second;
}

std::optional<WrittenImageIndex::Image> WrittenImageIndex::imageOf(
    const std::string& layerDigest) const {
  std::lock_guard lock(mu_);
  auto it = imageOfLayer_.find(layerDigest);
  if (it == imageOfLayer_.end()) return std::nullopt;
  auto m = manifests_.find(it->second);
  if (m == manifests_.end()) return std::nullopt;
  return Image{m->second.ref.empty() ? m->first : m->second.ref, m->first, m->second.layers};
}

bool WrittenImageIndex::lists(const std::string& manifestDigest,
                              const std::string& layerDigest) const {
  std::lock_guard lock(mu_);
  auto m = manifests_.find(manifestDigest);
  if (m == manifests_.end()) return false;
  for (const auto& [d, size] : m->second.layers)
    if (d == layerDigest) return true;
  return false;
}

}  // namespace snapimport::plugin
