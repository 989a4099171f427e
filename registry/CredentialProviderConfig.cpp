#include "registry/CredentialProviderConfig.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "registry/CredentialProviderMatch.h"
#include "registry/Error.h"

namespace fs = std::filesystem;

namespace snapimport::registry {
namespace {

using nlohmann::json;

constexpr size_t kMaxConfigFile = 1 << 20;
constexpr int kMaxDepth = 32;

const char* const kConfigVersions[] = {"kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v1beta1",
                                       "kubelet.config.k8s.io/v1alpha1"};
const char* const kProviderVersions[] = {"credentialprovider.kubelet.k8s.io/v1",
                                         "credentialprovider.kubelet.k8s.io/v1beta1",
                                         "credentialprovider.kubelet.k8s.io/v1alpha1"};

// A config error: "FILE: FIELD: REASON".
[[noreturn]] void fail(const std::string& source, const std::string& field,
                       const std::string& reason) {
  throw Error(ErrorKind::Invalid, "credential provider config " + source + ": " +
                                      (field.empty() ? "" : field + ": ") + reason);
}

std::string shownValue(const std::string& s) {
  std::string out = "\"";
  for (char c : s.substr(0, 120)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out + (s.size() > 120 ? "...\"" : "\"");
}

// YAML -> the JSON data model sigs.k8s.io/yaml gives kubelet. Scalars stay strings: every field
// of the config is a string or a list of strings, and a YAML 12h or 0 means the string.
json fromYaml(const YAML::Node& n, const std::string& source, const std::string& field, int depth) {
  if (depth > kMaxDepth) fail(source, field, "nested too deeply");
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return n.Scalar();
    case YAML::NodeType::Sequence: {
      json a = json::array();
      size_t i = 0;
      for (const auto& item : n) {
        a.push_back(fromYaml(item, source, field + "[" + std::to_string(i) + "]", depth + 1));
        ++i;
      }
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) fail(source, field, "has a key that is not a string");
        std::string key = kv.first.Scalar();
        std::string sub = field.empty() ? key : field + "." + key;
        if (o.contains(key)) fail(source, sub, "is given twice");
        o[key] = fromYaml(kv.second, source, sub, depth + 1);
      }
      return o;
    }
    default:
      return nullptr;
  }
}

json decode(std::string_view text, const std::string& source) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    try {
      return json::parse(text);
    } catch (const json::exception& e) {
      fail(source, "", std::string("is not valid JSON: ") + e.what());
    }
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    fail(source, "", "is not valid YAML (line " + std::to_string(e.mark.line + 1) + "): " + e.msg);
  }
  return fromYaml(root, source, "", 0);
}

void onlyFields(const json& o, const std::string& source, const std::string& field,
                std::initializer_list<const char*> known) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    bool ok = std::any_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; });
    if (ok) continue;
    std::string list;
    for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    fail(source, field.empty() ? it.key() : field + "." + it.key(),
         "unknown field (known: " + list + ")");
  }
}

// A string field: "" when absent or null (kubelet's zero value), else it must be a string.
std::string stringField(const json& o, const char* key, const std::string& source,
                        const std::string& field) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  if (!it->is_string())
    fail(source, field + key, "must be a string, not " + std::string(it->type_name()));
  return it->get<std::string>();
}

