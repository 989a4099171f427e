#include "registry/Hosts.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>

#include "common/Log.h"
#include "registry/Error.h"

namespace fs = std::filesystem;

namespace snapimport::registry {
namespace {

std::string hostOnly(std::string_view hostPort) {
  if (!hostPort.empty() && hostPort.front() == '[') {
    auto close = hostPort.find(']');
    return std::string(
        hostPort.substr(1, close == std::string_view::npos ? hostPort.npos : close - 1));
  }
  return std::string(hostPort.substr(0, hostPort.find(':')));
}

[[noreturn]] void bad(const fs::path& file, const std::string& why) {
  throw Error(ErrorKind::Invalid, "hosts config " + file.string() + ": " + why);
}

std::vector<std::string> stringOrList(const toml::node* node, const fs::path& file,
                                      const char* key) {
  std::vector<std::string> out;
  if (!node) return out;
  if (auto s = node->value<std::string>()) {
    out.push_back(*s);
  } else if (auto arr = node->as_array()) {
    for (const auto& el : *arr) {
      auto s2 = el.value<std::string>();
      if (!s2) bad(file, std::string("'") + key + "' must hold strings");
      out.push_back(*s2);
    }
  } else {
    bad(file, std::string("'") + key + "' must be a string or a list of strings");
  }
  return out;
}

std::string relativeTo(const fs::path& dir, const std::string& p) {
  return fs::path(p).is_absolute() ? p : (dir / p).string();
}

// Applies the per-host keys (at top level they apply to `server`).
void applyHostKeys(RegistryHost& h, const toml::table& t, const fs::path& file) {
  const fs::path dir = file.parent_path();
  if (auto caps = t.get("capabilities")) {
    auto arr = caps->as_array();
    if (!arr) bad(file, "'capabilities' must be a list");
    h.capabilities = 0;
    for (const auto& el : *arr) {
      auto s = el.value<std::string>();
      if (s == "pull") {
        h.capabilities |= kPull;
      } else if (s == "resolve") {
        h.capabilities |= kResolve;
      } else if (s == "push") {
        h.capabilities |= kPush;
      } else {
        bad(file, "unknown capability '" + s.value_or("?") + "' (pull, resolve, push)");
      }
    }
  }
  for (const auto& ca : stringOrList(t.get("ca"), file, "ca"))
    h.tls.caFiles.push_back(relativeTo(dir, ca));
  if (auto client = t.get("client")) {
    if (auto s = client->value<std::string>()) {
      h.tls.clientCert = relativeTo(dir, *s);
    } else if (auto arr = client->as_array()) {
      // Only the first pair is used: libcurl presents one client certificate per connection.
      for (const auto& el : *arr) {
        if (auto s2 = el.value<std::string>()) {
          h.tls.clientCert = relativeTo(dir, *s2);
        } else if (auto pair = el.as_array(); pair && pair->size() == 2) {
          h.tls.clientCert = relativeTo(dir, pair->get(0)->value<std::string>().value_or(""));
          h.tls.clientKey = relativeTo(dir, pair->get(1)->value<std::string>().value_or(""));
        } else {
          bad(file, "'client' entries must be a PEM path or a [cert, key] pair");
        }
        break;
      }
    } else {
      bad(file, "'client' must be a string or a list");
    }
  }
  if (auto sv = t.get("skip_verify")) {
    auto b = sv->value<bool>();
    if (!b) bad(file, "'skip_verify' must be a boolean");
    h.tls.verify = !*b;
  }
  if (auto hdr = t.get("header")) {
    auto ht = hdr->as_table();
    if (!ht) bad(file, "'header' must be a table");
    for (const auto& [k, v] : *ht) {
      for (const auto& value : stringOrList(&v, file, "header"))
        h.headers.add(std::string(k.str()), value);
    }
  }
}

RegistryHost parseHostUrl(std::string_view url, bool overridePath, const fs::path& file) {
  RegistryHost h;
  std::string u(url);
  if (u.find("://") == std::string::npos) u = "https://" + u;
  auto schemeEnd = u.find("://");
  h.scheme = u.substr(0, schemeEnd);
  if (h.scheme != "http" && h.scheme != "https")
    bad(file, "host '" + u + "' must use http or https");
  auto rest = u.substr(schemeEnd + 3);
  auto slash = rest.find('/');
  h.host = rest.substr(0, slash);
  if (h.host.empty()) bad(file, "host '" + u + "' has no host name");
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (!overridePath && !path.ends_with("/v2")) path += "/v2";
  h.path = path;
  return h;
}

bool overridePathOf(const toml::table& t, const fs::path& file) {
  if (auto op = t.get("override_path")) {
    auto b = op->value<bool>();
    if (!b) bad(file, "'override_path' must be a boolean");
    return *b;
  }
  return false;
}

// The docker certs.d pattern: *.crt are CAs, *.cert + *.key are client pairs.
void applyCertDir(RegistryHost& h, const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    if (p.extension() == ".crt") {
      h.tls.caFiles.push_back(p.string());
    } else if (p.extension() == ".cert" && h.tls.clientCert.empty()) {
      auto key = p;
      key.replace_extension(".key");
      if (fs::exists(key)) {
        h.tls.clientCert = p.string();
        h.tls.clientKey = key.string();
      }
    }
  }
}

}  // namespace

