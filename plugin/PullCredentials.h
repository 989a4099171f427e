#pragma once
// Credentials that arrived with one CRI pull (PullImage.auth, from kubelet's imagePullSecrets or
// a credential provider), held for that pull alone. containerd never hands them to a snapshotter,
// so the CRI image-service proxy (CriImageProxy) registers them here before it forwards the
// PullImage, and the importer finds them by the `cri.image-ref` its Prepare labels carry.
//
// A credential is bound to the normalised reference of the pull (repository plus tag or digest):
// two pods in different namespaces may hold different secrets for one registry, so nothing here
// is keyed by host. It lives in memory only, for as long as the PullImage runs plus a short grace
// (containerd may still Prepare the last layers after kubelet's call was cancelled), and is never
// logged: `describe()` names its source, never its contents.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "registry/Credentials.h"

namespace snapimport::plugin {

// The fields of a CRI AuthConfig (runtime.v1), as plain strings.
struct CriAuthConfig {
  std::string username, password, auth, serverAddress, identityToken, registryToken;
  bool empty() const {
    return username.empty() && password.empty() && auth.empty() && identityToken.empty() &&
           registryToken.empty();
  }
};

// The registry credential an AuthConfig stands for, with containerd's precedence: username (and
// password), else identity_token, else `auth` (base64 "user:password"), else registry_token.
// server_address, when set, limits it to that host. Returns nullopt for an empty AuthConfig (an
// anonymous pull). Throws std::invalid_argument naming the field that is malformed, never its
// value.
std::optional<registry::Credential> credentialFromAuthConfig(const CriAuthConfig& auth);

// The key a reference is known by: "<domain>/<path>@<digest>" when it has a digest (the tag is
// then ignored, as containerd's CRI does), else "<domain>/<path>:<tag>". Throws registry::Error
// for a malformed reference.
std::string pullKey(const std::string& imageRef);

class PullCredentials {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit PullCredentials(std::chrono::milliseconds grace = std::chrono::seconds(10),
                           Clock clock = {});

  // A pull of `imageRef` with `credential` starts. Returns a ticket for end(). Throws
  // registry::Error for a malformed reference.
  uint64_t begin(const std::string& imageRef, registry::Credential credential);
  // The pull ended (successfully or not); the credential stays usable for the grace period.
  void end(uint64_t ticket);

  struct Found {
    uint64_t ticket = 0;  // identifies the pull: one registry client per ticket
    registry::Credential credential;
  };
  // The credential of the newest live pull of `imageRef`, or nullopt. A malformed reference has
  // none.
  std::optional<Found> find(const std::string& imageRef);
  // True while `ticket` is live (running, or ended less than the grace ago).
  bool live(uint64_t ticket);
  // How many are held (running or in their grace), for tests and the log.
  size_t size();

 private:
  struct Entry {
    std::string key;
    registry::Credential credential;
    bool running = true;
    std::chrono::steady_clock::time_point endedAt{};
  };
  void pruneLocked(std::chrono::steady_clock::time_point now);
  std::chrono::steady_clock::time_point now() const;

  std::chrono::milliseconds grace_;
  Clock clock_;
  std::mutex mu_;
  uint64_t next_ = 1;
  std::map<uint64_t, Entry> entries_;  // by ticket; newer pulls have larger tickets
};

}  // namespace snapimport::plugin
