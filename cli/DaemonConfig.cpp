#include "DaemonConfig.h"

#include <sys/un.h>
#include <toml++/toml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>
#include <vector>

namespace snapimport::cli {
namespace {

using Duration = DaemonConfig::Duration;

// A reason a value is not acceptable, or empty when it is.
using Check = std::function<std::string(const DaemonConfig&)>;

// One documented key. Everything that knows about keys (parsing, validation, the default file)
// walks this table, so a key cannot be parsed without being documented or the other way round.
struct KeySpec {
  std::string section;  // "" for top level
  std::string name;
  std::string doc;
  // Converts the TOML node into the field; returns a type error reason or "".
  std::function<std::string(DaemonConfig&, const toml::node&)> read;
  std::function<std::string(const DaemonConfig&)> show;  // the default as a TOML literal
  Check check;

  std::string dotted() const { return section.empty() ? name : section + "." + name; }
};

struct SectionSpec {
  std::string name;
  std::string doc;
};

std::string typeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date or time";
  }
}

std::string tomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

template <typename Get>
KeySpec stringKey(std::string section, std::string name, std::string doc, Get get,
                  std::function<std::string(const std::string&)> check) {
  KeySpec k{std::move(section), std::move(name), std::move(doc), {}, {}, {}};
  k.read = [get](DaemonConfig& c, const toml::node& n) -> std::string {
    if (!n.is_string()) return "must be a string, not " + typeName(n);
    get(c) = **n.as_string();
    return "";
  };
  k.show = [get](const DaemonConfig& c) { return tomlString(get(c)); };
  k.check = [get, check](const DaemonConfig& c) { return check(get(c)); };
  return k;
}

template <typename Get>
KeySpec boolKey(std::string section, std::string name, std::string doc, Get get) {
  KeySpec k{std::move(section), std::move(name), std::move(doc), {}, {}, {}};
  k.read = [get](DaemonConfig& c, const toml::node& n) -> std::string {
    if (!n.is_boolean()) return "must be a boolean (true or false), not " + typeName(n);
    get(c) = **n.as_boolean();
    return "";
  };
  k.show = [get](const DaemonConfig& c) { return get(c) ? "true" : "false"; };
  k.check = [](const DaemonConfig&) { return std::string(); };
  return k;
}

template <typename Get>
KeySpec intKey(std::string section, std::string name, std::string doc, Get get, int64_t min,
               int64_t max) {
  KeySpec k{std::move(section), std::move(name), std::move(doc), {}, {}, {}};
  k.read = [get](DaemonConfig& c, const toml::node& n) -> std::string {
    if (!n.is_integer()) return "must be an integer, not " + typeName(n);
    get(c) = **n.as_integer();
    return "";
  };
  k.show = [get](const DaemonConfig& c) { return std::to_string(get(c)); };
  k.check = [get, min, max](const DaemonConfig& c) -> std::string {
    int64_t v = get(c);
    if (v < min || v > max) {
      return "is " + std::to_string(v) + ", must be between " + std::to_string(min) + " and " +
             std::to_string(max);
    }
    return "";
  };
  return k;
}

template <typename Get>
KeySpec durationKey(std::string section, std::string name, std::string doc, Get get,
                    bool zeroAllowed) {
  KeySpec k{std::move(section), std::move(name), std::move(doc), {}, {}, {}};
  k.read = [get](DaemonConfig& c, const toml::node& n) -> std::string {
    if (!n.is_string())
      return "must be a duration string such as \"30s\", \"5m\" or \"1h\", not " + typeName(n);
    if (!parseDuration(**n.as_string(), get(c))) {
      return "has invalid duration " + tomlString(**n.as_string()) +
             ": use a number and a unit (ms, s, m, h), such as \"30s\"";
    }
    return "";
  };
  k.show = [get](const DaemonConfig& c) { return tomlString(formatDuration(get(c))); };
  k.check = [get, zeroAllowed](const DaemonConfig& c) -> std::string {
    if (!zeroAllowed && get(c).count() == 0) return "must be longer than 0";
    return "";
  };
  return k;
}

