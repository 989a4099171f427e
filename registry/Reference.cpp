#include "registry/Reference.h"

#include <algorithm>

#include "registry/Error.h"

namespace snapimport::registry {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr std::string_view kDefaultDomain = "docker.io";

bool isAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return isAlnumLower(c) || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool isValidComponent(std::string_view c) {
  if (c.empty() || !isAlnumLower(c.front()) || !isAlnumLower(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (isAlnumLower(c[i])) {
      ++i;
      continue;
    }
    // A separator: ".", "_", "__" or one or more "-", always followed by an alphanumeric.
    size_t j = i;
    if (c[i] == '.') {
      j = i + 1;
    } else if (c[i] == '_') {
      j = i + 1;
      if (j < c.size() && c[j] == '_') ++j;
    } else if (c[i] == '-') {
      while (j < c.size() && c[j] == '-') ++j;
    } else {
      return false;
    }
    if (j >= c.size() || !isAlnumLower(c[j])) return false;
    i = j;
  }
  return true;
}

// A DNS label: [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
bool isValidLabel(std::string_view l) {
  if (l.empty() || !isAlnum(l.front()) || !isAlnum(l.back())) return false;
  return std::all_of(l.begin(), l.end(), [](char c) { return isAlnum(c) || c == '-'; });
}

bool isAnchoredHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(),
                                       [](char c) { return isDigit(c) || (c >= 'a' && c <= 'f'); });
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 300)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

[[noreturn]] void invalid(std::string_view text, const std::string& why) {
  throw Error(ErrorKind::Invalid, "invalid image reference '" + printable(text) + "': " + why);
}

}  // namespace

bool Reference::isValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  if (!(isAlnum(tag[0]) || tag[0] == '_')) return false;
  return std::all_of(tag.begin(), tag.end(),
                     [](char c) { return isAlnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool Reference::isValidPath(std::string_view path) {
  if (path.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    auto comp = path.substr(start, slash == std::string_view::npos ? path.npos : slash - start);
    if (!isValidComponent(comp)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool Reference::isValidDomain(std::string_view domain) {
  if (domain.empty()) return false;
  std::string_view host = domain;
  std::string_view port;
  if (domain.front() == '[') {
    // IPv6 literal: [hex:hex::...]
    auto close = domain.find(']');
    if (close == std::string_view::npos) return false;
    auto inner = domain.substr(1, close - 1);
    if (inner.empty() || !std::all_of(inner.begin(), inner.end(), [](char c) {
          return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':';
        })) {
      return false;
    }
    auto rest = domain.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    port = rest.substr(1);
    host = {};
  } else {
    auto colon = domain.find(':');
    if (colon != std::string_view::npos) {
      host = domain.substr(0, colon);
      port = domain.substr(colon + 1);
      if (port.empty()) return false;
    }
  }
  if (!port.empty() || (domain.front() != '[' && domain.find(':') != std::string_view::npos)) {
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), isDigit)) {
      return false;
    }
  }
  if (!host.empty()) {
    size_t start = 0;
    while (true) {
      size_t dot = host.find('.', start);
      auto label = host.substr(start, dot == std::string_view::npos ? host.npos : dot - start);
      if (!isValidLabel(label)) return false;
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
  }
  return true;
}

Reference Reference::parse(std::string_view text) {
  Reference ref = parseExact(text);
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

Reference Reference::parseExact(std::string_view text) {
  if (text.empty()) invalid(text, "it is empty");
  if (isAnchoredHex64(text)) invalid(text, "a bare 64-hex string is an image ID, not a name");
  Reference ref;
  std::string_view rest = text;

  // Digest first: everything after '@'.
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    auto d = rest.substr(at + 1);
    if (!Digest::isValid(d)) {
      invalid(text, "the digest must be sha256:<64 lowercase hex> or sha512:<128 lowercase hex>");
    }
    ref.digest = Digest::parse(d);
    rest = rest.substr(0, at);
  }
  // Domain: the first component when it looks like a host (has '.' or ':', is localhost, or has
  // uppercase letters), otherwise docker.io.
  auto slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  bool hasDomain =
      slash != std::string_view::npos &&
      (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
       std::any_of(first.begin(), first.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
  std::string_view remainder = rest;
  if (hasDomain) {
    ref.domain = std::string(first);
    remainder = rest.substr(slash + 1);
  } else {
    ref.domain = std::string(kDefaultDomain);
  }
  // Tag: after the last ':' that follows the last '/'.
  auto lastSlash = remainder.rfind('/');
  auto colon = remainder.find(':', lastSlash == std::string_view::npos ? 0 : lastSlash);
  if (colon != std::string_view::npos) {
    ref.tag = std::string(remainder.substr(colon + 1));
    remainder = remainder.substr(0, colon);
    if (!isValidTag(ref.tag)) {
      invalid(text,
              "tag '" + printable(ref.tag) + "' must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}");
    }
  }
  if (hasDomain && !isValidDomain(ref.domain)) {
    invalid(text, "registry host '" + printable(ref.domain) + "' is not a valid host[:port]");
  }
  ref.path = std::string(remainder);
  if (ref.domain == "index.docker.io") ref.domain = std::string(kDefaultDomain);
  if (ref.domain == kDefaultDomain && ref.path.find('/') == std::string::npos) {
    ref.path = "library/" + ref.path;
  }
  if (std::any_of(ref.path.begin(), ref.path.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    invalid(text, "repository names must be lowercase");
  }
  if (!isValidPath(ref.path)) {
    invalid(text, "repository path '" + printable(ref.path) +
                      "' must be lowercase components of [a-z0-9] joined by '.', '_', '__' or '-', "
                      "separated by '/'");
  }
  if (ref.name().size() > kMaxNameLength) {
    invalid(text, "the repository name is longer than 255 characters");
  }
  return ref;
}

Reference Reference::parseRepository(std::string_view text) {
  Reference ref = parseExact(text);
  if (!ref.tag.empty() || ref.digest)
    invalid(text, "expected a repository without a tag or digest");
  return ref;
}

std::string Reference::str() const {
  std::string s = name();
  if (!tag.empty()) s += ":" + tag;
  if (digest) s += "@" + digest->str();
  return s;
}

Reference Reference::withDigest(const Digest& d) const {
  Reference r = *this;
  r.digest = d;
  return r;
}

Reference Reference::withTag(std::string t) const {
  Reference r = *this;
  r.tag = std::move(t);
  r.digest.reset();
  return r;
}

Reference Reference::repository() const {
  Reference r = *this;
  r.tag.clear();
  r.digest.reset();
  return r;
}

}  // namespace snapimport::registry
