#include "PullCredentials.h"

#include <stdexcept>

#include "registry/Error.h"
#include "registry/Reference.h"

namespace snapimport::plugin {

std::optional<registry::Credential> credentialFromAuthConfig(const CriAuthConfig& a) {
  if (a.empty()) return std::nullopt;
  registry::Credential c;
  c.source = "CRI PullImage auth";
  if (!a.serverAddress.empty()) {
    c.onlyHost = registry::serverAddressHost(a.serverAddress);
    if (c.onlyHost.empty()) {
      throw std::invalid_argument("AuthConfig.server_address names no host");
    }
    c.source += " for " + c.onlyHost;
  }
  if (!a.username.empty()) {
    c.username = a.username;
    c.password = a.password;
  } else if (!a.identityToken.empty()) {
    c.identityToken = a.identityToken;
  } else if (!a.auth.empty()) {
    std::string decoded;
    try {
      decoded = registry::base64Decode(a.auth);
    } catch (const registry::Error&) {
      throw std::invalid_argument("AuthConfig.auth is not valid base64");
    }
    auto colon = decoded.find(':');
    if (colon == std::string::npos || colon == 0) {
      throw std::invalid_argument("AuthConfig.auth does not decode to \"user:password\"");
    }
    c.username = decoded.substr(0, colon);
    c.password = decoded.substr(colon + 1);
    // docker pads some encoders' output with NULs; containerd trims them too.
    while (!c.password.empty() && c.password.back() == '\0') c.password.pop_back();
  } else if (!a.registryToken.empty()) {
    c.registryToken = a.registryToken;
  } else {
    throw std::invalid_argument("AuthConfig has a password but no username");
  }
  return c;
}

std::string pullKey(const std::string& imageRef) {
  registry::Reference r = registry::Reference::parse(imageRef);
  return r.digest ? r.name() + "@" + r.digest->str() : r.name() + ":" + r.tag;
}

PullCredentials::PullCredentials(std::chrono::milliseconds grace, Clock clock)
    : grace_(grace), clock_(std::move(clock)) {}

std::chrono::steady_clock::time_point PullCredentials::now() const {
  return clock_ ? clock_() : std::chrono::steady_clock::now();
}

void PullCredentials::pruneLocked(std::chrono::steady_clock::time_point t) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!it->second.running && t - it->second.endedAt >= grace_) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

uint64_t PullCredentials::begin(const std::string& imageRef, registry::Credential credential) {
  std::string key = pullKey(imageRef);
  std::lock_guard lock(mu_);
  pruneLocked(now());
  uint64_t ticket = next_++;
  entries_.emplace(ticket, Entry{std::move(key), std::move(credential)});
  return ticket;
}

void PullCredentials::end(uint64_t ticket) {
  std::lock_guard lock(mu_);
  auto t = now();
  if (auto it = entries_.find(ticket); it != entries_.end()) {
    it->second.running = false;
    it->second.endedAt = t;
  }
  pruneLocked(t);
}

std::optional<PullCredentials::Found> PullCredentials::find(const std::string& imageRef) {
  std::string key;
  try {
    key = pullKey(imageRef);
  } catch (const registry::Error&) {
    return std::nullopt;
  }
  std::lock_guard lock(mu_);
  pruneLocked(now());
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->second.key == key) return Found{it->first, it->second.credential};
  }
  return std::nullopt;
}

bool PullCredentials::live(uint64_t ticket) {
  std::lock_guard lock(mu_);
  pruneLocked(now());
  return entries_.count(ticket) != 0;
}

size_t PullCredentials::size() {
  std::lock_guard lock(mu_);
  pruneLocked(now());
  return entries_.size();
}

}  // namespace snapimport::plugin