// Replaces a key's value check (for rules beyond the type's own).
KeySpec withCheck(KeySpec k, std::function<std::string(const DaemonConfig&)> check) {
  k.check = std::move(check);
  return k;
}

// `zeroAllowed`: 0 is a setting of its own (documented in `doc`), not a mistake.
template <typename Get>
KeySpec sizeKey(std::string section, std::string name, std::string doc, Get get,
                bool zeroAllowed = false) {
  KeySpec k{std::move(section), std::move(name), std::move(doc), {}, {}, {}};
  k.read = [get](DaemonConfig& c, const toml::node& n) -> std::string {
    if (n.is_integer()) {
      if (**n.as_integer() < 0) return "must not be negative";
      get(c) = static_cast<uint64_t>(**n.as_integer());
      return "";
    }
    if (!n.is_string())
      return "must be a size such as \"4MiB\" or a number of bytes, not " + typeName(n);
    if (!parseSize(**n.as_string(), get(c))) {
      return "has invalid size " + tomlString(**n.as_string()) +
             ": use bytes or a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB), such as \"4MiB\"";
    }
    return "";
  };
  k.show = [get](const DaemonConfig& c) { return tomlString(formatSize(get(c))); };
  k.check = [get, zeroAllowed](const DaemonConfig& c) -> std::string {
    return get(c) == 0 && !zeroAllowed ? "must be larger than 0" : "";
  };
  return k;
}

std::string absolutePath(const std::string& v) {
  if (v.empty()) return "must not be empty";
  if (v[0] != '/') return "must be an absolute path, got " + tomlString(v);
  return "";
}

std::string socketPath(const std::string& v) {
  std::string e = absolutePath(v);
  if (!e.empty()) return e;
  if (v.size() >= sizeof(sockaddr_un::sun_path)) {
    return "is " + std::to_string(v.size()) +
           " bytes long; a unix socket path must be shorter than " +
           std::to_string(sizeof(sockaddr_un::sun_path)) + " bytes";
  }
  return "";
}

std::string oneOf(const std::string& v, std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return "";
    list += list.empty() ? "" : ", ";
    list += a;
  }
  return "has invalid value " + tomlString(v) + ": must be one of " + list;
}

std::string hostPort(const std::string& v) {
  if (v.empty()) return "";
  size_t colon = v.rfind(':');
  if (colon == std::string::npos)
    return "has invalid address " + tomlString(v) +
           ": use \"host:port\", such as \"127.0.0.1:9651\"";
  std::string host = v.substr(0, colon), port = v.substr(colon + 1);
  bool digits = !port.empty() && port.size() <= 5 &&
                port.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
    return "has invalid port in " + tomlString(v) + ": must be 1 to 65535";
  }
  if (host.find(':') != std::string::npos && !(host.front() == '[' && host.back() == ']')) {
    return "has invalid address " + tomlString(v) +
           ": put IPv6 hosts in brackets, such as \"[::1]:9651\"";
  }
  return "";
}

std::string pathList(const std::string& v) {
  if (v.empty()) return "";
  std::stringstream ss(v);
  std::string part;
  while (std::getline(ss, part, ':')) {
    if (part.empty() || part[0] != '/')
      return "must list absolute directories separated by ':', got " + tomlString(v);
  }
  return "";
}

