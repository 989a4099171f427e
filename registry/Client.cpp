#include "registry/Client.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "common/Log.h"
#include "registry/ClientRequest.h"
#include "registry/Error.h"

namespace snapimport::registry {

namespace {

constexpr int kMaxRedirects = 10;
constexpr size_t kMaxErrorBody = 64 << 10;

bool isRedirect(long s) { return s == 301 || s == 302 || s == 303 || s == 307 || s == 308; }
bool isRetryable(long s) { return s == 429 || s == 503 || s == 502 || s == 504 || s == 408; }

std::string printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  return out;
}

// Retry-After: delta-seconds (HTTP dates are treated as one second).
std::chrono::milliseconds retryAfter(const HttpHeaders& h, std::chrono::seconds cap) {
  std::string v = h.get("Retry-After");
  if (v.empty()) return std::chrono::milliseconds(-1);
  if (std::all_of(v.begin(), v.end(), ::isdigit) && v.size() < 9) {
    return std::min<std::chrono::milliseconds>(std::chrono::seconds(std::stol(v)), cap);
  }
  return std::chrono::seconds(1);
}

std::chrono::milliseconds backoff(std::chrono::milliseconds base, int attempt) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  auto ms = base.count() * (1LL << std::min(attempt, 6));
  std::uniform_int_distribution<long long> jitter(0, ms / 2);
  return std::chrono::milliseconds(std::min<long long>(ms + jitter(rng), 30000));
}

}  // namespace

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      transport_(std::make_unique<HttpTransport>(options_.transport)) {
  CredentialOptions co;
  co.pullCredential = options_.pullCredential;
  co.creds = options_.creds;
  co.authFile = options_.authFile;
  co.providers = options_.credentialProviders;
  authorizer_ = std::make_unique<Authorizer>(*transport_, CredentialStore(co));
}

Client::~Client() = default;

std::vector<RegistryHost> Client::hostsFor(const Reference& repo, unsigned caps) {
  auto all = resolveHosts(repo.domain, HostsOptions{options_.hostsDir, options_.tlsVerify});
  std::vector<RegistryHost> out;
  std::lock_guard lock(mu_);
  for (auto& h : all) {
    if (!h.can(caps)) continue;
    if (auto it = schemeOverride_.find(h.host); it != schemeOverride_.end() && h.httpFallback) {
      h.scheme = it->second;
    }
    out.push_back(std::move(h));
  }
  if (out.empty()) {
    throw Error(ErrorKind::Invalid, "no configured host for " + repo.domain +
                                        " has the capabilities this operation needs (" +
                                        std::string((caps & kPush)      ? "push"
                                                    : (caps & kResolve) ? "pull, resolve"
                                                                        : "pull") +
                                        ")");
  }
  return out;
}