std::vector<std::string> stringList(const json& o, const char* key, const std::string& source,
                                    const std::string& field) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return out;
  if (!it->is_array()) fail(source, field + key, "must be a list of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_string())
      fail(source, field + key + "[" + std::to_string(i) + "]", "must be a string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool oneOf(std::string_view v, const char* const (&list)[3]) {
  return std::any_of(std::begin(list), std::end(list), [&](const char* s) { return v == s; });
}

std::string joined(const char* const (&list)[3]) {
  std::string out;
  for (const char* s : list) out += (out.empty() ? "" : ", ") + std::string(s);
  return out;
}

CredentialProviderSpec provider(const json& p, const std::string& source, const std::string& at) {
  if (!p.is_object()) fail(source, at, "must be an object");
  onlyFields(p, source, at,
             {"name", "matchImages", "defaultCacheDuration", "apiVersion", "args", "env",
              "tokenAttributes"});
  const std::string f = at + ".";
  if (p.contains("tokenAttributes") && !p["tokenAttributes"].is_null()) {
    // Service-account-token mode needs the pod's identity, which a node daemon does not have.
    fail(source, f + "tokenAttributes",
         "service account token providers are not supported (snapimport pulls for the node, not "
         "for a pod); give snapimport a config without this provider");
  }
  CredentialProviderSpec s;
  s.source = source;
  s.name = stringField(p, "name", source, f);
  if (s.name.empty()) fail(source, f + "name", "is required");
  if (s.name.find('/') != std::string::npos)
    fail(source, f + "name", shownValue(s.name) + " must not contain '/'");
  if (s.name.find(' ') != std::string::npos)
    fail(source, f + "name", shownValue(s.name) + " must not contain spaces");
  if (s.name == "." || s.name == "..")
    fail(source, f + "name", shownValue(s.name) + " is not a file name");
  for (char c : s.name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      fail(source, f + "name", "must not contain control characters");
  }

  s.apiVersion = stringField(p, "apiVersion", source, f);
  if (s.apiVersion.empty()) fail(source, f + "apiVersion", "is required");
  if (!oneOf(s.apiVersion, kProviderVersions))
    fail(source, f + "apiVersion",
         shownValue(s.apiVersion) + " is not supported (supported: " + joined(kProviderVersions) +
             ")");

  s.matchImages = stringList(p, "matchImages", source, f);
  if (s.matchImages.empty()) fail(source, f + "matchImages", "at least one pattern is required");
  for (size_t i = 0; i < s.matchImages.size(); ++i) {
    std::string why = imagePatternProblem(s.matchImages[i]);
    if (!why.empty())
      fail(source, f + "matchImages[" + std::to_string(i) + "]",
           shownValue(s.matchImages[i]) + " " + why);
  }

  auto d = p.find("defaultCacheDuration");
  if (d == p.end() || d->is_null()) fail(source, f + "defaultCacheDuration", "is required");
  if (!d->is_string() || !parseGoDuration(d->get<std::string>(), s.defaultCacheDuration)) {
    fail(source, f + "defaultCacheDuration",
         "must be a duration such as \"12h\", \"5m30s\" or \"0s\" (Go syntax)");
  }
  if (s.defaultCacheDuration.count() < 0)
    fail(source, f + "defaultCacheDuration", "must not be negative");

  s.args = stringList(p, "args", source, f);
  if (auto e = p.find("env"); e != p.end() && !e->is_null()) {
    if (!e->is_array()) fail(source, f + "env", "must be a list of {name, value}");
    for (size_t i = 0; i < e->size(); ++i) {
      const json& v = (*e)[i];
      std::string ef = f + "env[" + std::to_string(i) + "]";
      if (!v.is_object()) fail(source, ef, "must be an object with name and value");
      onlyFields(v, source, ef, {"name", "value"});
      std::string name = stringField(v, "name", source, ef + ".");
      if (name.empty() || name.find('=') != std::string::npos)
        fail(source, ef + ".name", "must be a non-empty variable name without '='");
      s.env.emplace_back(name, stringField(v, "value", source, ef + "."));
    }
  }
  return s;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(ErrorKind::Io,
                "cannot open credential provider config " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxConfigFile)
      throw Error(ErrorKind::Invalid,
                  "credential provider config " + path + " is larger than 1 MiB");
  }
  return text;
}

}  // namespace

bool isSupportedProviderApiVersion(std::string_view apiVersion) {
  return oneOf(apiVersion, kProviderVersions);
}

CredentialProviderConfig CredentialProviderConfig::parse(std::string_view text,
                                                         const std::string& sourceName) {
  json root = decode(text, sourceName);
  if (!root.is_object()) fail(sourceName, "", "must hold a CredentialProviderConfig object");
  onlyFields(root, sourceName, "", {"apiVersion", "kind", "providers"});
  std::string kind = stringField(root, "kind", sourceName, "");
  if (kind != "CredentialProviderConfig")
    fail(sourceName, "kind", shownValue(kind) + " must be \"CredentialProviderConfig\"");
  std::string version = stringField(root, "apiVersion", sourceName, "");
  if (!oneOf(version, kConfigVersions)) {
    fail(sourceName, "apiVersion",
         shownValue(version) + " is not supported (supported: " + joined(kConfigVersions) + ")");
  }
  auto ps = root.find("providers");
  if (ps == root.end() || ps->is_null() || (ps->is_array() && ps->empty()))
    fail(sourceName, "providers", "at least one provider is required");
  if (!ps->is_array()) fail(sourceName, "providers", "must be a list");
  CredentialProviderConfig cfg;
  std::set<std::string> names;
  for (size_t i = 0; i < ps->size(); ++i) {
    std::string at = "providers[" + std::to_string(i) + "]";
    CredentialProviderSpec s = provider((*ps)[i], sourceName, at);
    if (!names.insert(s.name).second)
      fail(sourceName, at + ".name", shownValue(s.name) + " is used by an earlier provider");
    cfg.providers.push_back(std::move(s));
  }
  return cfg;
}

