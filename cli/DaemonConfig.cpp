#include "DaemonConfig.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <toml++/toml.h>

namespace snapimport::cli {
namespace {

std::string where(const std::string& file, const toml::source_region& r) {
  return file + ":" + std::to_string(r.begin.line);
}

void readString(const toml::table& t, const char* key, std::string& out, const std::string& file) {
  const toml::node* n = t.get(key);
  if (!n) return;
  auto v = n->value<std::string>();
  if (!n->is_string() || !v) {
    throw std::runtime_error(where(file, n->source()) + ": key \"" + key + "\" must be a string");
  }
  if (v->empty()) throw std::runtime_error(where(file, n->source()) + ": key \"" + key + "\" must not be empty");
  out = *v;
}

}  // namespace

DaemonConfig DaemonConfig::parse(const std::string& text, const std::string& sourceName) {
  toml::table t;
  try {
    t = toml::parse(text, sourceName);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(sourceName + ":" + std::to_string(e.source().begin.line) + ": " +
                             std::string(e.description()));
  }
  static const char* const kKnown[] = {"root", "address", "log_level"};
  for (const auto& [k, node] : t) {
    bool known = false;
    for (const char* name : kKnown) known = known || k.str() == name;
    if (!known) {
      throw std::runtime_error(where(sourceName, node.source()) + ": unknown key \"" + std::string(k.str()) + "\"");
    }
  }
  DaemonConfig c;
  readString(t, "root", c.root, sourceName);
  readString(t, "address", c.address, sourceName);
  readString(t, "log_level", c.logLevel, sourceName);
  return c;
}

DaemonConfig DaemonConfig::load(const std::string& file) {
  toml::table t;
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open config file " + file + ": " + std::strerror(errno));
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  bool err = std::ferror(f);
  std::fclose(f);
  if (err) throw std::runtime_error("cannot read config file " + file);
  return parse(text, file);
}

}  // namespace snapimport::cli
