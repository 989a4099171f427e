#include "registry/CredentialProviderMatch.h"

#include <fnmatch.h>

#include <algorithm>

namespace snapimport::registry {
namespace {

struct SchemelessUrl {
  std::string_view host;  // with the port
  std::string_view path;  // "" or starting with '/'
};

// Go's url.Parse("https://" + s) for what kubelet feeds it: the authority ends at the first '/',
// '?' or '#'; the path ends at '?' or '#'.
SchemelessUrl parseSchemeless(std::string_view s) {
  SchemelessUrl u;
  size_t end = s.find_first_of("/?#");
  u.host = s.substr(0, end);
  if (end != std::string_view::npos && s[end] == '/') {
    std::string_view rest = s.substr(end);
    u.path = rest.substr(0, rest.find_first_of("?#"));
  }
  return u;
}

// Go's net.SplitHostPort, falling back to (whole, "") when it would fail, as kubelet's splitURL.
void splitHostPort(std::string_view hostport, std::string_view& host, std::string_view& port) {
  host = hostport;
  port = {};
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos || close + 1 >= hostport.size() ||
        hostport[close + 1] != ':')
      return;
    host = hostport.substr(1, close - 1);
    port = hostport.substr(close + 2);
    return;
  }
  size_t colon = hostport.find(':');
  if (colon == std::string_view::npos || hostport.find(':', colon + 1) != std::string_view::npos)
    return;  // no port, or too many colons
  host = hostport.substr(0, colon);
  port = hostport.substr(colon + 1);
}

std::vector<std::string> labels(std::string_view host) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t dot = host.find('.', start);
    out.emplace_back(host.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

// Patterns Go's filepath.Match rejects (ErrBadPattern, so kubelet finds no match) but fnmatch(3)
// would read literally: an unclosed '[' or a trailing '\\'.
bool malformedGlob(std::string_view p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (++i == p.size()) return true;
    } else if (p[i] == '[') {
      size_t j = i + 1;
      if (j < p.size() && (p[j] == '^' || p[j] == '!')) ++j;
      if (j < p.size() && p[j] == ']') return true;  // Go: an empty class is an error
      while (j < p.size() && p[j] != ']') j += (p[j] == '\\') ? 2 : 1;
      if (j >= p.size()) return true;
      i = j;
    }
  }
  return false;
}

// kubelet's keyring normalisation of an auth key: scheme optional, /v1/ and /v2/ mean the host.
std::string normalizedAuthKey(std::string_view key) {
  if (key.starts_with("https://")) {
    key.remove_prefix(8);
  } else if (key.starts_with("http://")) {
    key.remove_prefix(7);
  }
  SchemelessUrl u = parseSchemeless(key);
  std::string_view path = u.path;
  if (path.starts_with("/v2/") || path.starts_with("/v1/")) path.remove_prefix(3);
  std::string out(u.host);
  if (!path.empty() && path != "/") out += path;
  return out;
}

// kubelet's isDefaultRegistryMatch: images that Docker Hub serves.
bool isDockerHubImage(std::string_view image) {
  size_t slash = image.find('/');
  std::string_view first = image.substr(0, slash);
  if (first.empty()) return false;
  if (slash == std::string_view::npos) return true;
  if (first == "docker.io" || first == "index.docker.io") return true;
  return first.find_first_of(".:") == std::string_view::npos;
}

}  // namespace

bool imageMatches(std::string_view pattern, std::string_view image) {
  SchemelessUrl p = parseSchemeless(pattern), t = parseSchemeless(image);
  std::string_view pHost, pPort, tHost, tPort;
  splitHostPort(p.host, pHost, pPort);
  splitHostPort(t.host, tHost, tPort);
  if (pPort != tPort) return false;
  std::vector<std::string> pl = labels(pHost), tl = labels(tHost);
  if (pl.size() != tl.size()) return false;
  if (!t.path.starts_with(p.path)) return false;
  for (size_t i = 0; i < pl.size(); ++i) {
    // fnmatch(3) without flags is Go's filepath.Match within a label: * ? [a-z] [^x] and \ escapes;
    // a malformed pattern matches nothing, as Go's ErrBadPattern does in kubelet.
    if (malformedGlob(pl[i]) || fnmatch(pl[i].c_str(), tl[i].c_str(), 0) != 0) return false;
  }
  return true;
}

std::string imagePatternProblem(std::string_view pattern) {
  if (pattern.empty()) return "is empty";
  for (char c : pattern) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return "must not contain spaces or control characters";
  }
  std::string_view host = parseSchemeless(pattern).host;
  std::string_view port;
  if (host.starts_with("[")) {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return "has an unclosed '[' in its host";
    port = host.substr(close + 1);
    if (!port.empty() && port.front() != ':') return "has text after the ']' of its host";
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon);
  }
  if (!port.empty() && port.find_first_not_of("0123456789", 1) != std::string_view::npos)
    return "has a port that is not a number (globs are allowed in the host only)";
  return "";
}

std::string imageRegistry(std::string_view image) {
  return std::string(image.substr(0, image.find('/')));
}

std::optional<size_t> preferredAuthKey(const std::vector<std::string>& keys,
                                       std::string_view image) {
  std::vector<std::pair<std::string, size_t>> index;
  for (size_t i = 0; i < keys.size(); ++i) index.emplace_back(normalizedAuthKey(keys[i]), i);
  // Reverse lexicographic, as kubelet's keyring index; equal keys keep the response's order.
  std::stable_sort(index.begin(), index.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [key, i] : index) {
    if (imageMatches(key, image)) return i;
  }
  for (const auto& [key, i] : index) {
    if (key == "index.docker.io" && isDockerHubImage(image)) return i;
  }
  return std::nullopt;
}

}  // namespace snapimport::registry
