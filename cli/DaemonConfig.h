#pragma once
// The daemon's TOML config. Unknown keys and wrongly typed values are errors that name the key
// and the file: a typo must not silently fall back to a default.
#include <string>

namespace snapimport::cli {

struct DaemonConfig {
  std::string root = "/var/lib/snapimport";
  std::string address = "/run/snapimport/snapimport.sock";
  std::string logLevel = "info";

  static DaemonConfig load(const std::string& file);
  static DaemonConfig parse(const std::string& text, const std::string& sourceName);
};

}  // namespace snapimport::cli