const std::vector<SectionSpec>& sections() {
  static const std::vector<SectionSpec> s = {
      {"log", "Logging, on stderr (journald keeps it under systemd)."},
      {"metrics", "Prometheus metrics and health checks over HTTP."},
      {"registry", "How the importer reaches registries."},
      {"cri",
       "The CRI image-service proxy. kubelet passes a private image's credentials to containerd\n"
       "inside CRI PullImage, and containerd never hands them to a snapshotter. With the proxy\n"
       "on, kubelet talks to snapimport (imageServiceEndpoint), which keeps the credentials of\n"
       "each pull in memory for that pull's layers alone and forwards every call to containerd\n"
       "unchanged."},
      {"import",
       "The importer: when containerd prepares a layer snapshot of an image pulled with CRI "
       "snapshot\n"
       "annotations, snapimport fetches and unpacks the image's layers itself, in parallel."},
      {"timeouts", "Durations are a number and a unit: ms, s, m or h."},
      {"limits",
       "Caps on what registries and layers may make the daemon hold or write. A layer that\n"
       "exceeds one fails its import (containerd then pulls it the ordinary way). Sizes are bytes\n"
       "or a number with a unit: KiB, MiB, GiB, TiB (or KB, MB, GB, TB for powers of 1000)."},
  };
  return s;
}

