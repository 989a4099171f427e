#pragma once
// Internal to the registry client: one logical request, sent by Client::send() to the hosts in
// order with auth, retries and redirects.
#include <optional>
#include <string>

#include "registry/Client.h"

namespace snapimport::registry {

struct Client::Request {
  std::string method = "GET";
  std::string path;         // below /v2/<name>, e.g. "/manifests/latest"
  std::string absoluteUrl;  // an upload Location or a pagination link (already resolved)
  std::optional<RegistryHost> fixedHost;  // stick to the host that issued absoluteUrl
  HttpHeaders headers;
  std::string body;
  BlobSource bodySource;
  uint64_t bodySize = 0;
  unsigned caps = kPull;
  Scopes scopes;
  bool followRedirects = true;
  std::string action;  // "fetch manifest", for messages
  // Filled in by send():
  RegistryHost usedHost;
  std::string finalUrl;
};

}  // namespace snapimport::registry