std::unique_ptr<HttpStream> Client::send(const Reference& repo, Request& req) {
  std::vector<RegistryHost> hosts =
      req.fixedHost ? std::vector<RegistryHost>{*req.fixedHost} : hostsFor(repo, req.caps);
  std::string lastProblem;
  ErrorKind lastKind = ErrorKind::Transport;
  for (size_t i = 0; i < hosts.size(); ++i) {
    RegistryHost& host = hosts[i];
    const bool last = i + 1 == hosts.size();
    auto firstUrl = [&] {
      if (!req.absoluteUrl.empty()) return req.absoluteUrl;
      std::string u = host.baseUrl() + "/" + repo.path + req.path;
      if (host.isMirror) u = appendQuery(u, "ns", repo.domain);
      return u;
    };
    std::string url = firstUrl();
    int authTries = 0, retries = 0, hops = 0;
    bool nextHost = false;
    while (!nextHost) {
      const std::string hostOrigin = originOf(host.baseUrl());
      const bool sameOrigin = originOf(url) == hostOrigin;
      HttpRequest hr;
      bool sentAuth = false;
      hr.method = req.method;
      hr.url = url;
      hr.headers = req.headers;
      if (sameOrigin) {
        for (const auto& [k, v] : host.headers.items()) hr.headers.add(k, v);
        std::string auth = authorizer_->authorization(host, repo.domain, repo.path, req.scopes);
        sentAuth = !auth.empty();
        if (sentAuth) hr.headers.set("Authorization", auth);
        hr.tls = host.tls;
      } else {
        // Another origin (storage redirect, foreign Location): no credentials, no host headers.
        hr.tls.verify = options_.tlsVerify.value_or(true);
      }
      std::shared_ptr<BlobReader> source;
      if (req.bodySource) {
        source = req.bodySource();
        hr.bodyReader = [source](char* buf, size_t len) { return source->read(buf, len); };
        hr.bodySize = req.bodySize;
      } else {
        hr.body = req.body;
      }
      std::unique_ptr<HttpStream> s;
      try {
        s = transport_->open(hr);
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::Transport) throw;
        if (host.httpFallback && host.scheme == "https" && hops == 0 && req.absoluteUrl.empty()) {
          log::debug("https failed, falling back to http",
                     {{"host", host.host}, {"error", e.what()}});
          host.scheme = "http";
          {
            std::lock_guard lock(mu_);
            schemeOverride_[host.host] = "http";
          }
          url = firstUrl();
          continue;
        }
        bool idempotent = req.method == "GET" || req.method == "HEAD";
        // TLS and certificate failures won't heal by waiting.
        static const std::set<std::string> kFinal = {"35", "51", "53", "58", "59",
                                                     "60", "77", "83", "90", "91"};
        // A TLS connection closed right after the handshake, before any answer, is a refused (or
        // missing) client certificate far more often than a network blip: one more try, not
        // maxRetries of them with backoff (that took ~9 s before the error reached the user).
        int allowed =
            e.code() == kTlsClosedCode ? std::min(1, options_.maxRetries) : options_.maxRetries;
        if (idempotent && retries < allowed && last && !kFinal.count(e.code())) {
          std::this_thread::sleep_for(backoff(options_.retryBase, retries++));
          continue;
        }
        lastProblem = e.what();
        lastKind = ErrorKind::Transport;
        nextHost = true;
        break;
      }
      long status = s->status();
      if (status == 401 && sameOrigin && authTries < 3) {
        if (authorizer_->handleUnauthorized(host, req.scopes, s->headers(), sentAuth)) {
          ++authTries;
          continue;
        }
      }
      if (isRetryable(status) && retries < options_.maxRetries) {
        auto wait = retryAfter(s->headers(), options_.maxRetryAfter);
        if (wait.count() < 0) wait = backoff(options_.retryBase, retries);
        log::info("registry busy, retrying", {{"url", redactUrl(url)},
                                              {"status", std::to_string(status)},
                                              {"wait_ms", std::to_string(wait.count())}});
        ++retries;
        s.reset();
        std::this_thread::sleep_for(wait);
        continue;
      }
      if (isRedirect(status) && req.followRedirects) {
        std::string loc = s->headers().get("Location");
        if (loc.empty()) return s;
        if (++hops > kMaxRedirects) {
          throw Error(ErrorKind::Transport,
                      req.action + " " + repo.str() + ": more than 10 redirects from " + host.host);
        }
        std::string next = resolveUrl(url, loc);
        if (url.starts_with("https:") && next.starts_with("http:")) {
          throw Error(ErrorKind::Transport, req.action + " " + repo.str() +
                                                ": refusing a redirect from https to plain http (" +
                                                redactUrl(next) + ")");
        }
        log::debug("redirect", {{"from", redactUrl(url)}, {"to", redactUrl(next)}});
        url = next;
        if (status == 303) req.method = "GET";
        continue;
      }
      if (!last && (status == 404 || status >= 500 || isRetryable(status))) {
        lastProblem = host.host + " answered HTTP " + std::to_string(status);
        lastKind = status == 404 ? ErrorKind::NotFound : ErrorKind::Server;
        log::info("mirror failed, trying the next host",
                  {{"host", host.host}, {"status", std::to_string(status)}});
        nextHost = true;
        break;
      }
      req.usedHost = host;
      req.finalUrl = url;
      return s;
    }
  }
  throw Error(lastKind, req.action + " " + repo.str() + ": " + lastProblem);
}