const std::vector<KeySpec>& keys() {
  static const std::vector<KeySpec> k = {
      stringKey(
          "", "root",
          "State directory: snapshot records (meta.db), snapshot directories and content blobs.\n"
          "Created 0700. Keep it on the filesystem that holds containerd's root.",
          [](auto& c) -> auto& { return c.root; }, absolutePath),
      stringKey(
          "", "address",
          "Unix socket containerd connects to (proxy_plugins address). Created 0660.",
          [](auto& c) -> auto& { return c.address; }, socketPath),
      stringKey(
          "", "admin_address",
          "Unix socket for `snapimport status` and local scrapes (/status, /metrics, /healthz).\n"
          "Created 0600. Empty: next to address, named <address without .sock>-admin.sock.",
          [](auto& c) -> auto& { return c.adminAddress; },
          [](const std::string& v) { return v.empty() ? std::string() : socketPath(v); }),

      stringKey(
          "log", "level", "debug, info, warn or error.",
          [](auto& c) -> auto& { return c.log.level; },
          [](const std::string& v) {
            return oneOf(v, {"debug", "info", "warn", "error"});
          }),
      stringKey(
          "log", "format", "logfmt (key=value) or json (one object per line).",
          [](auto& c) -> auto& { return c.log.format; },
          [](const std::string& v) {
            return oneOf(v, {"logfmt", "json"});
          }),

      stringKey(
          "metrics", "address",
          "\"host:port\" to serve /metrics (Prometheus text format) and /healthz on, such as\n"
          "\"127.0.0.1:9651\" or \":9651\" (all interfaces). Empty: no TCP listener; the admin\n"
          "socket still serves both.",
          [](auto& c) -> auto& { return c.metrics.address; }, hostPort),

      stringKey(
          "registry", "hosts_dir",
          "Registry host configuration directories (containerd's hosts.toml layout, certs.d),\n"
          "separated by ':' and tried in order. Use the same value as containerd's config_path.",
          [](auto& c) -> auto& { return c.registry.hostsDir; }, pathList),
      stringKey(
          "registry", "auth_file",
          "Docker config.json with registry credentials (auths and credHelpers). Empty: pull\n"
          "anonymously; layers that need credentials snapimport lacks fall back to containerd.",
          [](auto& c) -> auto& { return c.registry.authFile; },
          [](const std::string& v) { return v.empty() ? std::string() : absolutePath(v); }),
      stringKey(
          "registry", "credential_provider_config",
          "kubelet's CredentialProviderConfig (YAML or JSON; a file, or a directory of *.yaml,\n"
          "*.yml and *.json files): what kubelet gets as --image-credential-provider-config.\n"
          "Its exec plugins then supply credentials for pulls that bring none, before\n"
          "auth_file. The credentials stay in memory: never logged, never written to disk,\n"
          "sent only to the registry they are for. Empty: off. Needs credential_provider_bin_dir.",
          [](auto& c) -> auto& { return c.registry.credentialProviderConfig; },
          [](const std::string& v) { return v.empty() ? std::string() : absolutePath(v); }),
      stringKey(
          "registry", "credential_provider_bin_dir",
          "Directory of the credential provider plugins, as kubelet's\n"
          "--image-credential-provider-bin-dir. Empty: off.",
          [](auto& c) -> auto& { return c.registry.credentialProviderBinDir; },
          [](const std::string& v) { return v.empty() ? std::string() : absolutePath(v); }),
      durationKey(
          "registry", "credential_provider_timeout",
          "One run of a credential provider plugin; past it the plugin (and what it started) is\n"
          "killed, and the pull goes on without its credentials.",
          [](auto& c) -> auto& { return c.registry.credentialProviderTimeout; }, false),

      stringKey(
          "cri", "image_service_address",
          "Unix socket to serve runtime.v1.ImageService on; point kubelet's\n"
          "imageServiceEndpoint (--image-service-endpoint) at unix://<this path>. Created 0660.\n"
          "Empty: off.",
          [](auto& c) -> auto& { return c.cri.imageServiceAddress; },
          [](const std::string& v) { return v.empty() ? std::string() : socketPath(v); }),
      stringKey(
          "cri", "containerd_address",
          "containerd's CRI socket (its [grpc] address), where the proxy forwards every call.\n"
          "A path, or unix://<path>.",
          [](auto& c) -> auto& { return c.cri.containerdAddress; },
          [](const std::string& v) {
            return socketPath(v.rfind("unix://", 0) == 0 ? v.substr(7) : v);
          }),
      durationKey(
          "cri", "credential_grace_period",
          "How long the credential a PullImage brought stays usable after the call returns\n"
          "(containerd may still prepare the last layers of a pull kubelet gave up on). It is\n"
          "held in memory only, for that image reference alone.",
          [](auto& c) -> auto& { return c.cri.credentialGracePeriod; }, true),

      boolKey(
          "import", "enabled",
          "false: snapimport is a plain overlay snapshotter and content store; containerd\n"
          "fetches and applies every layer itself.",
          [](auto& c) -> auto& { return c.import.enabled; }),
      withCheck(
          boolKey(
              "import", "keep_compressed_blobs",
              "Also keep each imported layer's compressed blob in the content store. Only false\n"
              "is supported: containerd's GC deletes every blob its metadata does not reference,\n"
              "and containerd never learns of blobs the importer fetched.",
              [](auto& c) -> auto& { return c.import.keepCompressedBlobs; }),
          [](const DaemonConfig& c) -> std::string {
            return c.import.keepCompressedBlobs
                       ? "= true is not supported: containerd's garbage collector deletes blobs "
                         "its metadata does not reference, so a kept blob would not survive"
                       : "";
          }),
      intKey(
          "import", "max_concurrent_layers",
          "Layers imported at once on this node, across all images.",
          [](auto& c) -> auto& { return c.import.maxConcurrentLayers; }, 1, 1024),
      intKey(
          "import", "max_concurrent_per_registry",
          "Layers fetched at once from any one registry host.",
          [](auto& c) -> auto& { return c.import.maxConcurrentPerRegistry; }, 1, 1024),
      intKey(
          "import", "max_concurrent_write_imports",
          "Layer blobs unpacked at once while containerd writes them into snapimport's content\n"
          "store (pulls the importer does not serve: ctr, nerdctl, CRI without snapshot\n"
          "annotations or credentials). 0: containerd applies those layers itself.",
          [](auto& c) -> auto& { return c.import.maxConcurrentWriteImports; }, 0, 1024),
      boolKey(
          "import", "diff_service",
          "true when containerd applies layers through snapimport's diff service (the\n"
          "snapimport-diff proxy plugin, containerd 1.7.4+ and 2.x): the layers containerd would\n"
          "apply itself are then also unpacked while it writes them, so their Apply finds them\n"
          "ready. false: that starts with the first Apply after each start. For 2.x; leave it\n"
          "false on 1.6 and on 1.7, whose ctr pull fetches everything before it applies.",
          [](auto& c) -> auto& { return c.import.diffService; }),
      durationKey(
          "import", "staging_grace_period",
          "How long a staged layer nobody claims (a cancelled pull) is kept before Cleanup\n"
          "removes it.",
          [](auto& c) -> auto& { return c.import.stagingGracePeriod; }, false),
      durationKey(
          "import", "writeback_interval",
          "While layers import, the staging filesystem is synced this often, so the kernel writes\n"
          "their files back during the import rather than all at the end. Each layer is still\n"
          "synced before it is committed. \"0s\": only that final sync.",
          [](auto& c) -> auto& { return c.import.writebackInterval; }, true),
      sizeKey(
          "import", "direct_write_min_size",
          "Files of a layer at least this large are written with O_DIRECT where the filesystem\n"
          "allows it: no copy into the page cache and no write-back after the unpack, and a pull\n"
          "does not push the running workloads' pages out of the cache. Their first read after\n"
          "the pull comes from the disk. \"0\": every file through the page cache.",
          [](auto& c) -> auto& { return c.import.directWriteMinSize; }, true),
      intKey(
          "import", "background_layer_nice",
          "While several layers unpack, the one with the longest estimated time left runs at the\n"
          "daemon's own priority and the others' threads this many nice levels lower (at most\n"
          "19), so that the costliest layer does not end last, alone, on one core. Only in a\n"
          "cgroup with the cpu controller of the daemon's own (systemd: CPUAccounting=yes), where\n"
          "nice divides the service's share and takes nothing from other processes; and it\n"
          "needs CAP_SYS_NICE (root has it). Otherwise it is off and says so at start. 0: all\n"
          "layers alike.",
          [](auto& c) -> auto& { return c.import.backgroundLayerNice; }, 0, 19),

      durationKey(
          "timeouts", "connect", "Connecting to a registry (TCP and TLS).",
          [](auto& c) -> auto& { return c.timeouts.connect; }, false),
      durationKey(
          "timeouts", "stall",
          "A fetch that receives no bytes for this long is aborted and retried.",
          [](auto& c) -> auto& { return c.timeouts.stall; }, false),
      durationKey(
          "timeouts", "layer",
          "Whole import of one layer; past it the layer falls back to containerd. \"0s\": no "
          "limit.",
          [](auto& c) -> auto& { return c.timeouts.layer; }, true),
      durationKey(
          "timeouts", "shutdown", "On SIGTERM, how long in-flight requests may finish.",
          [](auto& c) -> auto& { return c.timeouts.shutdown; }, false),

      withCheck(sizeKey(
                    "limits", "max_manifest_bytes",
                    "Largest manifest or index accepted (at most 4MiB, the protocol's cap).",
                    [](auto& c) -> auto& { return c.limits.maxManifestBytes; }),
                [](const DaemonConfig& c) -> std::string {
                  if (c.limits.maxManifestBytes == 0) return "must be larger than 0";
                  return c.limits.maxManifestBytes > (4ull << 20)
                             ? "must be at most 4MiB (registries refuse larger manifests)"
                             : "";
                }),
      sizeKey(
          "limits", "max_config_bytes", "Largest image config accepted.",
          [](auto& c) -> auto& { return c.limits.maxConfigBytes; }),
      sizeKey(
          "limits", "max_layer_bytes", "Most uncompressed bytes one layer may unpack to.",
          [](auto& c) -> auto& { return c.limits.maxLayerBytes; }),
      intKey(
          "limits", "max_layer_entries",
          "Most tar entries (files, directories, links) in one layer.",
          [](auto& c) -> auto& { return c.limits.maxLayerEntries; }, 1,
          std::numeric_limits<int64_t>::max()),
      intKey(
          "limits", "max_path_bytes", "Longest path of an entry inside a layer.",
          [](auto& c) -> auto& { return c.limits.maxPathBytes; }, 1, 1 << 20),
      sizeKey(
          "limits", "max_pax_header_bytes", "Largest tar extended (PAX) header of one entry.",
          [](auto& c) -> auto& { return c.limits.maxPaxHeaderBytes; }),
  };
  return k;
}

