// docker://REF as a copy source and destination.
#include <memory>

#include "registry/Error.h"
#include "registry/ImageTransport.h"

namespace snapimport::registry {
namespace {

class RegistrySource : public ImageSource {
 public:
  RegistrySource(Reference ref, const ClientOptions& o) : ref_(std::move(ref)), client_(o) {}
  std::string describe() const override { return "docker://" + ref_.str(); }
  ManifestBlob topManifest() override { return client_.getManifest(ref_); }
  ManifestBlob manifest(const Descriptor& d) override {
    ManifestBlob b = client_.getManifest(ref_.withDigest(d.digest));
    return b;
  }
  // Bytes from the network are always hashed, whatever the destination checks: the hash also
  // covers the splices of the reader's Range resumes.
  std::unique_ptr<BlobReader> blob(const Descriptor& d, BlobCheck) override {
    return client_.openBlob(ref_, d);
  }
  std::string registryRepository() const override { return ref_.domain + "/" + ref_.path; }

 private:
  Reference ref_;
  Client client_;
};

class RegistryDestination : public ImageDestination {
 public:
  RegistryDestination(Reference ref, const ClientOptions& o) : ref_(std::move(ref)), client_(o) {}
  std::string describe() const override { return "docker://" + ref_.str(); }
  bool hasBlob(const Descriptor& d) override { return client_.blobExists(ref_, d.digest); }
  // The upload closes with ?digest=, and a registry hashes what it received and refuses a
  // mismatch (distribution: 400 DIGEST_INVALID, nothing stored).
  bool checksBlobDigests() const override { return true; }
  void putBlob(const Descriptor& d, const BlobSource& source,
               const std::string& mountFrom) override {
    std::string from;
    // A mount only works within one registry.
    if (!mountFrom.empty() && mountFrom.starts_with(ref_.domain + "/"))
      from = mountFrom.substr(ref_.domain.size() + 1);
    client_.pushBlob(ref_, d, source, from, /*checked=*/true);  // the copier asked hasBlob()
  }
  void putManifest(const ManifestBlob& m, bool top) override {
    std::string target = m.digest.str();
    if (top && !ref_.tag.empty() && !ref_.digest) target = ref_.tag;
    if (top && ref_.digest && *ref_.digest != m.digest) {
      throw Error(ErrorKind::Invalid, "cannot push manifest " + m.digest.str() + " to " +
                                          ref_.str() +
                                          ": the destination names a different digest");
    }
    client_.pushManifest(ref_, target, m.bytes, m.mediaType);
  }

 private:
  Reference ref_;
  Client client_;
};

}  // namespace

std::unique_ptr<ImageSource> openRegistrySource(const std::string& ref, const ClientOptions& o) {
  return std::make_unique<RegistrySource>(Reference::parse(ref), o);
}

std::unique_ptr<ImageDestination> openRegistryDestination(const std::string& ref,
                                                          const ClientOptions& o) {
  return std::make_unique<RegistryDestination>(Reference::parse(ref), o);
}

}  // namespace snapimport::registry