Error Client::failure(HttpStream& s, const std::string& action, const Reference& repo,
                      const std::string& url, const RegistryHost& host) {
  long status = s.status();
  bool truncated = false;
  std::string body = s.readAll(kMaxErrorBody, &truncated);
  std::string code, message;
  try {
    auto j = nlohmann::json::parse(body);
    if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
      const auto& e = j["errors"][0];
      if (e.is_object()) {
        if (e.contains("code") && e["code"].is_string()) code = e["code"].get<std::string>();
        if (e.contains("message") && e["message"].is_string())
          message = e["message"].get<std::string>();
      }
    }
  } catch (const std::exception&) {
    message = printable(body);
  }
  ErrorKind kind = ErrorKind::Invalid;
  std::string challengeError;
  for (const auto& c : parseChallenges(s.headers().getAll("WWW-Authenticate"))) {
    if (!c.param("error").empty()) challengeError = c.param("error");
  }
  if (status == 401) kind = ErrorKind::Unauthorized;
  if (status == 403 || code == "DENIED" || challengeError == "insufficient_scope") {
    kind = ErrorKind::Denied;
  }
  // Without any credentials a refusal means "log in", not "you lack rights".
  if (kind == ErrorKind::Denied && status == 401 &&
      authorizer_->anonymous(repo.domain, repo.path)) {
    kind = ErrorKind::Unauthorized;
  }
  if (status == 404) kind = ErrorKind::NotFound;
  if (status == 429 || status >= 500) kind = ErrorKind::Server;
  if (status == 405) kind = ErrorKind::Unsupported;
  std::string msg = action + " " + repo.str() + " on " + host.host + " (" + redactUrl(url) +
                    "): HTTP " + std::to_string(status);
  if (!code.empty()) msg += " " + code;
  if (!message.empty()) msg += ": " + printable(message, 300);
  if (kind == ErrorKind::Denied) {
    msg +=
        " (denied: the credentials used lack the rights for this operation; credential sources: " +
        authorizer_->describeSources(repo.domain, repo.path) + ")";
  } else if (kind == ErrorKind::Unauthorized) {
    msg += " (authentication failed; credential sources tried: " +
           authorizer_->describeSources(repo.domain, repo.path) + ")";
  }
  return Error(kind, msg, status, code);
}

}  // namespace snapimport::registry

namespace snapimport::registry {

// --------------------------------------------------------------------------------------------
// manifests

ManifestBlob Client::getManifest(const Reference& ref) {
  Request r;
  r.path = "/manifests/" + ref.object();
  r.caps = ref.digest ? kPull : (kPull | kResolve);
  r.scopes.addRepository(ref.path, "pull");
  r.headers.add("Accept", mediatype::acceptHeader());
  r.action = "fetch manifest";
  auto s = send(ref, r);
  if (s->status() != 200) throw failure(*s, r.action, ref, r.finalUrl, r.usedHost);
  const std::string what = ref.str() + " from " + r.usedHost.host;
  std::string cl = s->headers().get("Content-Length");
  const size_t cap = std::min(options_.maxManifestBytes, kMaxManifestSize);
  const std::string limit =
      "the " +
      (cap % (1 << 20) == 0 ? std::to_string(cap >> 20) + " MiB" : std::to_string(cap) + "-byte") +
      " limit";
  if (!cl.empty() && cl.size() < 19 && std::all_of(cl.begin(), cl.end(), ::isdigit) &&
      std::stoull(cl) > cap) {
    throw Error(ErrorKind::Invalid,
                what + ": manifest of " + cl + " bytes is larger than " + limit);
  }
  bool truncated = false;
  ManifestBlob blob;
  blob.bytes = s->readAll(cap, &truncated);
  if (truncated) throw Error(ErrorKind::Invalid, what + ": manifest is larger than " + limit);
  if (ref.digest) {
    blob.digest = digestOf(blob.bytes, ref.digest->algorithm());
    if (blob.digest != *ref.digest) {
      throw Error(ErrorKind::Verification, what + ": manifest bytes hash to " + blob.digest.str() +
                                               ", not the requested " + ref.digest->str());
    }
  } else {
    blob.digest = digestOf(blob.bytes);
    // The header is informative only; a disagreement means something in between changed the bytes.
    std::string hdr = s->headers().get("Docker-Content-Digest");
    if (Digest::isValid(hdr) && hdr.starts_with("sha256:") && hdr != blob.digest.str()) {
      throw Error(ErrorKind::Verification, what + ": manifest bytes hash to " + blob.digest.str() +
                                               " but the registry says Docker-Content-Digest " +
                                               hdr);
    }
  }
  blob.mediaType = detectManifestType(blob.bytes, s->headers().get("Content-Type"), what);
  return blob;
}

std::optional<Descriptor> Client::headManifest(const Reference& ref) {
  Request r;
  r.method = "HEAD";
  r.path = "/manifests/" + ref.object();
  r.caps = ref.digest ? kPull : (kPull | kResolve);
  r.scopes.addRepository(ref.path, "pull");
  r.headers.add("Accept", mediatype::acceptHeader());
  r.action = "look up manifest";
  auto s = send(ref, r);
  if (s->status() == 404) return std::nullopt;
  std::string dg = s->headers().get("Docker-Content-Digest");
  if (s->status() == 405 || (s->status() == 200 && !Digest::isValid(dg))) {
    ManifestBlob b = getManifest(ref);
    Descriptor d;
    d.mediaType = b.mediaType;
    d.digest = b.digest;
    d.size = static_cast<int64_t>(b.bytes.size());
    return d;
  }
  if (s->status() != 200) throw failure(*s, r.action, ref, r.finalUrl, r.usedHost);
  Descriptor d;
  d.digest = Digest::parse(dg);
  std::string ct = s->headers().get("Content-Type");
  d.mediaType = ct.substr(0, ct.find(';'));
  std::string cl = s->headers().get("Content-Length");
  d.size = cl.empty() ? 0 : std::stoll(cl);
  return d;
}

ResolvedImage Client::resolve(const Reference& ref, const Platform& platform) {
  ResolvedImage img;
  img.reference = ref;
  ManifestBlob blob = getManifest(ref);
  for (int depth = 0;; ++depth) {
    const std::string what = ref.str() + (depth ? " (" + blob.digest.str() + ")" : "");
    if (mediatype::isIndex(blob.mediaType)) {
      if (depth >= 4) throw Error(ErrorKind::Invalid, what + ": indexes nested more than 4 deep");
      ImageIndex idx = parseIndex(blob.bytes, what);
      Descriptor d = selectPlatform(idx, platform, what);
      if (!img.index) img.index = blob;
      blob = getManifest(ref.withDigest(d.digest));
      continue;
    }
    img.manifest = parseManifest(blob.bytes, what);
    img.manifestDescriptor.mediaType = blob.mediaType;
    img.manifestDescriptor.digest = blob.digest;
    img.manifestDescriptor.size = static_cast<int64_t>(blob.bytes.size());
    img.manifestBlob = std::move(blob);
    return img;
  }
}

// --------------------------------------------------------------------------------------------
// blobs

class RegistryBlobReader : public BlobReader {
 public:
  RegistryBlobReader(Client& client, Reference repo, Descriptor desc)
      : client_(client),
        repo_(std::move(repo)),
        desc_(std::move(desc)),
        hasher_(desc_.digest.algorithm()) {
    open();  // errors such as 404 or 401 surface here, before the caller starts reading
  }

