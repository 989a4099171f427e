#include "registry/Authorizer.h"

#include <nlohmann/json.hpp>

#include "common/Log.h"
#include "registry/Error.h"

namespace snapimport::registry {
namespace {

constexpr size_t kMaxTokenResponse = 1 << 20;

std::string hostKey(const RegistryHost& h) { return h.scheme + "://" + h.host; }

std::string formEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields)
    out += (out.empty() ? "" : "&") + percentEncode(k) + "=" + percentEncode(v);
  return out;
}

}  // namespace

Authorizer::Authorizer(HttpTransport& transport, CredentialStore credentials)
    : transport_(transport), credentials_(std::move(credentials)) {}

Credential Authorizer::credentialFor(const std::string& registry, const std::string& repo) {
  std::string key = registry + "/" + repo;
  {
    std::lock_guard lock(mu_);
    // Credentials from a kubelet credential provider expire; the others are kept for good.
    if (auto it = credCache_.find(key);
        it != credCache_.end() && it->second.expires > std::chrono::steady_clock::now())
      return it->second;
  }
  std::vector<std::string> tried;
  Credential c = credentials_.lookup(registry, repo, &tried);
  std::lock_guard lock(mu_);
  tried_[key] = tried;
  credCache_[key] = c;
  return c;
}

std::string Authorizer::describeSources(const std::string& registry,
                                        const std::string& repo) const {
  auto it = tried_.find(registry + "/" + repo);
  if (it == tried_.end()) return "none consulted";
  std::string s;
  for (const auto& t : it->second) s += (s.empty() ? "" : "; ") + t;
  return s;
}

bool Authorizer::anonymous(const std::string& registry, const std::string& repo) const {
  auto it = credCache_.find(registry + "/" + repo);
  return it == credCache_.end() || it->second.empty();
}

std::string Authorizer::authorization(const RegistryHost& host, const std::string& registry,
                                      const std::string& repo, const Scopes& scopes) {
  HostState state;
  {
    std::lock_guard lock(mu_);
    auto it = hosts_.find(hostKey(host));
    if (it == hosts_.end() || it->second.scheme.empty()) return {};
    state = it->second;
  }
  // A credential bound to the registry itself is not sent to its mirrors; one bound to a host
  // (server_address) goes to that host alone.
  auto usable = [&](Credential c) {
    if (c.originOnly && host.isMirror) return Credential{};
    if (!c.onlyHost.empty() && !sameRegistryHost(c.onlyHost, host.host)) return Credential{};
    return c;
  };
  if (state.scheme == "basic") {
    Credential cred = usable(credentialFor(registry, repo));
    if (cred.username.empty()) return {};
    return "Basic " + base64Encode(cred.username + ":" + cred.password);
  }
  // A cached token first: credentials (perhaps a provider plugin run) only to fetch a new one.
  // Tokens only exist for credentials without a registryToken, so the order changes nothing else.
  const std::string key = scopes.key();
  auto now = std::chrono::steady_clock::now();
  if (auto t = state.tokens.find(key); t != state.tokens.end() && t->second.expires > now) {
    return "Bearer " + t->second.value;
  }
  Credential cred = usable(credentialFor(registry, repo));
  if (!cred.registryToken.empty()) return "Bearer " + cred.registryToken;
  Token token = fetchToken(host, state, cred, scopes);
  std::lock_guard lock(mu_);
  hosts_[hostKey(host)].tokens[key] = token;
  return "Bearer " + token.value;
}

bool Authorizer::handleUnauthorized(const RegistryHost& host, const Scopes& scopes,
                                    const HttpHeaders& response, bool sentAuthorization) {
  auto challenges = parseChallenges(response.getAll("WWW-Authenticate"));
  const Challenge* bearer = nullptr;
  const Challenge* basic = nullptr;
  for (const auto& c : challenges) {
    if (c.scheme == "bearer" && !bearer) bearer = &c;
    if (c.scheme == "basic" && !basic) basic = &c;
  }
  std::lock_guard lock(mu_);
  HostState& st = hosts_[hostKey(host)];
  const std::string key = scopes.key();
  if (bearer) {
    std::string realm = bearer->param("realm");
    if (realm.empty()) return false;
    bool changed =
        st.scheme != "bearer" || st.realm != realm || st.service != bearer->param("service");
    if (changed) {
      st = HostState{};
      st.scheme = "bearer";
      st.realm = realm;
      st.service = bearer->param("service");
      return true;
    }
    if (!sentAuthorization) return true;
    // Same challenge again with a token we sent (invalid_token, insufficient_scope, expired
    // early): drop it and fetch once more; a second refusal is final.
    st.tokens.erase(key);
    return ++st.refetches[key] <= 1;
  }
  if (basic) {
    if (st.scheme == "basic") return !sentAuthorization;  // sent and refused: final
    st = HostState{};
    st.scheme = "basic";
    return true;
  }
  return false;
}