const KeySpec* findKey(const std::string& section, const std::string& name) {
  for (const auto& k : keys()) {
    if (k.section == section && k.name == name) return &k;
  }
  return nullptr;
}

bool isSection(const std::string& name) {
  for (const auto& s : sections()) {
    if (s.name == name) return true;
  }
  return false;
}

std::string where(const std::string& file, const toml::node& n) {
  if (n.source().begin.line == 0) return file;
  return file + ":" + std::to_string(n.source().begin.line);
}

std::string keysIn(const std::string& section) {
  std::string out;
  for (const auto& k : keys()) {
    if (k.section != section) continue;
    out += out.empty() ? "" : ", ";
    out += k.name;
  }
  if (section.empty()) {
    for (const auto& s : sections()) out += ", [" + s.name + "]";
  }
  return out;
}

void readEntry(DaemonConfig& c, const std::string& section, const std::string& name,
               const toml::node& n, const std::string& file) {
  const KeySpec* k = findKey(section, name);
  std::string dotted = section.empty() ? name : section + "." + name;
  if (!k) {
    std::string scope = section.empty() ? "at top level" : "in [" + section + "]";
    throw ConfigError(where(file, n) + ": unknown key \"" + dotted + "\" (known " + scope + ": " +
                      keysIn(section) + ")");
  }
  std::string reason = k->read(c, n);
  if (reason.empty()) reason = k->check(c);
  if (!reason.empty()) throw ConfigError(where(file, n) + ": key \"" + dotted + "\" " + reason);
}