  size_t read(void* buf, size_t len) override {
    if (finished_) return 0;
    while (true) {
      if (!stream_) open();
      size_t n = 0;
      try {
        n = stream_->read(buf, len);
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::Transport) throw;
        dropped(e.what());
        continue;
      }
      if (n == 0) {
        stream_.reset();
        if (static_cast<int64_t>(got_) < desc_.size) {
          dropped("connection closed after " + std::to_string(got_) + " of " +
                  std::to_string(desc_.size) + " bytes");
          continue;
        }
        checkDigest();
        finished_ = true;
        return 0;
      }
      char* p = static_cast<char*>(buf);
      if (skip_ > 0) {  // a 200 after a Range request: the prefix again
        size_t k = std::min<uint64_t>(skip_, n);
        skip_ -= k;
        if (k == n) continue;
        std::memmove(p, p + k, n - k);
        n -= k;
      }
      if (got_ + n > static_cast<uint64_t>(desc_.size)) {
        throw Error(ErrorKind::Verification,
                    "blob " + desc_.digest.str() + " of " + repo_.str() + " from " + host_ +
                        ": more bytes than the descriptor's size " + std::to_string(desc_.size));
      }
      hasher_.update(p, n);
      got_ += n;
      failures_ = 0;
      // Checked before the last bytes are handed out: a consumer that stops at the size (an
      // upload of these bytes to another registry) never asks for the end of the stream.
      if (got_ == static_cast<uint64_t>(desc_.size)) checkDigest();
      return n;
    }
  }

 private:
  void checkDigest() {
    Digest actual = hasher_.digest();
    if (actual != desc_.digest) {
      throw Error(ErrorKind::Verification, "blob " + desc_.digest.str() + " of " + repo_.str() +
                                               " from " + host_ + ": content hashes to " +
                                               actual.str() + "; refusing it");
    }
  }

  void dropped(const std::string& why) {
    stream_.reset();
    if (++failures_ > client_.options_.maxRetries) {
      throw Error(ErrorKind::Transport, "fetch blob " + desc_.digest.str() + " of " + repo_.str() +
                                            " from " + host_ + ": gave up after " +
                                            std::to_string(failures_ - 1) + " resumes: " + why);
    }
    log::warn(
        "blob download interrupted, resuming",
        {{"blob", desc_.digest.shortForm()}, {"offset", std::to_string(got_)}, {"reason", why}});
    std::this_thread::sleep_for(backoff(client_.options_.retryBase, failures_ - 1));
  }

