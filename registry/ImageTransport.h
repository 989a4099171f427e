#pragma once
// Image sources and destinations for `snapimport copy`, named the way skopeo and
// containers/image name them:
//   docker://REF               a registry (through Client: hosts.toml, auth, retries)
//   oci:DIR[:TAG]              an OCI image layout directory
//   docker-archive:FILE[:REF]  a `docker save` tarball (manifest.json; written in the Docker 25+
//                              form, which is an OCI layout too)
//   dir:DIR                    containers/image's directory format (manifest.json + blobs by hex)
// Every blob read from a source is verified (size and digest) before read() returns 0, and every
// destination writes a blob under its final name only after that.
#include <memory>
#include <string>

#include "registry/Client.h"
#include "registry/Manifest.h"

namespace snapimport::registry {

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual std::string describe() const = 0;
  // The manifest or index the name refers to, bytes exactly as stored.
  virtual ManifestBlob topManifest() = 0;
  // A manifest by digest (an index's children).
  virtual ManifestBlob manifest(const Descriptor& d) = 0;
  // A verified stream of a blob's bytes.
  virtual std::unique_ptr<BlobReader> blob(const Descriptor& d) = 0;
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

// A reader over a local file range that verifies size and digest (used by the file transports).
std::unique_ptr<BlobReader> openVerifiedFile(const std::string& path, uint64_t offset,
                                             const Descriptor& d, const std::string& what);

}  // namespace snapimport::registry