Token Authorizer::fetchToken(const RegistryHost& host, const HostState& state,
                             const Credential& cred, const Scopes& scopes) {
  // Credentials go to a token server only over https, or on loopback, or when the registry
  // itself is plain http (configured insecure).
  std::string realmOrigin = originOf(state.realm);
  if (realmOrigin.empty())
    throw Error(ErrorKind::Invalid, "token realm '" + redactUrl(state.realm) + "' is not a URL");
  bool realmHttps = realmOrigin.starts_with("https://");
  std::string realmHostPort = realmOrigin.substr(realmOrigin.find("://") + 3);
  if (!realmHttps && !isLoopbackHost(realmHostPort) && host.scheme != "http") {
    throw Error(ErrorKind::Unauthorized, "refusing to send credentials to plain-http token realm " +
                                             redactUrl(state.realm) + " for " + host.host);
  }
  TlsOptions tls;
  if (isLoopbackHost(realmHostPort) || originOf(host.baseUrl()) == realmOrigin) tls = host.tls;

  auto parseToken = [&](HttpStream& s, const std::string& how) -> Token {
    bool truncated = false;
    std::string body = s.readAll(kMaxTokenResponse, &truncated);
    if (truncated)
      throw Error(ErrorKind::Invalid,
                  how + " " + redactUrl(state.realm) + ": token response larger than 1 MiB");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(body);
    } catch (const std::exception&) {
      throw Error(ErrorKind::Invalid,
                  how + " " + redactUrl(state.realm) + ": token response is not JSON");
    }
    Token t;
    if (j.is_object()) {
      // containerd prefers access_token when both are present.
      if (j.contains("access_token") && j["access_token"].is_string()) {
        t.value = j["access_token"].get<std::string>();
      } else if (j.contains("token") && j["token"].is_string()) {
        t.value = j["token"].get<std::string>();
      }
    }
    if (t.value.empty())
      throw Error(ErrorKind::Invalid,
                  how + " " + redactUrl(state.realm) + ": token response has no token");
    long expiresIn = 60;
    if (j.contains("expires_in") && j["expires_in"].is_number_integer())
      expiresIn = j["expires_in"].get<long>();
    if (expiresIn < 60) expiresIn = 60;
    // A little early so a token never expires in flight.
    t.expires = std::chrono::steady_clock::now() + std::chrono::seconds(expiresIn - 5);
    return t;
  };

  auto statusError = [&](HttpStream& s, const std::string& how) -> Error {
    long st = s.status();
    ErrorKind kind = st == 401   ? ErrorKind::Unauthorized
                     : st == 403 ? ErrorKind::Denied
                                 : ErrorKind::Server;
    return Error(kind,
                 how + " " + redactUrl(state.realm) + " for " + host.host + " answered HTTP " +
                     std::to_string(st) +
                     (cred.empty() ? " (anonymous)" : " (credentials from " + cred.source + ")"),
                 st);
  };

  std::string secret = cred.identityToken.empty() ? cred.password : cred.identityToken;
  bool canPost = !secret.empty();
  if (canPost) {
    // OAuth2 POST: password grant, or refresh_token grant for identity tokens.
    std::vector<std::pair<std::string, std::string>> form;
    if (!cred.identityToken.empty() || cred.username.empty()) {
      form = {{"grant_type", "refresh_token"}, {"refresh_token", secret}};
    } else {
      form = {{"grant_type", "password"}, {"username", cred.username}, {"password", secret}};
    }
    form.emplace_back("service", state.service);
    form.emplace_back("client_id", "snapimport");
    if (!scopes.empty()) form.emplace_back("scope", scopes.key());
    HttpRequest req;
    req.method = "POST";
    req.url = state.realm;
    req.body = formEncode(form);
    req.headers.add("Content-Type", "application/x-www-form-urlencoded");
    req.tls = tls;
    auto s = transport_.open(req);
    if (s->status() == 200) return parseToken(*s, "POST");
    long st = s->status();
    // Token servers without OAuth2 POST: GCR 404, Artifactory 401, ACR 400, others 405.
    bool fallback =
        st == 404 || st == 405 || st == 400 || (st == 401 && cred.identityToken.empty());
    if (!fallback || !cred.identityToken.empty()) throw statusError(*s, "POST");
    log::debug("token POST not supported, falling back to GET",
               {{"realm", redactUrl(state.realm)}, {"status", std::to_string(st)}});
  }
  std::string url = state.realm;
  if (!state.service.empty()) url = appendQuery(url, "service", state.service);
  for (const auto& s : scopes.list()) url = appendQuery(url, "scope", s);
  HttpRequest req;
  req.url = url;
  req.tls = tls;
  if (!cred.username.empty())
    req.headers.add("Authorization", "Basic " + base64Encode(cred.username + ":" + cred.password));
  auto s = transport_.open(req);
  if (s->status() != 200) throw statusError(*s, "GET");
  return parseToken(*s, "GET");
}

}  // namespace snapimport::registry
