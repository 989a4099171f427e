// docker-archive:FILE[:REF], the `docker save` format. Read: manifest.json (Config, RepoTags,
// Layers), legacy <id>/layer.tar or blobs/sha256/<hex> members, compressed or not; when the
// archive is also an OCI layout holding the image's original manifest, that manifest is used
// byte for byte, otherwise a Docker schema2 manifest is built from the members. Written: the
// Docker 25+ form (an OCI layout plus manifest.json), which `docker load` and skopeo both read.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "registry/Error.h"
#include "registry/FileBlob.h"
#include "registry/ImageTransport.h"
#include "registry/OciLayout.h"
#include "registry/Tar.h"

namespace fs = std::filesystem;

namespace snapimport::registry {
namespace {

constexpr size_t kMaxJson = 16 << 20;

std::pair<std::string, std::string> splitSpec(const std::string& spec) {
  auto colon = spec.find(':');
  std::string file = spec.substr(0, colon);
  std::string ref = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (file.empty())
    throw Error(ErrorKind::Invalid, "docker-archive:" + spec + ": the archive path is empty");
  return {file, ref};
}

class ArchiveSource : public ImageSource {
 public:
  ArchiveSource(std::string file, std::string ref) : file_(std::move(file)), ref_(std::move(ref)) {
    entries_ = indexTar(file_);
    auto mj = nlohmann::json::parse(member("manifest.json", kMaxJson), nullptr, false);
    if (!mj.is_array() || mj.empty())
      throw Error(ErrorKind::Invalid, describe() + ": manifest.json is missing or not a list");
    const nlohmann::json* item = nullptr;
    std::string want = ref_.empty() ? "" : Reference::parse(ref_).str();
    for (const auto& it : mj) {
      if (!it.is_object()) continue;
      if (want.empty()) {
        item = &it;
        break;
      }
      for (const auto& t : it.value("RepoTags", nlohmann::json::array())) {
        if (t.is_string() &&
            (t.get<std::string>() == ref_ || Reference::parse(t.get<std::string>()).str() == want))
          item = &it;
      }
      if (item) break;
    }
    if (!item)
      throw Error(ErrorKind::NotFound, describe() + ": no image " +
                                           (ref_.empty() ? "" : ref_ + " ") + "in manifest.json");
    if (want.empty() && mj.size() > 1)
      throw Error(ErrorKind::Invalid,
                  describe() + ": the archive holds several images; name one with :REF");
    std::string configPath = item->value("Config", std::string());
    std::string configBytes = member(configPath, kMaxJson);
    Descriptor config;
    config.digest = digestOf(configBytes);
    config.size = static_cast<int64_t>(configBytes.size());
    config.mediaType = mediatype::kDockerConfig;
    blobs_[config.digest.str()] = entries_.at(clean(configPath));

    // The original manifest, when the archive is an OCI layout holding it.
    if (entries_.count("index.json")) {
      auto idx = nlohmann::json::parse(member("index.json", kMaxJson), nullptr, false);
      if (idx.is_object() && idx.contains("manifests") && idx["manifests"].is_array()) {
        for (const auto& d : idx["manifests"]) {
          if (!d.is_object() || !Digest::isValid(d.value("digest", ""))) continue;
          Digest md = Digest::parse(d.value("digest", ""));
          std::string path = "blobs/" + std::string(md.algorithm()) + "/" + std::string(md.hex());
          if (!entries_.count(path)) continue;
          std::string bytes = member(path, kMaxManifestSize);
          if (digestOf(bytes, md.algorithm()) != md) continue;
          std::string type;
          try {
            type = detectManifestType(bytes, d.value("mediaType", ""), describe());
          } catch (const Error&) {
            continue;
          }
          if (!mediatype::isManifest(type)) continue;
          ImageManifest m = parseManifest(bytes, describe());
          if (m.config.digest != config.digest) continue;
          top_ = ManifestBlob{bytes, type, md};
          for (const auto& [name, e] : entries_) {
            if (name.starts_with("blobs/")) {
              auto rest = name.substr(6);
              auto slash = rest.find('/');
              if (slash != std::string::npos &&
                  Digest::isValid(rest.substr(0, slash) + ":" + rest.substr(slash + 1))) {
                blobs_[rest.substr(0, slash) + ":" + rest.substr(slash + 1)] = e;
              }
            }
          }
          return;
        }
      }
    }
    // Build a schema2 manifest from the members.
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const auto& l : item->value("Layers", nlohmann::json::array())) {
      if (!l.is_string())
        throw Error(ErrorKind::Invalid, describe() + ": manifest.json Layers must be strings");
      std::string path = clean(l.get<std::string>());
      auto it = entries_.find(path);
      if (it == entries_.end())
        throw Error(ErrorKind::Invalid, describe() + ": layer " + path + " is not in the archive");
      Hasher h;
      std::vector<char> buf(1 << 20);
      std::FILE* f = std::fopen(file_.c_str(), "rb");
      std::fseek(f, static_cast<long>(it->second.offset), SEEK_SET);
      uint64_t left = it->second.size;
      unsigned char magic[4] = {};
      bool first = true;
      while (left > 0) {
        size_t n = std::fread(buf.data(), 1, std::min<uint64_t>(left, buf.size()), f);
        if (n == 0) break;
        if (first) std::memcpy(magic, buf.data(), std::min<size_t>(n, 4));
        first = false;
        h.update(buf.data(), n);
        left -= n;
      }
      std::fclose(f);
      std::string mt = mediatype::kDockerLayerTar;
      if (magic[0] == 0x1f && magic[1] == 0x8b) mt = mediatype::kDockerLayerGzip;
      if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
        mt = mediatype::kDockerLayerZstd;
      Digest d = h.digest();
      blobs_[d.str()] = it->second;
      layers.push_back({{"mediaType", mt}, {"size", it->second.size}, {"digest", d.str()}});
    }
    nlohmann::ordered_json m{
        {"schemaVersion", 2},
        {"mediaType", mediatype::kDockerManifest},
        {"config",
         {{"mediaType", config.mediaType}, {"size", config.size}, {"digest", config.digest.str()}}},
        {"layers", layers}};
    top_.bytes = m.dump(3);
    top_.mediaType = mediatype::kDockerManifest;
    top_.digest = digestOf(top_.bytes);
  }

