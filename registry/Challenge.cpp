#include "registry/Challenge.h"

#include <algorithm>
#include <cctype>

namespace snapimport::registry {
namespace {

bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  void parse(std::vector<Challenge>& out) {
    while (true) {
      skipSpaceAndCommas();
      if (done()) return;
      std::string scheme = token();
      if (scheme.empty()) {  // garbage: skip a character and try again
        ++i_;
        continue;
      }
      Challenge ch;
      ch.scheme = lower(scheme);
      // Parameters until the next token that is not followed by '='.
      while (true) {
        skipSpaceAndCommas();
        if (done()) break;
        size_t save = i_;
        std::string key = token();
        skipSpace();
        if (key.empty() || done() || s_[i_] != '=') {
          i_ = save;  // start of the next challenge (or token68, which registries don't use)
          if (key.empty()) ++i_;
          break;
        }
        ++i_;  // '='
        skipSpace();
        std::string value = (!done() && s_[i_] == '"') ? quoted() : token();
        ch.params[lower(key)] = value;
      }
      out.push_back(std::move(ch));
    }
  }

 private:
  bool done() const { return i_ >= s_.size(); }
  void skipSpace() {
    while (!done() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void skipSpaceAndCommas() {
    while (!done() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ',')) ++i_;
  }
  std::string token() {
    size_t b = i_;
    while (!done() && isTokenChar(s_[i_])) ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  std::string quoted() {
    std::string v;
    ++i_;  // opening quote
    while (!done() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      v += s_[i_++];
    }
    if (!done()) ++i_;  // closing quote
    return v;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::vector<Challenge> parseChallenges(const std::vector<std::string>& headerValues) {
  std::vector<Challenge> out;
  for (const auto& h : headerValues) Parser(h).parse(out);
  return out;
}

void Scopes::add(std::string_view spaceSeparated) {
  size_t start = 0;
  while (start < spaceSeparated.size()) {
    size_t sp = spaceSeparated.find(' ', start);
    std::string_view one = spaceSeparated.substr(
        start, sp == std::string_view::npos ? spaceSeparated.npos : sp - start);
    start = sp == std::string_view::npos ? spaceSeparated.size() : sp + 1;
    if (one.empty()) continue;
    // The resource name may contain "host:port", so the actions are after the LAST ':'.
    auto colon = one.rfind(':');
    if (colon == std::string_view::npos || one.find(':') == colon) {
      resources_[std::string(one)];
      continue;
    }
    auto& actions = resources_[std::string(one.substr(0, colon))];
    std::string_view acts = one.substr(colon + 1);
    size_t a = 0;
    while (a <= acts.size()) {
      size_t comma = acts.find(',', a);
      std::string act(acts.substr(a, comma == std::string_view::npos ? acts.npos : comma - a));
      if (!act.empty() && std::find(actions.begin(), actions.end(), act) == actions.end()) {
        actions.push_back(act);
      }
      if (comma == std::string_view::npos) break;
      a = comma + 1;
    }
    std::sort(actions.begin(), actions.end());
  }
}

void Scopes::addRepository(std::string_view repoPath, std::string_view actions) {
  add("repository:" + std::string(repoPath) + ":" + std::string(actions));
}

std::vector<std::string> Scopes::list() const {
  std::vector<std::string> out;
  for (const auto& [res, actions] : resources_) {
    std::string s = res;
    if (!actions.empty()) {
      s += ":";
      for (size_t i = 0; i < actions.size(); ++i) s += (i ? "," : "") + actions[i];
    }
    out.push_back(s);
  }
  return out;
}

std::string Scopes::key() const {
  std::string k;
  for (const auto& s : list()) k += (k.empty() ? "" : " ") + s;
  return k;
}

}  // namespace snapimport::registry
