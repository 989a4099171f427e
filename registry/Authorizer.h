#pragma once
// Authorization for registry requests, per registry host: nothing until a 401 says what the
// registry wants, then Basic (credentials on every request) or Bearer (a token for the requested
// scopes from the challenge's realm). Tokens are cached per (host, scope set) until they expire;
// an `invalid_token` / `insufficient_scope` challenge drops the cached token and fetches once more.
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "registry/Challenge.h"
#include "registry/Credentials.h"
#include "registry/Hosts.h"
#include "registry/Http.h"

namespace snapimport::registry {

struct Token {
  std::string value;
  std::chrono::steady_clock::time_point expires;
};

class Authorizer {
 public:
  Authorizer(HttpTransport& transport, CredentialStore credentials);

  // The Authorization header value for a request to `host` on behalf of `registry`/`repo`
  // with `scopes`, or "" while no challenge is known (anonymous first, as containerd does).
  std::string authorization(const RegistryHost& host, const std::string& registry,
                            const std::string& repo, const Scopes& scopes);

  // Feeds a 401 response to a request that carried `sentAuthorization` (or none). Returns true
  // when the request should be retried with a new authorization; false when retrying cannot
  // help (the caller then reports the failure). Requests racing on other threads may have set
  // the scheme up meanwhile, so a request that went out without credentials always retries.
  bool handleUnauthorized(const RegistryHost& host, const Scopes& scopes,
                          const HttpHeaders& response, bool sentAuthorization);

  // The credential sources consulted for registry/repo, for error messages.
  std::string describeSources(const std::string& registry, const std::string& repo) const;
  // True when no credential source had anything for registry/repo.
  bool anonymous(const std::string& registry, const std::string& repo) const;

 private:
  struct HostState {
    std::string scheme;  // "bearer" / "basic" / ""
    std::string realm, service;
    std::map<std::string, Token> tokens;   // by Scopes::key()
    std::map<std::string, int> refetches;  // by Scopes::key(): consecutive invalid_token answers
  };

  Token fetchToken(const RegistryHost& host, const HostState& state, const Credential& cred,
                   const Scopes& scopes);
  Credential credentialFor(const std::string& registry, const std::string& repo);

  HttpTransport& transport_;
  CredentialStore credentials_;
  std::mutex mu_;
  std::map<std::string, HostState> hosts_;  // by host origin
  std::map<std::string, Credential> credCache_;
  std::map<std::string, std::vector<std::string>> tried_;
};

}  // namespace snapimport::registry
