#pragma once
// What containerd's own writes into snapimport's content store say about the images being pulled.
// containerd writes an image's manifest (ingest ref "manifest-sha256:...") and config
// ("config-sha256:...") before it fetches any layer, and a layer write carries nothing but the
// blob's digest. Matching a Prepare for chain ID C on a parent with chain ID P to a layer that is
// still streaming in needs that layer's diff_id before its stream is done: the manifest's layer
// order together with the config's rootfs.diff_ids gives layer digest -> diff_id and
// (P, diff_id) -> C. Nothing here is trusted for what it commits: the staged layer's own diff_id
// is checked against the chain ID before commit (WriteImporter).
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace snapimport::plugin {

class WrittenImageIndex {
 public:
  // Past this many manifests (or configs) everything is forgotten at once: a node sees a modest
  // number of images between restarts, and a wrong guess only costs a fallback.
  static constexpr size_t kMaxImages = 512;

  // Bytes of a committed (so digest-verified) manifest or config blob. Documents that do not
  // parse (an index, an artifact, garbage) are ignored; false says so, for tests.
  bool addManifest(const std::string& digest, const std::string& bytes);
  bool addConfig(const std::string& digest, const std::string& bytes);
  // containerd labels a manifest "containerd.io/distribution.source.<host>=<repo>"; that gives
  // the image a name for `snapimport status`.
  void addSourceLabel(const std::string& manifestDigest, const std::string& host,
                      const std::string& repo);

  // The layer expected at chain `chainId` on top of chain `parentChain` ("" for the bottom
  // layer), with the diff_id the config gives it.
  struct ExpectedLayer {
    std::string blobDigest;
    std::string diffId;
    std::string manifest;  // one manifest that lists it
    std::string below;     // blob digest of the layer under it there; empty for the bottom one
    bool top = false;      // it is that image's last layer
  };
  std::optional<ExpectedLayer> layerAt(const std::string& parentChain,
                                       const std::string& chainId) const;
  // The diff_id an indexed config gives blob `layerDigest`; empty when no indexed image has it.
  std::string diffIdOf(const std::string& layerDigest) const;

  // An indexed image that lists `layerDigest`: its name (registry/repo@manifest, or just the
  // manifest digest without a source label), manifest and layers (digest, size), bottom first.
  struct Image {
    std::string ref;
    std::string manifest;
    std::vector<std::pair<std::string, uint64_t>> layers;
  };
  std::optional<Image> imageOf(const std::string& layerDigest) const;
  // True when indexed manifest `manifestDigest` lists layer `layerDigest`.
  bool lists(const std::string& manifestDigest, const std::string& layerDigest) const;

 private:
  struct Manifest {
    std::string config;
    std::vector<std::pair<std::string, uint64_t>> layers;
    std::string ref;
  };
  struct Chain {
    std::string parentChain;
    ExpectedLayer layer;
  };
  // Links manifest `digest` with its config once both are known.
  void linkLocked(const std::string& manifestDigest);

  mutable std::mutex mu_;
  std::map<std::string, Manifest> manifests_;                // by manifest digest
  std::map<std::string, std::vector<std::string>> configs_;  // config digest -> diff_ids
  std::map<std::string, std::string> diffIds_;               // layer digest -> diff_id
  std::map<std::string, Chain> chains_;                      // chain ID -> layer
  std::map<std::string, std::string> imageOfLayer_;          // layer digest -> manifest
};

}  // namespace snapimport::plugin
