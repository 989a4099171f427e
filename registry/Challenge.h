#pragma once
// WWW-Authenticate challenges (RFC 7235 / RFC 6750): several challenges in one header or in
// several headers, quoted-string parameters with escapes, and space-separated scope lists.
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace snapimport::registry {

struct Challenge {
  std::string scheme;                         // lowercase: "bearer", "basic"
  std::map<std::string, std::string> params;  // lowercase keys: realm, service, scope, error
  std::string param(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? std::string() : it->second;
  }
};

std::vector<Challenge> parseChallenges(const std::vector<std::string>& headerValues);

// A set of token scopes ("repository:a/b:pull,push"), kept sorted and merged per resource so
// one cache key stands for one set of rights.
class Scopes {
 public:
  Scopes() = default;
  // Adds scopes from a space-separated list.
  void add(std::string_view spaceSeparated);
  void addRepository(std::string_view repoPath, std::string_view actions);
  std::vector<std::string> list() const;
  std::string key() const;  // space-joined, sorted
  bool empty() const { return resources_.empty(); }
  bool operator==(const Scopes&) const = default;

 private:
  // "repository:a/b" -> {"pull","push"}
  std::map<std::string, std::vector<std::string>> resources_;
};

}  // namespace snapimport::registry
