#pragma once
// OCI descriptors and platforms, as they appear in manifests and indexes.
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "registry/Digest.h"

namespace snapimport::registry {

namespace mediatype {
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerSchema1 =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr const char* kDockerSchema1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
inline constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr const char* kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr const char* kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr const char* kDockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr const char* kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr const char* kDockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd";

bool isIndex(const std::string& mt);
bool isManifest(const std::string& mt);
bool isSchema1(const std::string& mt);
// Every manifest and index type we ask for, for the Accept header.
const char* acceptHeader();
}  // namespace mediatype

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string osVersion;
  std::vector<std::string> osFeatures;

  // "linux/arm64/v8", "linux/amd64", "arm64" (os defaults to linux). Throws Error(Invalid).
  static Platform parse(const std::string& text);
  // The platform this binary runs on.
  static Platform host();
  // containerd's normalisation: aarch64 -> arm64, arm64/v8 -> arm64, x86_64 -> amd64, ...
  Platform normalized() const;
  std::string str() const;
  bool operator==(const Platform&) const = default;
};

// Platforms acceptable for `want`, best first (amd64 also runs 386, arm/v7 runs v6 and v5, ...).
std::vector<Platform> compatiblePlatforms(const Platform& want);

struct Descriptor {
  std::string mediaType;
  Digest digest;
  int64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;
  std::string artifactType;

  // Throws Error(Invalid) when a field is missing or has the wrong type, or the digest is invalid.
  static Descriptor fromJson(const nlohmann::json& j);
  nlohmann::json toJson() const;
};

}  // namespace snapimport::registry