bool isLoopbackHost(std::string_view hostPort) {
  std::string h = hostOnly(hostPort);
  return h == "localhost" || h == "::1" || h.starts_with("127.");
}

RegistryHost defaultHost(std::string_view registry) {
  RegistryHost h;
  if (registry == "docker.io") {
    h.host = "registry-1.docker.io";
  } else {
    h.host = std::string(registry);
  }
  if (isLoopbackHost(registry)) {
    h.tls.verify = false;
    h.httpFallback = true;
  }
  return h;
}

std::string hostsDirectoryFor(const std::string& root, std::string_view registry) {
  std::vector<std::string> candidates;
  std::string r(registry);
  if (auto colon = r.rfind(':'); colon != std::string::npos && r.find(']') == std::string::npos) {
    candidates.push_back(r.substr(0, colon) + "_" + r.substr(colon + 1) + "_");
  } else if (r.find("]:") != std::string::npos) {
    auto colon = r.rfind(':');
    candidates.push_back(r.substr(0, colon) + "_" + r.substr(colon + 1) + "_");
  }
  candidates.push_back(r);
  candidates.push_back("_default");
  for (const auto& c : candidates) {
    fs::path p = fs::path(root) / c;
    std::error_code ec;
    if (fs::is_directory(p, ec)) return p.string();
  }
  return {};
}

std::vector<RegistryHost> resolveHosts(std::string_view registry, const HostsOptions& options) {
  std::vector<RegistryHost> hosts;
  std::string dir;
  size_t start = 0;
  const std::string& roots = options.hostsDir;
  while (!roots.empty() && start <= roots.size() && dir.empty()) {
    size_t colon = roots.find(':', start);
    std::string root =
        roots.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!root.empty()) dir = hostsDirectoryFor(root, registry);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }

  RegistryHost server = defaultHost(registry);
  if (!dir.empty()) {
    fs::path file = fs::path(dir) / "hosts.toml";
    std::error_code ec;
    bool parsed = false;
    if (fs::exists(file, ec) && fs::file_size(file, ec) > 0) {
      toml::table doc;
      try {
        doc = toml::parse_file(file.string());
        parsed = true;
      } catch (const toml::parse_error& e) {
        // containerd falls back to the certificate pattern when hosts.toml doesn't parse.
        log::warn("hosts.toml does not parse; using the certificate files in its directory",
                  {{"file", file.string()}, {"error", std::string(e.description())}});
      }
      if (parsed) {
        if (auto s = doc["server"].value<std::string>()) {
          server = parseHostUrl(*s, overridePathOf(doc, file), file);
        }
        applyHostKeys(server, doc, file);
        // [host."..."] tables in file order (toml++ keeps tables sorted, so order by source line).
        std::vector<std::pair<uint32_t, RegistryHost>> entries;
        if (auto ht = doc["host"].as_table()) {
          for (const auto& [url, node] : *ht) {
            auto t = node.as_table();
            if (!t) bad(file, "host \"" + std::string(url.str()) + "\" must be a table");
            RegistryHost h = parseHostUrl(url.str(), overridePathOf(*t, file), file);
            applyHostKeys(h, *t, file);
            entries.emplace_back(node.source().begin.line, std::move(h));
          }
        }
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& [line, h] : entries) hosts.push_back(std::move(h));
      }
    }
    if (!parsed) applyCertDir(server, dir);
  }
  // The server comes last, unless a [host] entry already is the server.
  bool serverListed = std::any_of(hosts.begin(), hosts.end(), [&](const RegistryHost& h) {
    return h.scheme == server.scheme && h.host == server.host && h.path == server.path;
  });
  if (!serverListed) hosts.push_back(server);

  for (auto& h : hosts) {
    bool origin =
        h.host == registry || (registry == "docker.io" && h.host == "registry-1.docker.io");
    h.isMirror = !origin;
    if (options.tlsVerify == false) {
      h.tls.verify = false;
      if (h.scheme == "https") h.httpFallback = true;
    } else if (options.tlsVerify == true) {
      // Forced: no plaintext and no unverified handshake, whatever the defaults or hosts.toml say.
      h.scheme = "https";
      h.tls.verify = true;
      h.httpFallback = false;
    }
  }
  return hosts;
}

}  // namespace snapimport::registry