// Rules that span keys; checked once every key is read (and again after flags).
std::string crossKeyProblem(const DaemonConfig& c) {
  if (c.registry.credentialProviderConfig.empty() != c.registry.credentialProviderBinDir.empty()) {
    return "keys \"registry.credential_provider_config\" and "
           "\"registry.credential_provider_bin_dir\" must be set together (kubelet needs both "
           "flags too)";
  }
  if (!c.cri.imageServiceAddress.empty()) {
    std::string upstream = c.cri.containerdAddress;
    if (upstream.rfind("unix://", 0) == 0) upstream = upstream.substr(7);
    if (c.cri.imageServiceAddress == upstream) {
      return "key \"cri.image_service_address\" is containerd's own socket "
             "(cri.containerd_address): the proxy would forward to itself";
    }
    if (c.cri.imageServiceAddress == c.address || c.cri.imageServiceAddress == c.adminSocket()) {
      return "key \"cri.image_service_address\" is the same socket as \"address\" or "
             "\"admin_address\"";
    }
  }
  return "";
}

void appendComment(std::string& out, const std::string& doc) {
  std::stringstream ss(doc);
  std::string line;
  while (std::getline(ss, line)) out += "# " + line + "\n";
}

}  // namespace

std::string DaemonConfig::adminSocket() const {
  if (!adminAddress.empty()) return adminAddress;
  std::string base = address;
  if (base.size() > 5 && base.compare(base.size() - 5, 5, ".sock") == 0)
    base.resize(base.size() - 5);
  return base + "-admin.sock";
}

