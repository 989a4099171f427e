#pragma once
// kubelet credential provider plugins for the importer: the plugins kubelet runs for a private
// registry (ECR, GCR/Artifact Registry, ACR, or a site's own), run the same way, so pulls that
// carry no CRI credentials can be imported too.
//
// A provider whose matchImages match the image (CredentialProviderMatch.h) is asked with a
// CredentialProviderRequest{image} on stdin and answers a CredentialProviderResponse on stdout.
// The answer is cached in memory the way kubelet caches it: under the image, its registry or one
// global key (cacheKeyType), for cacheDuration, or defaultCacheDuration when the response has
// none; a zero duration is not cached. Concurrent asks for one image run the plugin once
// (single-flight). The credential is the auth entry kubelet would try first for the image.
//
// The image is the repository as kubelet sends it: host[:port]/path, without tag or digest
// ("docker.io/library/busybox", "reg.example.com:5000/team/app").
//
// Credentials live in memory only; they are never logged, written to disk or sent anywhere but
// the registry they are for (the Authorizer's rules).
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "registry/CredentialProviderConfig.h"
#include "registry/Credentials.h"

namespace snapimport::registry {

enum class CacheKeyType { Image, Registry, Global };

struct ProviderAuth {
  std::string key;  // the response's auth key (a matchImages-style pattern)
  std::string username, password;
};

struct ProviderResponse {
  CacheKeyType cacheKeyType = CacheKeyType::Image;
  std::optional<std::chrono::nanoseconds> cacheDuration;  // nullopt: use defaultCacheDuration
  std::vector<ProviderAuth> auth;                         // in the response's key order
};

// Decodes a plugin's stdout. Throws Error(Invalid) saying what is wrong, never quoting the
// response itself (it holds secrets): not JSON, wrong kind or apiVersion (it must be the one the
// provider is configured with), an unknown cacheKeyType, a bad cacheDuration, a malformed auth.
ProviderResponse parseProviderResponse(std::string_view output, const std::string& apiVersion);

// The CredentialProviderRequest for `image`, as kubelet encodes it.
std::string providerRequest(const std::string& apiVersion, const std::string& image);

struct CredentialProviderOptions {
  std::string binDir;                                            // where the plugins are
  std::chrono::milliseconds timeout{10'000};                     // per plugin run
  std::function<std::chrono::steady_clock::time_point()> clock;  // default: steady_clock::now
};

// One configured provider. Thread-safe.
class CredentialProvider {
 public:
  CredentialProvider(CredentialProviderSpec spec, CredentialProviderOptions options);

  const CredentialProviderSpec& spec() const { return spec_; }
  std::string program() const;
  // True when one of matchImages matches `image`.
  bool matches(const std::string& image) const;

  struct Result {
    std::optional<ProviderAuth> auth;  // nullopt: the response has no entry for this image
    // Until when the answer may be reused: the cache entry's expiry, or the time of the
    // answer when it was not cached (zero duration).
    std::chrono::steady_clock::time_point expires;
    bool cached = false;  // served from the cache, no plugin run
  };
  // From the cache (image, then registry, then global key) or one run of the plugin. A failed run
  // (start failure, timeout, exit status, bad response) throws Error and is not cached.
  Result provide(const std::string& image);

  // How many times the plugin was run (for tests and the log).
  uint64_t runs() const;

 private:
  struct Entry {
    std::vector<ProviderAuth> auth;
    std::chrono::steady_clock::time_point expires;
    bool cacheable = false;
    std::string key;  // the cache key the response chose
  };
  using EntryPtr = std::shared_ptr<const Entry>;

  static Result resultFor(const Entry& e, const std::string& image, bool cached);
  EntryPtr cachedLocked(const std::string& image, std::chrono::steady_clock::time_point now);
  EntryPtr run(const std::string& image);
  std::chrono::steady_clock::time_point now() const;

  CredentialProviderSpec spec_;
  CredentialProviderOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, EntryPtr> cache_;                        // by cache key
  std::map<std::string, std::shared_future<EntryPtr>> flights_;  // by image
  uint64_t runs_ = 0;
};

// The providers of one CredentialProviderConfig, consulted in file order. Thread-safe.
class CredentialProviders {
 public:
  // Reads the config (file or directory) and checks that the plugin directory and every plugin
  // in it exist and are executable, as kubelet does when it starts. Throws Error naming the file
  // and the reason.
  static std::shared_ptr<CredentialProviders> load(const std::string& configPath,
                                                   const std::string& binDir,
                                                   std::chrono::milliseconds timeout);
  CredentialProviders(const CredentialProviderConfig& config, CredentialProviderOptions options);

  struct Lookup {
    std::optional<Credential> credential;  // its `expires` says how long it may be reused
    // When no provider had a credential: until when that answer holds. A provider that failed
    // or answered "nothing for this image" may answer differently later; the caller should not
    // settle on another source for longer than this.
    std::chrono::steady_clock::time_point reconsiderAt =
        std::chrono::steady_clock::time_point::max();
  };
  // The first matching provider that answers with an auth entry for registry/repoPath wins; later
  // providers are not run. A failing provider is logged (without secrets) and skipped. `tried`
  // gets one line per provider consulted.
  Lookup lookup(std::string_view registry, std::string_view repoPath,
                std::vector<std::string>* tried = nullptr);
  size_t size() const { return providers_.size(); }
  CredentialProvider& at(size_t i) { return *providers_[i]; }

  // A response that must not be cached is still used for the requests of the pull that asked
  // for it, up to this long, instead of running the plugin again for every request.
  static constexpr std::chrono::seconds kUncachedReuse{10};
  // After a provider failed, the answer the caller settled on is reused only this long.
  static constexpr std::chrono::seconds kRetryAfterFailure{30};

 private:
  std::vector<std::unique_ptr<CredentialProvider>> providers_;
  std::function<std::chrono::steady_clock::time_point()> clock_;
};

}  // namespace snapimport::registry
