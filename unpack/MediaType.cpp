#include "unpack/MediaType.h"

#include <array>
#include <utility>

namespace snapimport::unpack {
namespace {

// registry-and-security.md §4: OCI, OCI non-distributable, Docker and Docker foreign layers.
constexpr std::array<std::pair<std::string_view, Compression>, 13> kLayerTypes{{
    {"application/vnd.oci.image.layer.v1.tar", Compression::None},
    {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::Gzip},
    {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::Zstd},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::None},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::Gzip},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::Zstd},
    {"application/vnd.docker.image.rootfs.diff.tar", Compression::None},
    {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::Gzip},
    {"application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::Zstd},
    {"application/vnd.docker.image.rootfs.foreign.diff.tar", Compression::None},
    {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::Gzip},
    {"application/vnd.docker.image.rootfs.foreign.diff.tar.zstd", Compression::Zstd},
    // Schema 1 era Docker layers, still found in old registries.
    {"application/vnd.docker.image.rootfs.diff.tar.gzip+v1", Compression::Gzip},
}};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<Compression> layerCompression(std::string_view mediaType) {
  if (auto semi = mediaType.find(';'); semi != std::string_view::npos) {
    mediaType = mediaType.substr(0, semi);
  }
  mediaType = trim(mediaType);
  for (const auto& [type, compression] : kLayerTypes) {
    if (type == mediaType) return compression;
  }
  return std::nullopt;
}

std::optional<Compression> compressionByName(std::string_view name) {
  if (name == "tar" || name == "none") return Compression::None;
  if (name == "gzip" || name == "tgz" || name == "tar+gzip") return Compression::Gzip;
  if (name == "zstd" || name == "tar+zstd") return Compression::Zstd;
  return layerCompression(name);
}

}  // namespace snapimport::unpack
