#include "registry/OciLayout.h"

#include <filesystem>

#include "registry/Error.h"
#include "registry/FileBlob.h"

namespace fs = std::filesystem;

namespace snapimport::registry {
namespace {

constexpr size_t kMaxIndexJson = 16 << 20;

// "DIR[:TAG]": the tag is after the first ':' (so directories can't contain one), like skopeo.
std::pair<std::string, std::string> splitSpec(const std::string& spec) {
  auto colon = spec.find(':');
  std::string dir = spec.substr(0, colon);
  std::string tag = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (dir.empty())
    throw Error(ErrorKind::Invalid, "oci:" + spec + ": the layout directory is empty");
  if (!tag.empty() && !Reference::isValidTag(tag)) {
    // containers/image allows full references as names too; keep to tags for clarity.
    bool ok = std::all_of(tag.begin(), tag.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/' || c == ':' ||
             c == '@';
    });
    if (!ok) throw Error(ErrorKind::Invalid, "oci:" + spec + ": invalid image name '" + tag + "'");
  }
  return {dir, tag};
}

std::string blobFile(const std::string& dir, const Digest& d) {
  return (fs::path(dir) / "blobs" / std::string(d.algorithm()) / std::string(d.hex())).string();
}

class OciSource : public ImageSource {
 public:
  OciSource(std::string dir, std::string tag) : dir_(std::move(dir)), tag_(std::move(tag)) {
    std::string text = readSmallFile((fs::path(dir_) / "index.json").string(), kMaxIndexJson);
    ImageIndex idx = parseIndex(text, describe() + " index.json");
    std::vector<Descriptor> matches;
    for (const auto& d : idx.manifests) {
      auto it = d.annotations.find(kRefNameAnnotation);
      if (tag_.empty() || (it != d.annotations.end() && it->second == tag_)) matches.push_back(d);
    }
    if (matches.empty()) {
      throw Error(ErrorKind::NotFound, describe() + ": no image " +
                                           (tag_.empty() ? "" : "tagged '" + tag_ + "' ") +
                                           "in index.json");
    }
    if (matches.size() > 1 && tag_.empty()) {
      throw Error(ErrorKind::Invalid,
                  describe() + ": index.json holds several images; name one with oci:DIR:TAG");
    }
    top_ = matches.front();
  }
  std::string describe() const override { return "oci:" + dir_ + (tag_.empty() ? "" : ":" + tag_); }
  ManifestBlob topManifest() override { return manifest(top_); }
  ManifestBlob manifest(const Descriptor& d) override {
    return readVerifiedManifest(blobFile(dir_, d.digest), d, describe());
  }
  std::unique_ptr<BlobReader> blob(const Descriptor& d, BlobCheck check) override {
    return openVerifiedFile(blobFile(dir_, d.digest), 0, d, describe(), check);
  }

 private:
  std::string dir_, tag_;
  Descriptor top_;
};

}  // namespace

OciLayoutWriter::OciLayoutWriter(std::string dir, std::string tag)
    : dir_(std::move(dir)), tag_(std::move(tag)) {
  fs::create_directories(fs::path(dir_) / "blobs");
  auto layoutFile = fs::path(dir_) / "oci-layout";
  if (!fs::exists(layoutFile))
    writeFileAtomic(layoutFile.string(), R"({"imageLayoutVersion": "1.0.0"})");
  auto indexFile = fs::path(dir_) / "index.json";
  if (fs::exists(indexFile)) {
    try {
      index_ = nlohmann::ordered_json::parse(readSmallFile(indexFile.string(), kMaxIndexJson));
    } catch (const nlohmann::json::exception&) {
      throw Error(ErrorKind::Invalid, describe() + ": existing index.json is not valid JSON");
    }
  }
  if (!index_.is_object() || !index_.contains("manifests") || !index_["manifests"].is_array()) {
    index_ = nlohmann::ordered_json{{"schemaVersion", 2},
                                    {"manifests", nlohmann::ordered_json::array()}};
  }
}

std::string OciLayoutWriter::blobPath(const Digest& d) const { return blobFile(dir_, d); }

bool OciLayoutWriter::hasBlob(const Descriptor& d) {
  std::error_code ec;
  auto size = fs::file_size(blobPath(d.digest), ec);
  return !ec && size == static_cast<uint64_t>(d.size);
}

void OciLayoutWriter::putBlob(const Descriptor& d, const BlobSource& source, const std::string&) {
  auto reader = source();
  writeVerifiedBlob(blobPath(d.digest), *reader);
}

void OciLayoutWriter::putManifest(const ManifestBlob& m, bool top) {
  if (digestOf(m.bytes, m.digest.algorithm()) != m.digest) {
    throw Error(ErrorKind::Verification,
                describe() + ": manifest bytes do not match " + m.digest.str());
  }
  auto path = blobPath(m.digest);
  fs::create_directories(fs::path(path).parent_path());
  writeFileAtomic(path, m.bytes);
  if (!top) return;
  top_ = m;
  auto& list = index_["manifests"];
  nlohmann::ordered_json kept = nlohmann::ordered_json::array();
  for (auto& e : list) {
    bool sameName = !tag_.empty() && e.contains("annotations") && e["annotations"].is_object() &&
                    e["annotations"].value(kRefNameAnnotation, std::string()) == tag_;
    bool sameUntagged = tag_.empty() && e.value("digest", std::string()) == m.digest.str();
    if (!sameName && !sameUntagged) kept.push_back(e);
  }
  nlohmann::ordered_json entry{
      {"mediaType", m.mediaType}, {"digest", m.digest.str()}, {"size", m.bytes.size()}};
  if (!tag_.empty()) entry["annotations"] = nlohmann::ordered_json{{kRefNameAnnotation, tag_}};
  kept.push_back(entry);
  list = kept;
}

void OciLayoutWriter::commit() {
  writeFileAtomic((fs::path(dir_) / "index.json").string(), index_.dump());
}

std::unique_ptr<ImageSource> openOciSource(const std::string& spec) {
  auto [dir, tag] = splitSpec(spec);
  return std::make_unique<OciSource>(dir, tag);
}

std::unique_ptr<ImageDestination> openOciDestination(const std::string& spec) {
  auto [dir, tag] = splitSpec(spec);
  return std::make_unique<OciLayoutWriter>(dir, tag);
}

}  // namespace snapimport::registry