DaemonConfig DaemonConfig::parse(const std::string& text, const std::string& sourceName) {
  toml::table t;
  try {
    t = toml::parse(text, sourceName);
  } catch (const toml::parse_error& e) {
    throw ConfigError(sourceName + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()));
  }
  DaemonConfig c;
  for (const auto& [key, node] : t) {
    std::string name(key.str());
    if (isSection(name)) {
      if (!node.is_table()) {
        throw ConfigError(where(sourceName, node) + ": key \"" + name + "\" must be a table ([" +
                          name + "]), not " + typeName(node));
      }
      for (const auto& [subKey, subNode] : *node.as_table()) {
        readEntry(c, name, std::string(subKey.str()), subNode, sourceName);
      }
    } else {
      readEntry(c, "", name, node, sourceName);
    }
  }
  if (std::string why = crossKeyProblem(c); !why.empty())
    throw ConfigError(sourceName + ": " + why);
  return c;
}

void DaemonConfig::validate() const {
  for (const auto& k : keys()) {
    std::string reason = k.check(*this);
    if (!reason.empty()) throw ConfigError("key \"" + k.dotted() + "\" " + reason);
  }
  if (std::string why = crossKeyProblem(*this); !why.empty()) throw ConfigError(why);
}

DaemonConfig DaemonConfig::load(const std::string& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) throw ConfigError("cannot open config file " + file + ": " + std::strerror(errno));
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  int readErrno = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (readErrno != 0)
    throw ConfigError("cannot read config file " + file + ": " + std::strerror(readErrno));
  return parse(text, file);
}

std::string DaemonConfig::defaultFile() {
  std::string out =
      "# snapimport daemon configuration (TOML), read by `snapimport serve --config FILE`.\n"
      "# Every key is optional; the values below are the defaults. Unknown keys and bad values\n"
      "# stop start-up with an error naming the file, line and key. Command-line flags override\n"
      "# this file. Print this file with `snapimport config default`; check one with\n"
      "# `snapimport config check FILE`.\n";
  DaemonConfig defaults;
  std::string current = "-";
  for (const auto& k : keys()) {
    if (k.section != current) {
      current = k.section;
      if (!current.empty()) {
        out += "\n";
        for (const auto& s : sections()) {
          if (s.name == current) appendComment(out, s.doc);
        }
        out += "[" + current + "]\n";
      }
    }
    out += "\n";
    appendComment(out, k.doc);
    out += k.name + " = " + k.show(defaults) + "\n";
  }
  return out;
}

bool parseDuration(const std::string& text, DaemonConfig::Duration& out) {
  struct Unit {
    const char* name;
    int64_t ms;
  };
  static const Unit units[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 9) return false;
  std::string unit = text.substr(digits);
  for (const auto& u : units) {
    if (unit == u.name) {
      out = DaemonConfig::Duration(std::stoll(text.substr(0, digits)) * u.ms);
      return true;
    }
  }
  return false;
}

std::string formatDuration(DaemonConfig::Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

bool parseSize(const std::string& text, uint64_t& out) {
  struct Unit {
    const char* name;
    uint64_t factor;
  };
  static const Unit units[] = {{"", 1},
                               {"B", 1},
                               {"KiB", 1ull << 10},
                               {"MiB", 1ull << 20},
                               {"GiB", 1ull << 30},
                               {"TiB", 1ull << 40},
                               {"KB", 1000},
                               {"MB", 1000'000},
                               {"GB", 1000'000'000},
                               {"TB", 1000'000'000'000}};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 15) return false;
  std::string unit = text.substr(digits);
  for (const auto& u : units) {
    if (unit != u.name) continue;
    uint64_t n = std::stoull(text.substr(0, digits));
    if (n > std::numeric_limits<uint64_t>::max() / u.factor) return false;
    out = n * u.factor;
    return true;
  }
  return false;
}

std::string formatSize(uint64_t bytes) {
  static const char* const names[] = {"TiB", "GiB", "MiB", "KiB"};
  for (int i = 0; i < 4; ++i) {
    uint64_t f = 1ull << (10 * (4 - i));
    if (bytes != 0 && bytes % f == 0) return std::to_string(bytes / f) + names[i];
  }
  return std::to_string(bytes);
}

}  // namespace snapimport::cli
