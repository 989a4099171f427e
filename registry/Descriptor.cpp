#include "registry/Descriptor.h"

#include <sys/utsname.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "registry/Error.h"

namespace snapimport::registry {

namespace mediatype {
bool isIndex(const std::string& mt) { return mt == kOciIndex || mt == kDockerList; }
bool isManifest(const std::string& mt) { return mt == kOciManifest || mt == kDockerManifest; }
bool isSchema1(const std::string& mt) { return mt == kDockerSchema1 || mt == kDockerSchema1Signed; }
const char* acceptHeader() {
  return "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
         "application/vnd.docker.distribution.manifest.list.v2+json, "
         "application/vnd.docker.distribution.manifest.v2+json";
}
}  // namespace mediatype

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

[[noreturn]] void badDescriptor(const std::string& why) {
  throw Error(ErrorKind::Invalid, "invalid descriptor: " + why);
}

}  // namespace

Platform Platform::parse(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    parts.push_back(
        text.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (const auto& p : parts) {
    if (p.empty() || p.size() > 64 || !std::all_of(p.begin(), p.end(), [](unsigned char c) {
          return std::isalnum(c) || c == '_' || c == '-' || c == '.';
        })) {
      throw Error(ErrorKind::Invalid,
                  "invalid platform '" + text + "': want OS/ARCH[/VARIANT], e.g. linux/arm64/v8");
    }
  }
  Platform p;
  if (parts.size() == 1) {
    p.os = "linux";
    p.architecture = parts[0];
  } else if (parts.size() <= 3) {
    p.os = parts[0];
    p.architecture = parts[1];
    if (parts.size() == 3) p.variant = parts[2];
  } else {
    throw Error(ErrorKind::Invalid, "invalid platform '" + text + "': want OS/ARCH[/VARIANT]");
  }
  return p.normalized();
}

Platform Platform::host() {
  struct utsname u {};
  uname(&u);
  Platform p;
  p.os = "linux";
  p.architecture = u.machine;
  if (p.architecture.starts_with("armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (p.architecture.starts_with("armv6")) {
    p.architecture = "arm";
    p.variant = "v6";
  }
  return p.normalized();
}

Platform Platform::normalized() const {
  Platform p = *this;
  p.os = lower(p.os);
  if (p.os == "macos") p.os = "darwin";
  std::string a = lower(p.architecture), v = lower(p.variant);
  if (a == "i386") {
    a = "386";
    v = "";
  } else if (a == "x86_64" || a == "x86-64" || a == "amd64") {
    a = "amd64";
    if (v == "v1") v = "";
  } else if (a == "aarch64" || a == "arm64") {
    a = "arm64";
    if (v == "8" || v == "v8" || v == "v8.0") v = "";
    if (v == "9" || v == "9.0" || v == "v9.0") v = "v9";
  } else if (a == "armhf") {
    a = "arm";
    v = "v7";
  } else if (a == "armel") {
    a = "arm";
    v = "v6";
  } else if (a == "arm") {
    if (v.empty() || v == "7") v = "v7";
    if (v == "5" || v == "6" || v == "8") v = "v" + v;
  }
  p.architecture = a;
  p.variant = v;
  return p;
}

std::string Platform::str() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

std::vector<Platform> compatiblePlatforms(const Platform& want) {
  Platform w = want.normalized();
  std::vector<Platform> out{w};
  auto variant = [&](const std::string& arch, const std::string& v) {
    Platform p{w.os, arch, v, {}, {}};
    out.push_back(p);
  };
  if (w.architecture == "amd64") {
    variant("386", "");
  } else if (w.architecture == "arm" && w.variant.size() == 2 && w.variant[0] == 'v') {
    for (char c = w.variant[1] - 1; c >= '5'; --c) variant("arm", std::string("v") + c);
  } else if (w.architecture == "arm64" && w.variant.empty()) {
    // arm64 (v8) machines run 32-bit arm images when the index has nothing better.
    for (const char* v : {"v8", "v7", "v6", "v5"}) variant("arm", v);
  }
  return out;
}

Descriptor Descriptor::fromJson(const nlohmann::json& j) {
  if (!j.is_object()) badDescriptor("not a JSON object");
  Descriptor d;
  auto mt = j.find("mediaType");
  if (mt == j.end() || !mt->is_string()) badDescriptor("mediaType is missing or not a string");
  d.mediaType = mt->get<std::string>();
  auto dg = j.find("digest");
  if (dg == j.end() || !dg->is_string()) badDescriptor("digest is missing or not a string");
  d.digest = Digest::parse(dg->get<std::string>());
  auto sz = j.find("size");
  if (sz == j.end() || !sz->is_number_integer() || sz->get<int64_t>() < 0) {
    badDescriptor("size of " + d.digest.str() + " is missing or not a non-negative integer");
  }
  d.size = sz->get<int64_t>();
  if (auto p = j.find("platform"); p != j.end()) {
    if (!p->is_object()) badDescriptor("platform of " + d.digest.str() + " is not an object");
    Platform pl;
    auto s = [&](const char* k) {
      auto it = p->find(k);
      return it != p->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    pl.os = s("os");
    pl.architecture = s("architecture");
    pl.variant = s("variant");
    pl.osVersion = s("os.version");
    if (auto f = p->find("os.features"); f != p->end() && f->is_array()) {
      for (const auto& x : *f) {
        if (x.is_string()) pl.osFeatures.push_back(x.get<std::string>());
      }
    }
    d.platform = pl;
  }
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) {
    for (auto it = a->begin(); it != a->end(); ++it) {
      if (it->is_string()) d.annotations[it.key()] = it->get<std::string>();
    }
  }
  if (auto u = j.find("urls"); u != j.end() && u->is_array()) {
    for (const auto& x : *u) {
      if (x.is_string()) d.urls.push_back(x.get<std::string>());
    }
  }
  if (auto at = j.find("artifactType"); at != j.end() && at->is_string())
    d.artifactType = at->get<std::string>();
  return d;
}

nlohmann::json Descriptor::toJson() const {
  nlohmann::json j = nlohmann::json::object();
  j["mediaType"] = mediaType;
  j["digest"] = digest.str();
  j["size"] = size;
  if (platform) {
    nlohmann::json p = {{"architecture", platform->architecture}, {"os", platform->os}};
    if (!platform->variant.empty()) p["variant"] = platform->variant;
    if (!platform->osVersion.empty()) p["os.version"] = platform->osVersion;
    if (!platform->osFeatures.empty()) p["os.features"] = platform->osFeatures;
    j["platform"] = p;
  }
  if (!annotations.empty()) j["annotations"] = annotations;
  if (!urls.empty()) j["urls"] = urls;
  if (!artifactType.empty()) j["artifactType"] = artifactType;
  return j;
}

}  // namespace snapimport::registry
