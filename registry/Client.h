#pragma once
// The registry client: resolve, pull and push over the OCI distribution API.
//
// For the importer, two calls matter:
//
//   registry::Client client({.hostsDir = "/etc/containerd/certs.d", .authFile = "..."});
//   ResolvedImage img = client.resolve(ref, Platform::host());   // index -> manifest -> config
//   auto reader = client.openBlob(ref, img.manifest.layers[i]);  // verified pull stream
//   while (size_t n = reader->read(buf, sizeof buf)) ...;        // 0 only after size+digest match
//
// Every request goes through the hosts of hosts.toml in order (mirrors first, falling back to
// the origin on transport errors, 404 and 5xx), authenticates on demand (anonymous, Basic,
// Bearer tokens cached per host and scope), retries 429/503 honouring Retry-After, and follows
// redirects without carrying Authorization to another origin. A Client is safe to share between
// threads.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "registry/Authorizer.h"
#include "registry/Credentials.h"
#include "registry/Descriptor.h"
#include "registry/Error.h"
#include "registry/Hosts.h"
#include "registry/Http.h"
#include "registry/Manifest.h"
#include "registry/Reference.h"

namespace snapimport::registry {

// A pull-style stream of blob bytes. read() returns 0 only at the end, after the size and digest
// have been verified; it throws Error(Verification) on a mismatch and Error(Transport) when the
// connection fails for good (dropped connections are resumed with Range first).
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual size_t read(void* buf, size_t len) = 0;
};

struct ClientOptions {
  std::string hostsDir;              // containerd config_path style, ':'-separated roots
  std::string authFile;              // --authfile (docker config.json / containers auth.json)
  std::optional<std::string> creds;  // --creds user:password
  // The credential one pull brought (CRI PullImage auth), before every other source. A client
  // with one serves that pull alone, so its tokens are never used for anybody else's.
  std::optional<Credential> pullCredential;
  // kubelet credential provider plugins (the daemon's [registry] credential_provider_config).
  std::shared_ptr<CredentialProviders> credentialProviders{};
  // Unset: each host as configured (hosts.toml, else containerd's loopback rule). false: skip
  // verification and allow plain http; true: https with verification for every host, loopback
  // included (skopeo's --tls-verify semantics). See HostsOptions.
  std::optional<bool> tlsVerify;
  TransportOptions transport;
  int maxRetries = 5;  // for 429/5xx and dropped connections
  std::chrono::milliseconds retryBase{250};
  std::chrono::seconds maxRetryAfter{60};
  // Blob uploads larger than this go in chunks of this size (PATCH with Content-Range).
  uint64_t chunkSize = 64ull << 20;
  // Largest manifest or index accepted from a registry; never above kMaxManifestSize.
  size_t maxManifestBytes = kMaxManifestSize;
  // Force the chunked upload style for every blob (tests).
  bool forceChunked = false;
};

struct ResolvedImage {
  Reference reference;                // as asked
  std::optional<ManifestBlob> index;  // when the reference named an index
  ManifestBlob manifestBlob;          // the image manifest for the selected platform
  ImageManifest manifest;
  Descriptor manifestDescriptor;
  Descriptor config() const { return manifest.config; }
};

// A source of blob bytes for pushes; opened again for every attempt.
using BlobSource = std::function<std::unique_ptr<BlobReader>()>;

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();

  // Manifest or index bytes by tag or digest, capped at 4 MiB, type-checked; when the reference
  // (or `expected`) names a digest the bytes are verified against it.
  ManifestBlob getManifest(const Reference& ref);
  // HEAD: the digest a tag points at, or nullopt when the tag doesn't exist.
  std::optional<Descriptor> headManifest(const Reference& ref);
  // Resolves a reference to one image manifest: follows (nested) indexes to `platform`,
  // skipping attestations.
  ResolvedImage resolve(const Reference& ref, const Platform& platform);

  std::unique_ptr<BlobReader> openBlob(const Reference& repo, const Descriptor& blob);
  // A small blob (a config) read whole and verified; capped at `limit` bytes.
  std::string fetchBlob(const Reference& repo, const Descriptor& blob, size_t limit = 16 << 20);

  bool blobExists(const Reference& repo, const Digest& digest);
  // Uploads a blob unless it exists. With `mountFrom` (a repository path on the same registry)
  // tries a cross-repository mount first. Returns true when bytes were uploaded. `checked`:
  // the caller already knows the blob is missing (skips the HEAD).
  bool pushBlob(const Reference& repo, const Descriptor& blob, const BlobSource& source,
                const std::string& mountFrom = {}, bool checked = false);
  // PUT the exact bytes as manifest `tagOrDigest`; returns their digest.
  Digest pushManifest(const Reference& repo, const std::string& tagOrDigest,
                      const std::string& bytes, const std::string& mediaType);
  // Every tag, following the Link header page by page (`pageSize` > 0 asks for pages of n).
  std::vector<std::string> listTags(const Reference& repo, int pageSize = 0);

  const ClientOptions& options() const { return options_; }
  HttpTransport& transport() { return *transport_; }

  struct Request;  // internal

 private:
  friend class RegistryBlobReader;
  std::unique_ptr<HttpStream> send(const Reference& repo, Request& req);
  std::vector<RegistryHost> hostsFor(const Reference& repo, unsigned caps);
  Error failure(HttpStream& s, const std::string& action, const Reference& repo,
                const std::string& url, const RegistryHost& host);

  ClientOptions options_;
  std::unique_ptr<HttpTransport> transport_;
  std::unique_ptr<Authorizer> authorizer_;
  std::mutex mu_;
  std::map<std::string, std::string> schemeOverride_;  // host -> "http" after a fallback
};

}  // namespace snapimport::registry