  std::string describe() const override {
    return "docker-archive:" + file_ + (ref_.empty() ? "" : ":" + ref_);
  }
  ManifestBlob topManifest() override { return top_; }
  ManifestBlob manifest(const Descriptor& d) override {
    throw Error(ErrorKind::NotFound,
                describe() + ": archives hold a single image; no manifest " + d.digest.str());
  }
  std::unique_ptr<BlobReader> blob(const Descriptor& d, BlobCheck check) override {
    auto it = blobs_.find(d.digest.str());
    if (it == blobs_.end())
      throw Error(ErrorKind::NotFound,
                  describe() + ": blob " + d.digest.str() + " is not in the archive");
    return openVerifiedFile(file_, it->second.offset, d, describe(), check);
  }

 private:
  static std::string clean(std::string p) {
    while (p.starts_with("./")) p = p.substr(2);
    return p;
  }
  std::string member(const std::string& name, size_t limit) {
    auto it = entries_.find(clean(name));
    if (it == entries_.end())
      throw Error(ErrorKind::Invalid, describe() + ": " + name + " is not in the archive");
    if (it->second.size > limit)
      throw Error(ErrorKind::Invalid, describe() + ": " + name + " is too large");
    std::string s(it->second.size, '\0');
    std::FILE* f = std::fopen(file_.c_str(), "rb");
    std::fseek(f, static_cast<long>(it->second.offset), SEEK_SET);
    size_t n = std::fread(s.data(), 1, s.size(), f);
    std::fclose(f);
    if (n != s.size()) throw Error(ErrorKind::Invalid, describe() + " is truncated");
    return s;
  }

  std::string file_, ref_;
  std::map<std::string, TarEntry> entries_;
  std::map<std::string, TarEntry> blobs_;  // digest -> member
  ManifestBlob top_;
};

class ArchiveDestination : public ImageDestination {
 public:
  ArchiveDestination(std::string file, std::string ref)
      : file_(std::move(file)),
        ref_(ref.empty() ? "" : Reference::parse(ref).str()),
        tmp_(file_ + ".tmp-" + std::to_string(::getpid())),
        layout_(tmp_, ref_.empty() ? "" : Reference::parse(ref).tag) {}
  ~ArchiveDestination() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  std::string describe() const override { return "docker-archive:" + file_; }
  bool supportsIndex() const override { return false; }
  void putBlob(const Descriptor& d, const BlobSource& s, const std::string& m) override {
    layout_.putBlob(d, s, m);
  }
  void putManifest(const ManifestBlob& m, bool top) override {
    if (!mediatype::isManifest(m.mediaType)) {
      throw Error(
          ErrorKind::Unsupported,
          describe() +
              ": a docker archive holds one image, not an index; choose one with --platform");
    }
    layout_.putManifest(m, top);
  }
  void commit() override {
    layout_.commit();
    const ManifestBlob& top = layout_.top();
    ImageManifest m = parseManifest(top.bytes, describe());
    auto rel = [](const Digest& d) {
      return "blobs/" + std::string(d.algorithm()) + "/" + std::string(d.hex());
    };
    nlohmann::ordered_json item{{"Config", rel(m.config.digest)},
                                {"RepoTags", ref_.empty() ? nlohmann::ordered_json::array()
                                                          : nlohmann::ordered_json::array({ref_})},
                                {"Layers", nlohmann::ordered_json::array()}};
    for (const auto& l : m.layers) item["Layers"].push_back(rel(l.digest));
    std::string out = file_ + ".partial-" + std::to_string(::getpid());
    TarWriter tar(out);
    tar.addFileFrom("oci-layout", tmp_ + "/oci-layout");
    tar.addFileFrom("index.json", tmp_ + "/index.json");
    tar.addFile("manifest.json", nlohmann::ordered_json::array({item}).dump());
    std::set<std::string> written;
    auto add = [&](const Digest& d) {
      if (written.insert(d.str()).second) tar.addFileFrom(rel(d), layout_.blobPath(d));
    };
    add(m.config.digest);
    for (const auto& l : m.layers) add(l.digest);
    add(top.digest);
    tar.finish();
    if (std::rename(out.c_str(), file_.c_str()) != 0)
      throw Error(ErrorKind::Io, "cannot rename " + out + " to " + file_);
  }

 private:
  std::string file_, ref_, tmp_;
  OciLayoutWriter layout_;
};

}  // namespace

std::unique_ptr<ImageSource> openArchiveSource(const std::string& spec) {
  auto [file, ref] = splitSpec(spec);
  return std::make_unique<ArchiveSource>(file, ref);
}

std::unique_ptr<ImageDestination> openArchiveDestination(const std::string& spec) {
  auto [file, ref] = splitSpec(spec);
  return std::make_unique<ArchiveDestination>(file, ref);
}

}  // namespace snapimport::registry
