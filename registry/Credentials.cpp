#include "registry/Credentials.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "registry/CredentialProvider.h"
#include "registry/Error.h"

extern char** environ;

namespace fs = std::filesystem;

namespace snapimport::registry {
namespace {

constexpr std::string_view kHubKey = "https://index.docker.io/v1/";
constexpr size_t kMaxConfigSize = 4 << 20;

bool isHub(std::string_view registry) {
  return registry == "docker.io" || registry == "index.docker.io" ||
         registry == "registry-1.docker.io";
}

// Reduces a legacy key ("https://reg.example.com/v1/") to host[:port], as docker's
// ConvertToHostname.
std::string keyHost(std::string_view key) {
  std::string k(key);
  if (auto p = k.find("://"); p != std::string::npos) k = k.substr(p + 3);
  return k.substr(0, k.find('/'));
}

std::optional<nlohmann::json> readJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > kMaxConfigSize)
    throw Error(ErrorKind::Invalid, "auth file " + path + " is larger than 4 MiB");
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception&) {
    throw Error(ErrorKind::Invalid, "auth file " + path + " is not valid JSON");
  }
}

std::string str(const nlohmann::json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::vector<std::string> defaultFiles() {
  std::vector<std::string> files;
  if (const char* f = std::getenv("REGISTRY_AUTH_FILE"); f && *f) files.push_back(f);
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) {
    files.push_back(std::string(x) + "/containers/auth.json");
  }
  if (const char* d = std::getenv("DOCKER_CONFIG"); d && *d) {
    files.push_back(std::string(d) + "/config.json");
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    files.push_back(std::string(h) + "/.docker/config.json");
  }
  return files;
}

// Looks through one config file. Returns a credential (possibly empty when nothing matched).
Credential fromConfig(const nlohmann::json& cfg, const std::string& file, std::string_view registry,
                      std::string_view repoPath, std::vector<std::string>* tried) {
  const std::string key = CredentialStore::configKey(registry);
  auto note = [&](const std::string& s) {
    if (tried) tried->push_back(s);
  };
  // 1. credHelpers[key] 2. credsStore
  std::string helper;
  if (auto ch = cfg.find("credHelpers"); ch != cfg.end() && ch->is_object()) {
    for (const auto& k : {key, std::string(registry)}) {
      if (auto h = ch->find(k); h != ch->end() && h->is_string()) {
        helper = h->get<std::string>();
        break;
      }
    }
  }
  if (helper.empty()) helper = str(cfg, "credsStore");
  if (!helper.empty()) {
    std::optional<Credential> c;
    try {
      c = runCredentialHelper(helper, key);
    } catch (const Error& e) {
      throw Error(e.kind(), file + ": " + e.what());
    }
    note(file + " (credential helper docker-credential-" + helper + (c ? ": found)" : ": none)"));
    if (c) {
      c->source = file + " via docker-credential-" + helper;
      return *c;
    }
  }
  // 3. auths: repository-scoped keys (longest first, containers-auth.json), then the registry key,
  //    then legacy keys reduced to host[:port].
  auto auths = cfg.find("auths");
  if (auths == cfg.end() || !auths->is_object()) {
    note(file + " (no auths entry for " + key + ")");
    return {};
  }
  const nlohmann::json* entry = nullptr;
  std::string matched;
  std::string scoped = std::string(registry) + "/" + std::string(repoPath);
  while (!repoPath.empty()) {
    if (auto it = auths->find(scoped); it != auths->end()) {
      entry = &*it;
      matched = scoped;
      break;
    }
    auto slash = scoped.rfind('/');
    if (slash == std::string::npos || slash <= registry.size()) break;
    scoped.resize(slash);
  }
  if (!entry) {
    if (auto it = auths->find(key); it != auths->end()) {
      entry = &*it;
      matched = key;
    }
  }
  if (!entry) {
    for (auto it = auths->begin(); it != auths->end(); ++it) {
      std::string h = keyHost(it.key());
      if (h == registry || (isHub(registry) && isHub(h))) {
        entry = &*it;
        matched = it.key();
        break;
      }
    }
  }
  if (!entry || !entry->is_object()) {
    note(file + " (no auths entry for " + key + ")");
    return {};
  }
  Credential c;
  c.source = file + " auths[\"" + matched + "\"]";
  std::string auth = str(*entry, "auth");
  if (!auth.empty()) {
    std::string decoded;
    try {
      decoded = base64Decode(auth);
    } catch (const Error&) {
      throw Error(ErrorKind::Invalid, c.source + ".auth is not valid base64");
    }
    auto colon = decoded.find(':');
    if (colon == std::string::npos || colon == 0) {
      throw Error(ErrorKind::Invalid,
                  c.source + ".auth must encode user:password with a non-empty user");
    }
    c.username = decoded.substr(0, colon);
    c.password = decoded.substr(colon + 1);
    while (!c.password.empty() && c.password.back() == '\0') c.password.pop_back();
  } else {
    c.username = str(*entry, "username");
    c.password = str(*entry, "password");
  }
  c.identityToken = str(*entry, "identitytoken");
  c.registryToken = str(*entry, "registrytoken");
  note(file + " auths[\"" + matched + "\"]" + (c.empty() ? " (empty)" : ""));
  return c;
}

}  // namespace

