#pragma once
// Image sources and destinations for `snapimport copy`, named the way skopeo and
// containers/image name them:
//   docker://REF               a registry (through Client: hosts.toml, auth, retries)
//   oci:DIR[:TAG]              an OCI image layout directory
//   docker-archive:FILE[:REF]  a `docker save` tarball (manifest.json; written in the Docker 25+
//                              form, which is an OCI layout too)
//   dir:DIR                    containers/image's directory format (manifest.json + blobs by hex)
// Every blob read from a source is verified (size, and digest unless the destination checks it
// itself) on the read that hands out its last byte, so a consumer that stops at the size, as an
// HTTP upload does, still gets the error instead of the bytes. Every file destination writes a
// blob under its final name only after that.
#include <memory>
#include <string>

#include "registry/Client.h"
#include "registry/Manifest.h"

namespace snapimport::registry {

// What a source checks on a blob stream. `SizeAndDigest`: both; the read that would hand out the
// last byte throws instead if the digest differs. `Size`: the size only, for a destination that
// hashes every blob itself and refuses a mismatch (a registry answers DIGEST_INVALID to the upload
// that closes with the wrong ?digest=), so the bytes are not hashed twice.
enum class BlobCheck { SizeAndDigest, Size };

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual std::string describe() const = 0;
  // The manifest or index the name refers to, bytes exactly as stored.
  virtual ManifestBlob topManifest() = 0;
  // A manifest by digest (an index's children).
  virtual ManifestBlob manifest(const Descriptor& d) = 0;
  // A stream of a blob's bytes, checked as `check` says.
  virtual std::unique_ptr<BlobReader> blob(const Descriptor& d, BlobCheck check) = 0;
  // For cross-repository mounts: the registry and repository path, when this is a registry.
  virtual std::string registryRepository() const { return {}; }
};

class ImageDestination {
 public:
  virtual ~ImageDestination() = default;
  virtual std::string describe() const = 0;
  // docker-archive holds exactly one image manifest.
  virtual bool supportsIndex() const { return true; }
  virtual bool hasBlob(const Descriptor&) { return false; }
  // True when the destination itself refuses a blob whose bytes do not match its digest.
  virtual bool checksBlobDigests() const { return false; }
  // `mountFrom` is the source's "registry/repo" when it is a registry (for cross-repo mounts).
  virtual void putBlob(const Descriptor& d, const BlobSource& source,
                       const std::string& mountFrom) = 0;
  // `top`: the manifest (or index) the destination name refers to; others are stored by digest.
  virtual void putManifest(const ManifestBlob& m, bool top) = 0;
  // Makes everything visible (index.json, the archive's manifest.json).
  virtual void commit() {}
};

struct EndpointOptions {
  ClientOptions client;  // hosts dir, auth file, creds, TLS for docker://
};

// Parses "docker://...", "oci:...", "docker-archive:...", "dir:..."; throws Error(Invalid) with
// the accepted forms when the name fits none.
std::unique_ptr<ImageSource> openSource(const std::string& name, const EndpointOptions& options);
std::unique_ptr<ImageDestination> openDestination(const std::string& name,
                                                  const EndpointOptions& options);

// A reader over a local file range that checks its size, and its digest unless `check` is
// BlobCheck::Size (used by the file transports).
std::unique_ptr<BlobReader> openVerifiedFile(const std::string& path, uint64_t offset,
                                             const Descriptor& d, const std::string& what,
                                             BlobCheck check = BlobCheck::SizeAndDigest);

}  // namespace snapimport::registry