CredentialProviderConfig CredentialProviderConfig::load(const std::string& path) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    throw Error(ErrorKind::Io, "credential provider config " + path + " does not exist" +
                                   (ec ? " (" + ec.message() + ")" : ""));
  }
  std::vector<std::string> files;
  if (fs::is_directory(st)) {
    for (const auto& e : fs::directory_iterator(path, ec)) {
      std::string ext = e.path().extension().string();
      if (!e.is_directory() && (ext == ".json" || ext == ".yaml" || ext == ".yml"))
        files.push_back(e.path().string());
    }
    if (ec)
      throw Error(ErrorKind::Io,
                  "cannot list credential provider config directory " + path + ": " + ec.message());
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      throw Error(ErrorKind::Invalid, "credential provider config directory " + path +
                                          " holds no *.json, *.yaml or *.yml file");
    }
  } else {
    files.push_back(path);
  }
  CredentialProviderConfig merged;
  std::set<std::string> names;
  for (const auto& f : files) {
    CredentialProviderConfig one = parse(readFile(f), f);
    for (auto& p : one.providers) {
      if (!names.insert(p.name).second)
        fail(f, "providers",
             "provider name " + shownValue(p.name) + " is already used in an earlier file");
      merged.providers.push_back(std::move(p));
    }
  }
  return merged;
}

bool parseGoDuration(std::string_view s, std::chrono::nanoseconds& out) {
  constexpr uint64_t kLimit = uint64_t(1) << 63;  // |int64 min|
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") {
    out = std::chrono::nanoseconds(0);
    return true;
  }
  if (s.empty()) return false;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  uint64_t total = 0;
  while (!s.empty()) {
    size_t i = 0;
    uint64_t v = 0;
    bool pre = false, post = false;
    while (i < s.size() && digit(s[i])) {
      if (v > (kLimit - 1) / 10) return false;  // overflow, as Go reports it
      v = v * 10 + uint64_t(s[i] - '0');
      if (v > kLimit) return false;
      pre = true;
      ++i;
    }
    uint64_t f = 0;
    double scale = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      bool overflow = false;
      while (i < s.size() && digit(s[i])) {
        post = true;
        if (!overflow) {
          if (f > (std::numeric_limits<int64_t>::max() - 9) / 10) {
            overflow = true;  // Go drops the remaining precision, keeps reading digits
          } else {
            f = f * 10 + uint64_t(s[i] - '0');
            scale *= 10;
          }
        }
        ++i;
      }
    }
    if (!pre && !post) return false;
    size_t u = i;
    while (u < s.size() && s[u] != '.' && !digit(s[u])) ++u;
    std::string_view unit = s.substr(i, u - i);
    uint64_t ns = 0;
    if (unit == "ns") {
      ns = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      ns = 1000;
    } else if (unit == "ms") {
      ns = 1000'000;
    } else if (unit == "s") {
      ns = 1000'000'000;
    } else if (unit == "m") {
      ns = 60ull * 1000'000'000;
    } else if (unit == "h") {
      ns = 3600ull * 1000'000'000;
    } else {
      return false;  // missing or unknown unit
    }
    if (v > kLimit / ns) return false;
    v *= ns;
    if (f > 0) {
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(ns) / scale));
      if (v > kLimit) return false;
    }
    total += v;
    if (total > kLimit) return false;
    s.remove_prefix(u);
  }
  if (neg) {
    out = std::chrono::nanoseconds(total == kLimit ? std::numeric_limits<int64_t>::min()
                                                   : -static_cast<int64_t>(total));
    return true;
  }
  if (total > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  out = std::chrono::nanoseconds(static_cast<int64_t>(total));
  return true;
}

}  // namespace snapimport::registry
