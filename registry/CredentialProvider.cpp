#include "registry/CredentialProvider.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/Log.h"
#include "registry/CredentialProviderExec.h"
#include "registry/CredentialProviderMatch.h"
#include "registry/Error.h"

namespace snapimport::registry {
namespace {

using nlohmann::json;
using TimePoint = std::chrono::steady_clock::time_point;

constexpr const char* kRequestKind = "CredentialProviderRequest";
constexpr const char* kResponseKind = "CredentialProviderResponse";
constexpr size_t kMaxResponse = 1 << 20;

// A value from a plugin's response, for an error message: printable, short. Only fields that
// name things (kind, apiVersion, cacheKeyType, field names) are ever shown, never auth values.
std::string shown(const std::string& s) {
  std::string out = "\"";
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
  return out + (s.size() > 64 ? "...\"" : "\"");
}

[[noreturn]] void bad(const std::string& why) {
  throw Error(ErrorKind::Invalid, "its response " + why);
}

void onlyFields(const json& o, const std::string& where, std::initializer_list<const char*> known) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; }))
      bad("has an unknown field " + shown(it.key()) + where);
  }
}

std::string optionalString(const json& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  if (!it->is_string()) bad("field " + std::string(key) + where + " is not a string");
  return it->get<std::string>();
}

