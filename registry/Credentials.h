#pragma once
// Where credentials come from, in order: --creds, then kubelet credential provider plugins (when
// configured, CredentialProvider.h), then the auth file given with --authfile (or
// $REGISTRY_AUTH_FILE), then docker's config.json ($DOCKER_CONFIG or ~/.docker). Inside a
// config file: credHelpers[host], else credsStore, else auths[host] (auth / identitytoken /
// registrytoken). Helpers are run with docker-credential-helpers' protocol. Every lookup records
// which sources were tried, so an authentication failure can say so (without the secrets).
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snapimport::registry {

struct Credential {
  std::string username;
  std::string password;
  std::string identityToken;  // OAuth2 refresh token (grant_type=refresh_token)
  std::string registryToken;  // sent directly as a Bearer token
  std::string source;         // "--creds", "/root/.docker/config.json auths", "helper pass"
  // How long the answer may be reused. Files and --creds: for good; a credential provider's
  // answer: as long as the provider allows (CredentialProvider.h).
  std::chrono::steady_clock::time_point expires = std::chrono::steady_clock::time_point::max();
  // Only for the registry's own server, never for the mirrors hosts.toml lists for it (what a
  // credential provider answers is for the image's registry alone).
  bool originOnly = false;
  // When set, sent to this host[:port] alone, mirrors included (a CRI AuthConfig's
  // server_address, which containerd honours the same way).
  std::string onlyHost;
  bool empty() const {
    return username.empty() && password.empty() && identityToken.empty() && registryToken.empty();
  }
};

class CredentialProviders;

struct CredentialOptions {
  std::optional<std::string> creds;  // "user:password" (--creds); "user" alone means empty password
  std::string authFile;              // --authfile; replaces the default files
  // kubelet credential provider plugins, consulted after --creds and before the files.
  std::shared_ptr<CredentialProviders> providers{};
  // The credential a pull brought with it (CRI PullImage auth); consulted before everything else.
  std::optional<Credential> pullCredential{};
};

class CredentialStore {
 public:
  explicit CredentialStore(CredentialOptions options = {});
  // Credentials for a registry host ("docker.io", "reg:5000") and repository path. Returns an
  // empty Credential when no source has any; `tried` gets one line per source consulted.
  Credential lookup(std::string_view registry, std::string_view repoPath,
                    std::vector<std::string>* tried = nullptr) const;

  // The key docker uses in config.json for a registry (Docker Hub's is special).
  static std::string configKey(std::string_view registry);

 private:
  CredentialOptions options_;
};

// The host[:port] a server address names: "https://reg:5000/v1/" and "reg:5000" give
// "reg:5000"; Docker Hub's names (index.docker.io, registry-1.docker.io) give "docker.io".
std::string serverAddressHost(std::string_view serverAddress);
// True when two hosts are the same registry by serverAddressHost.
bool sameRegistryHost(std::string_view a, std::string_view b);

std::string base64Encode(std::string_view in);
// Standard alphabet; throws Error(Invalid) on bad input.
std::string base64Decode(std::string_view in);

// Runs `docker-credential-<helper> get` for serverUrl. Returns nullopt when the helper has no
// credentials; throws Error when it fails. Exposed for tests.
std::optional<Credential> runCredentialHelper(const std::string& helper,
                                              const std::string& serverUrl);

}  // namespace snapimport::registry