  void open() {
    Client::Request r;
    r.path = "/blobs/" + desc_.digest.str();
    r.scopes.addRepository(repo_.path, "pull");
    r.action = "fetch blob " + desc_.digest.str() + " of";
    if (got_ > 0) r.headers.add("Range", "bytes=" + std::to_string(got_) + "-");
    auto s = client_.send(repo_, r);
    host_ = r.usedHost.host;
    long st = s->status();
    if (st == 206 && got_ > 0) {
      std::string cr = s->headers().get("Content-Range");
      if (!cr.starts_with("bytes " + std::to_string(got_) + "-")) {
        throw Error(ErrorKind::Transport,
                    r.action + " " + repo_.str() + ": resumed at byte " + std::to_string(got_) +
                        " but the server answered Content-Range '" + printable(cr) + "'");
      }
    } else if (st == 200) {
      skip_ = got_;  // the server ignored Range: discard what we already have
      std::string cl = s->headers().get("Content-Length");
      if (!cl.empty() && cl.size() < 19 && std::all_of(cl.begin(), cl.end(), ::isdigit) &&
          std::stoll(cl) != desc_.size) {
        throw Error(ErrorKind::Verification,
                    r.action + " " + repo_.str() + " from " + host_ + ": Content-Length " + cl +
                        " differs from the descriptor's size " + std::to_string(desc_.size));
      }
    } else {
      throw client_.failure(*s, r.action, repo_, r.finalUrl, r.usedHost);
    }
    stream_ = std::move(s);
  }

  Client& client_;
  Reference repo_;
  Descriptor desc_;
  Hasher hasher_;
  std::unique_ptr<HttpStream> stream_;
  std::string host_;
  uint64_t got_ = 0;
  uint64_t skip_ = 0;
  int failures_ = 0;
  bool finished_ = false;
};

std::unique_ptr<BlobReader> Client::openBlob(const Reference& repo, const Descriptor& blob) {
  return std::make_unique<RegistryBlobReader>(*this, repo, blob);
}

std::string Client::fetchBlob(const Reference& repo, const Descriptor& blob, size_t limit) {
  if (blob.size < 0 || static_cast<uint64_t>(blob.size) > limit) {
    throw Error(ErrorKind::Invalid, "blob " + blob.digest.str() + " of " + repo.str() + " is " +
                                        std::to_string(blob.size) + " bytes, more than the " +
                                        std::to_string(limit) + " allowed here");
  }
  auto r = openBlob(repo, blob);
  std::string out;
  char buf[65536];
  while (size_t n = r->read(buf, sizeof buf)) out.append(buf, n);
  return out;
}

std::vector<std::string> Client::listTags(const Reference& repo, int pageSize) {
  std::vector<std::string> tags;
  Request r;
  r.path = "/tags/list";
  if (pageSize > 0) r.path += "?n=" + std::to_string(pageSize);
  r.caps = kPull | kResolve;
  r.scopes.addRepository(repo.path, "pull");
  r.action = "list tags of";
  for (int page = 0; page < 10000; ++page) {
    auto s = send(repo, r);
    if (s->status() != 200) throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
    bool truncated = false;
    std::string body = s->readAll(16 << 20, &truncated);
    if (truncated)
      throw Error(ErrorKind::Invalid,
                  "list tags of " + repo.str() + ": response larger than 16 MiB");
    try {
      auto j = nlohmann::json::parse(body);
      if (j.contains("tags") && j["tags"].is_array()) {
        for (const auto& t : j["tags"]) {
          if (t.is_string()) tags.push_back(t.get<std::string>());
        }
      }
    } catch (const nlohmann::json::exception&) {
      throw Error(ErrorKind::Invalid, "list tags of " + repo.str() + " on " + r.usedHost.host +
                                          ": response is not valid JSON");
    }
    // Link: </v2/<name>/tags/list?last=x&n=y>; rel="next"
    std::string link = s->headers().get("Link");
    auto lt = link.find('<'), gt = link.find('>');
    if (link.find("rel=\"next\"") == std::string::npos || lt == std::string::npos ||
        gt == std::string::npos || gt < lt) {
      return tags;
    }
    std::string next = resolveUrl(r.finalUrl, link.substr(lt + 1, gt - lt - 1));
    if (originOf(next) != originOf(r.usedHost.baseUrl())) {
      throw Error(ErrorKind::Invalid,
                  "list tags of " + repo.str() + ": pagination link points at another host");
    }
    r.fixedHost = r.usedHost;
    r.absoluteUrl = next;
  }
  return tags;
}

}  // namespace snapimport::registry
