#include "registry/Manifest.h"

#include <nlohmann/json.hpp>

#include "registry/Error.h"

namespace snapimport::registry {
namespace {

nlohmann::json parseJson(const std::string& bytes, const std::string& what) {
  if (bytes.size() > kMaxManifestSize) {
    throw Error(ErrorKind::Invalid, what + ": manifest is larger than the 4 MiB limit");
  }
  try {
    return nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorKind::Invalid,
                what + ": manifest is not valid JSON (byte " + std::to_string(e.byte) + ")");
  }
}

std::string stripParams(const std::string& contentType) {
  std::string t = contentType.substr(0, contentType.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  size_t b = t.find_first_not_of(" \t");
  return b == std::string::npos ? std::string() : t.substr(b);
}

[[noreturn]] void schema1(const std::string& what) {
  throw Error(
      ErrorKind::Unsupported,
      what +
          ": the registry serves a Docker schema1 manifest "
          "(application/vnd.docker.distribution.manifest.v1+json), which is deprecated "
          "and not supported; push the image again with a current client to get schema2/OCI");
}

}  // namespace

std::string detectManifestType(const std::string& bytes, const std::string& contentType,
                               const std::string& what) {
  std::string ct = stripParams(contentType);
  // Old Red Hat registries serve schema1 as text/plain (containerd maps it the same way).
  if (mediatype::isSchema1(ct) || ct == "text/plain") schema1(what);
  nlohmann::json j = parseJson(bytes, what);
  if (!j.is_object()) throw Error(ErrorKind::Invalid, what + ": manifest is not a JSON object");
  if (auto sv = j.find("schemaVersion"); sv != j.end() && *sv == 1) schema1(what);
  bool hasManifests = j.contains("manifests");
  bool hasLayers = j.contains("layers") || j.contains("config");
  if (hasManifests && hasLayers) {
    throw Error(ErrorKind::Invalid, what +
                                        ": document has both 'manifests' and 'layers'/'config'; "
                                        "refusing an ambiguous manifest");
  }
  std::string body;
  if (auto mt = j.find("mediaType"); mt != j.end()) {
    if (!mt->is_string()) throw Error(ErrorKind::Invalid, what + ": mediaType is not a string");
    body = mt->get<std::string>();
  }
  if (mediatype::isSchema1(body)) schema1(what);
  if (!body.empty() && !ct.empty() && body != ct && ct != "application/json" &&
      ct != "application/octet-stream") {
    throw Error(ErrorKind::Invalid, what + ": manifest mediaType '" + body +
                                        "' does not match Content-Type '" + ct + "'");
  }
  std::string type = !body.empty() ? body : ct;
  if (type.empty() || type == "application/json" || type == "application/octet-stream") {
    // OCI allows documents without mediaType: tell them apart by shape.
    type = hasManifests ? mediatype::kOciIndex : mediatype::kOciManifest;
  }
  if (!mediatype::isIndex(type) && !mediatype::isManifest(type)) {
    throw Error(ErrorKind::Unsupported, what + ": unsupported manifest media type '" + type + "'");
  }
  if (mediatype::isIndex(type) && hasLayers) {
    throw Error(ErrorKind::Invalid, what + ": an index must not have layers or config");
  }
  if (mediatype::isManifest(type) && hasManifests) {
    throw Error(ErrorKind::Invalid, what + ": an image manifest must not have 'manifests'");
  }
  return type;
}

ImageManifest parseManifest(const std::string& bytes, const std::string& what) {
  nlohmann::json j = parseJson(bytes, what);
  ImageManifest m;
  try {
    if (!j.is_object()) throw Error(ErrorKind::Invalid, "not a JSON object");
    m.mediaType = j.value("mediaType", std::string(mediatype::kOciManifest));
    if (!j.contains("config")) throw Error(ErrorKind::Invalid, "config is missing");
    m.config = Descriptor::fromJson(j["config"]);
    auto layers = j.find("layers");
    if (layers == j.end() || !layers->is_array())
      throw Error(ErrorKind::Invalid, "layers is missing or not a list");
    for (const auto& l : *layers) m.layers.push_back(Descriptor::fromJson(l));
    if (auto s = j.find("subject"); s != j.end()) m.subject = Descriptor::fromJson(*s);
  } catch (const Error& e) {
    throw Error(ErrorKind::Invalid, what + ": invalid image manifest: " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Invalid, what + ": invalid image manifest: " + e.what());
  }
  return m;
}

ImageIndex parseIndex(const std::string& bytes, const std::string& what) {
  nlohmann::json j = parseJson(bytes, what);
  ImageIndex idx;
  try {
    if (!j.is_object()) throw Error(ErrorKind::Invalid, "not a JSON object");
    idx.mediaType = j.value("mediaType", std::string(mediatype::kOciIndex));
    auto ms = j.find("manifests");
    if (ms == j.end() || !ms->is_array())
      throw Error(ErrorKind::Invalid, "manifests is missing or not a list");
    for (const auto& d : *ms) idx.manifests.push_back(Descriptor::fromJson(d));
  } catch (const Error& e) {
    throw Error(ErrorKind::Invalid, what + ": invalid index: " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Invalid, what + ": invalid index: " + e.what());
  }
  return idx;
}

bool isAttestation(const Descriptor& d) {
  auto it = d.annotations.find("vnd.docker.reference.type");
  if (it != d.annotations.end() && it->second == "attestation-manifest") return true;
  return d.platform && d.platform->os == "unknown" && d.platform->architecture == "unknown";
}

Descriptor selectPlatform(const ImageIndex& index, const Platform& want, const std::string& what) {
  auto candidates = compatiblePlatforms(want);
  for (const auto& c : candidates) {
    for (const auto& d : index.manifests) {
      if (isAttestation(d) || !d.platform) continue;
      if (!mediatype::isManifest(d.mediaType) && !mediatype::isIndex(d.mediaType)) continue;
      Platform p = d.platform->normalized();
      if (p.os == c.os && p.architecture == c.architecture && p.variant == c.variant) return d;
    }
  }
  std::string offered;
  for (const auto& d : index.manifests) {
    if (isAttestation(d) || !d.platform) continue;
    offered += (offered.empty() ? "" : ", ") + d.platform->normalized().str();
  }
  throw Error(ErrorKind::NotFound,
              what + ": no manifest for platform " + want.normalized().str() +
                  " in the index (it offers: " + (offered.empty() ? "nothing" : offered) + ")");
}

}  // namespace snapimport::registry