std::string formatMs(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string formatNs(std::chrono::nanoseconds d) {
  return formatMs(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

std::string keyTypeName(CacheKeyType t) {
  switch (t) {
    case CacheKeyType::Image:
      return "Image";
    case CacheKeyType::Registry:
      return "Registry";
    default:
      return "Global";
  }
}

std::string cacheKey(CacheKeyType t, const std::string& image) {
  switch (t) {
    case CacheKeyType::Image:
      return "image:" + image;
    case CacheKeyType::Registry:
      return "registry:" + imageRegistry(image);
    default:
      return "global";
  }
}

}  // namespace

ProviderResponse parseProviderResponse(std::string_view output, const std::string& apiVersion) {
  if (output.size() > kMaxResponse) bad("is larger than 1 MiB");
  json j = json::parse(output, nullptr, false);
  // The parser's message quotes the text around the error: it never goes into ours.
  if (j.is_discarded()) bad("on stdout is not valid JSON");
  if (!j.is_object()) bad("on stdout is not a JSON object");
  onlyFields(j, "", {"apiVersion", "kind", "cacheKeyType", "cacheDuration", "auth"});
  std::string kind = optionalString(j, "kind", "");
  if (kind != kResponseKind) bad("has kind " + shown(kind) + ", want \"" + kResponseKind + "\"");
  std::string version = optionalString(j, "apiVersion", "");
  if (version != apiVersion)
    bad("has apiVersion " + shown(version) + ", but the provider is configured for \"" +
        apiVersion + "\"");
  ProviderResponse r;
  std::string keyType = optionalString(j, "cacheKeyType", "");
  if (keyType == "Image") {
    r.cacheKeyType = CacheKeyType::Image;
  } else if (keyType == "Registry") {
    r.cacheKeyType = CacheKeyType::Registry;
  } else if (keyType == "Global") {
    r.cacheKeyType = CacheKeyType::Global;
  } else {
    bad("has cacheKeyType " + shown(keyType) + ", want Image, Registry or Global");
  }
  if (auto d = j.find("cacheDuration"); d != j.end() && !d->is_null()) {
    std::chrono::nanoseconds ns;
    if (!d->is_string() || !parseGoDuration(d->get<std::string>(), ns))
      bad("has a cacheDuration that is not a duration string such as \"5m\" or \"0s\"");
    r.cacheDuration = ns;
  }
  if (auto a = j.find("auth"); a != j.end() && !a->is_null()) {
    if (!a->is_object()) bad("has an auth field that is not an object");
    for (auto it = a->begin(); it != a->end(); ++it) {
      std::string where = " in auth[" + shown(it.key()) + "]";
      ProviderAuth pa;
      pa.key = it.key();
      if (!it->is_null()) {
        if (!it->is_object()) bad("has an auth entry that is not an object" + where);
        onlyFields(*it, where, {"username", "password"});
        pa.username = optionalString(*it, "username", where);
        pa.password = optionalString(*it, "password", where);
      }
      r.auth.push_back(std::move(pa));
    }
  }
  return r;
}

std::string providerRequest(const std::string& apiVersion, const std::string& image) {
  json j = {{"apiVersion", apiVersion}, {"kind", kRequestKind}, {"image", image}};
  return j.dump() + "\n";
}

CredentialProvider::CredentialProvider(CredentialProviderSpec spec,
                                       CredentialProviderOptions options)
    : spec_(std::move(spec)), options_(std::move(options)) {}

std::string CredentialProvider::program() const { return options_.binDir + "/" + spec_.name; }

TimePoint CredentialProvider::now() const {
  return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
}

bool CredentialProvider::matches(const std::string& image) const {
  return std::any_of(spec_.matchImages.begin(), spec_.matchImages.end(),
                     [&](const std::string& p) { return imageMatches(p, image); });
}

uint64_t CredentialProvider::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

CredentialProvider::EntryPtr CredentialProvider::cachedLocked(const std::string& image,
                                                              TimePoint t) {
  // Expired entries go when looked at; the rest stay until they expire (a few per registry).
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = it->second->expires <= t ? cache_.erase(it) : std::next(it);
  }
  for (CacheKeyType kt : {CacheKeyType::Image, CacheKeyType::Registry, CacheKeyType::Global}) {
    if (auto it = cache_.find(cacheKey(kt, image)); it != cache_.end()) return it->second;
  }
  return nullptr;
}

CredentialProvider::EntryPtr CredentialProvider::run(const std::string& image) {
  PluginExecRequest req;
  req.program = program();
  req.args = spec_.args;
  req.env = spec_.env;
  req.input = providerRequest(spec_.apiVersion, image);
  req.timeout = options_.timeout;
  req.maxOutput = kMaxResponse;
  {
    std::lock_guard lock(mu_);
    ++runs_;
  }
  const std::string who = "credential provider " + spec_.name + " (" + req.program + ")";
  PluginExecResult r;
  try {
    r = runPlugin(req);
  } catch (const Error& e) {
    throw Error(ErrorKind::Unauthorized, who + ": " + e.what());
  }
  // stderr is where plugins explain a failure; their credentials go to stdout only.
  std::string stderrPart =
      r.errorTail.empty() ? "" : "; its stderr ends: " + printableTail(r.errorTail);
  if (r.timedOut) {
    throw Error(ErrorKind::Unauthorized, who + " did not answer within " +
                                             formatMs(options_.timeout) +
                                             " and was killed with its process group" + stderrPart);
  }
  if (r.outputTooLarge)
    throw Error(ErrorKind::Unauthorized, who + " printed more than 1 MiB on stdout and was killed");
  if (r.signal != 0) {
    throw Error(ErrorKind::Unauthorized,
                who + " was killed by signal " + std::to_string(r.signal) + stderrPart);
  }
  if (r.exitStatus != 0) {
    throw Error(ErrorKind::Unauthorized,
                who + " exited with status " + std::to_string(r.exitStatus) + stderrPart);
  }
  ProviderResponse resp;
  try {
    resp = parseProviderResponse(r.output, spec_.apiVersion);
  } catch (const Error& e) {
    throw Error(ErrorKind::Unauthorized, who + ": " + e.what());
  }
  auto entry = std::make_shared<Entry>();
  entry->auth = std::move(resp.auth);
  std::chrono::nanoseconds d = resp.cacheDuration.value_or(spec_.defaultCacheDuration);
  TimePoint t = now();
  entry->cacheable = d.count() > 0;
  entry->expires = entry->cacheable ? t + d : t;
  entry->key = cacheKey(resp.cacheKeyType, image);
  log::info("credential provider answered",
            {{"provider", spec_.name},
             {"image", image},
             {"auth_entries", std::to_string(entry->auth.size())},
             {"cache_key_type", keyTypeName(resp.cacheKeyType)},
             {"cache_duration", entry->cacheable ? formatNs(d) : std::string("0 (not cached)")},
             {"duration_ms", std::to_string(r.elapsed.count())}});
  return entry;
}

CredentialProvider::Result CredentialProvider::provide(const std::string& image) {
  std::promise<EntryPtr> promise;
  std::shared_future<EntryPtr> flight;
  bool leader = false;
  {
    std::lock_guard lock(mu_);
    if (EntryPtr e = cachedLocked(image, now())) return resultFor(*e, image, true);
    if (auto it = flights_.find(image); it != flights_.end()) {
      flight = it->second;
    } else {
      flight = promise.get_future().share();
      flights_.emplace(image, flight);
      leader = true;
    }
  }
  if (leader) {
    EntryPtr e;
    std::exception_ptr failure;
    try {
      e = run(image);
    } catch (const std::exception& ex) {
      // One line per failed run (whoever waited on it shares the error, not the line).
      log::warn("credential provider failed; falling back to the next credential source",
                {{"provider", spec_.name}, {"image", image}, {"error", ex.what()}});
      failure = std::current_exception();
    } catch (...) {
      failure = std::current_exception();
    }
    {
      std::lock_guard lock(mu_);
      if (e && e->cacheable) cache_[e->key] = e;
      flights_.erase(image);
    }
    if (failure) {
      promise.set_exception(failure);
    } else {
      promise.set_value(e);
    }
  }
  EntryPtr e = flight.get();  // rethrows the run's error
  return resultFor(*e, image, !leader);
}

CredentialProvider::Result CredentialProvider::resultFor(const Entry& e, const std::string& image,
                                                         bool cached) {
  Result res;
  std::vector<std::string> keys;
  for (const auto& a : e.auth) keys.push_back(a.key);
  if (auto i = preferredAuthKey(keys, image)) res.auth = e.auth[*i];
  res.expires = e.expires;
  res.cached = cached;
  return res;
}

CredentialProviders::CredentialProviders(const CredentialProviderConfig& config,
                                         CredentialProviderOptions options)
    : clock_(options.clock) {
  for (const auto& spec : config.providers)
    providers_.push_back(std::make_unique<CredentialProvider>(spec, options));
}

std::shared_ptr<CredentialProviders> CredentialProviders::load(const std::string& configPath,
                                                               const std::string& binDir,
                                                               std::chrono::milliseconds timeout) {
  struct stat st {};
  if (binDir.empty() || ::stat(binDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorKind::Invalid, "credential provider plugin directory \"" + binDir +
                                        "\" does not exist or is not a directory");
  }
  CredentialProviderConfig config = CredentialProviderConfig::load(configPath);
  for (const auto& p : config.providers) {
    std::string program = binDir + "/" + p.name;
    if (::stat(program.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      throw Error(ErrorKind::Invalid, "credential provider config " + p.source + ": provider " +
                                          p.name + ": plugin " + program + " does not exist");
    }
    if (::access(program.c_str(), X_OK) != 0) {
      throw Error(ErrorKind::Invalid, "credential provider config " + p.source + ": provider " +
                                          p.name + ": plugin " + program + " is not executable");
    }
  }
  auto providers =
      std::make_shared<CredentialProviders>(config, CredentialProviderOptions{binDir, timeout, {}});
  std::string names;
  for (const auto& p : config.providers) names += (names.empty() ? "" : ",") + p.name;
  log::info("credential providers configured", {{"config", configPath},
                                                {"bin_dir", binDir},
                                                {"providers", names},
                                                {"timeout", formatMs(timeout)}});
  return providers;
}

CredentialProviders::Lookup CredentialProviders::lookup(std::string_view registry,
                                                        std::string_view repoPath,
                                                        std::vector<std::string>* tried) {
  const std::string image = std::string(registry) + "/" + std::string(repoPath);
  auto note = [&](const std::string& s) {
    if (tried) tried->push_back(s);
  };
  Lookup out;
  bool matched = false;
  for (auto& p : providers_) {
    if (!p->matches(image)) continue;
    matched = true;
    const std::string who = "credential provider " + p->spec().name;
    TimePoint now = clock_ ? clock_() : std::chrono::steady_clock::now();
    try {
      CredentialProvider::Result r = p->provide(image);
      // An answer that may not be cached still serves the rest of this pull for a moment.
      TimePoint until = r.expires > now ? r.expires : now + kUncachedReuse;
      if (r.auth) {
        Credential c;
        c.username = r.auth->username;
        c.password = r.auth->password;
        c.source = who + " auth[\"" + r.auth->key + "\"]";
        c.expires = until;
        c.originOnly = true;
        note(c.source + (r.cached ? " (cached)" : ""));
        out.credential = std::move(c);
        return out;
      }
      note(who + " (no auth entry for " + image + ")");
      out.reconsiderAt = std::min(out.reconsiderAt, until);
    } catch (const std::exception& e) {
      note(who + " (failed: " + e.what() + ")");
      out.reconsiderAt = std::min(out.reconsiderAt, now + kRetryAfterFailure);
    }
  }
  if (!matched) note("credential providers (none matches " + image + ")");
  return out;
}

}  // namespace snapimport::registry