std::string base64Encode(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = uint8_t(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < in.size() && in[i] != '='; ++i) {
    if (in[i] == '\n' || in[i] == '\r') continue;
    int v = val(in[i]);
    if (v < 0) throw Error(ErrorKind::Invalid, "invalid base64");
    buf = (buf << 6) | unsigned(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((buf >> bits) & 0xff);
    }
  }
  for (; i < in.size(); ++i) {
    if (in[i] != '=') throw Error(ErrorKind::Invalid, "invalid base64");
  }
  return out;
}

std::string CredentialStore::configKey(std::string_view registry) {
  return isHub(registry) ? std::string(kHubKey) : std::string(registry);
}

CredentialStore::CredentialStore(CredentialOptions options) : options_(std::move(options)) {}

std::string serverAddressHost(std::string_view a) {
  if (auto scheme = a.find("://"); scheme != std::string_view::npos) a.remove_prefix(scheme + 3);
  a = a.substr(0, a.find('/'));
  std::string host(a);
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host == "index.docker.io" || host == "registry-1.docker.io") return "docker.io";
  return host;
}

bool sameRegistryHost(std::string_view a, std::string_view b) {
  return serverAddressHost(a) == serverAddressHost(b);
}

Credential CredentialStore::lookup(std::string_view registry, std::string_view repoPath,
                                   std::vector<std::string>* tried) const {
  if (options_.pullCredential) {
    if (tried) tried->push_back(options_.pullCredential->source);
    return *options_.pullCredential;
  }
  if (options_.creds) {
    Credential c;
    auto colon = options_.creds->find(':');
    c.username = options_.creds->substr(0, colon);
    if (colon != std::string::npos) c.password = options_.creds->substr(colon + 1);
    if (c.username.empty())
      throw Error(ErrorKind::Invalid, "--creds must be USER[:PASSWORD] with a non-empty user");
    c.source = "--creds";
    if (tried) tried->push_back("--creds (user " + c.username + ")");
    return c;
  }
  // A provider that failed, or had nothing yet, may answer later: what the files give then is
  // only kept until the provider is due to be asked again.
  auto reconsiderAt = std::chrono::steady_clock::time_point::max();
  if (options_.providers) {
    CredentialProviders::Lookup p = options_.providers->lookup(registry, repoPath, tried);
    if (p.credential) return *p.credential;
    reconsiderAt = p.reconsiderAt;
  }
  auto settle = [&](Credential c) {
    c.expires = std::min(c.expires, reconsiderAt);
    return c;
  };
  std::vector<std::string> files;
  if (!options_.authFile.empty()) {
    files.push_back(options_.authFile);
    if (!fs::exists(options_.authFile)) {
      throw Error(ErrorKind::Invalid, "--authfile " + options_.authFile + " does not exist");
    }
  } else {
    files = defaultFiles();
  }
  for (const auto& f : files) {
    auto cfg = readJsonFile(f);
    if (!cfg) {
      if (tried) tried->push_back(f + " (not present)");
      continue;
    }
    if (!cfg->is_object())
      throw Error(ErrorKind::Invalid, "auth file " + f + " must hold a JSON object");
    Credential c = fromConfig(*cfg, f, registry, repoPath, tried);
    if (!c.empty()) return settle(std::move(c));
  }
  if (tried) tried->push_back("anonymous");
  return settle({});
}

std::optional<Credential> runCredentialHelper(const std::string& helper,
                                              const std::string& serverUrl) {
  for (char c : helper) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      throw Error(ErrorKind::Invalid,
                  "credential helper name '" + helper + "' has invalid characters");
    }
  }
  std::string program = "docker-credential-" + helper;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw Error(ErrorKind::Io, "cannot create pipes for " + program);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  char* argv[] = {program.data(), const_cast<char*>("get"), nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, program.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    throw Error(ErrorKind::Io,
                "cannot run credential helper " + program + ": " + std::strerror(rc));
  }
  std::string input = serverUrl + "\n";
  {
    // A helper may exit without reading its input. That shows up as a failed lookup below; it
    // must not be a SIGPIPE that kills the whole process (the CLI does not ignore SIGPIPE).
    sigset_t pipeSet, old;
    sigemptyset(&pipeSet);
    sigaddset(&pipeSet, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeSet, &old);
    if (write(in[1], input.data(), input.size()) < 0 && errno == EPIPE) {
      struct timespec zero {};
      sigtimedwait(&pipeSet, nullptr, &zero);  // consume the SIGPIPE this thread just raised
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  close(in[1]);
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0 && output.size() < (1 << 20))
    output.append(buf, n);
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (output.find("credentials not found") != std::string::npos) return std::nullopt;
    // The helper's message goes into the error; helpers print errors, not secrets, on failure.
    std::string msg = output.substr(0, 200);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    throw Error(ErrorKind::Unauthorized,
                "credential helper " + program + " get " + serverUrl + " failed: " + msg);
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(output);
  } catch (const std::exception&) {
    throw Error(ErrorKind::Invalid, "credential helper " + program + " printed invalid JSON");
  }
  if (!j.is_object())
    throw Error(ErrorKind::Invalid, "credential helper " + program + " printed invalid JSON");
  Credential c;
  c.username = str(j, "Username");
  std::string secret = str(j, "Secret");
  if (c.username == "<token>") {
    c.username.clear();
    c.identityToken = secret;
  } else {
    c.password = secret;
  }
  if (c.empty()) return std::nullopt;
  return c;
}

}  // namespace snapimport::registry
