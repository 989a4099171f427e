#pragma once
// logfmt logging to stderr: `time=... level=info msg="..." key=value`. Values are quoted when
// they need to be, so a log line is always one parseable line whatever a key or label holds.
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace snapimport::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

using Field = std::pair<std::string_view, std::string>;

void setLevel(Level level);
// logfmt (the default) or one JSON object per line, for log shippers that want JSON.
enum class Format { Logfmt, Json };
void setFormat(Format format);
// Parses "logfmt|json"; returns false for anything else.
bool parseFormat(std::string_view text, Format& out);
// Parses "debug|info|warn|error"; returns false for anything else.
bool parseLevel(std::string_view text, Level& out);
bool enabled(Level level);

void write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
inline void debug(std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::Debug, msg, f);
}
inline void info(std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::Info, msg, f);
}
inline void warn(std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::Warn, msg, f);
}
inline void error(std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::Error, msg, f);
}

// Formats one logfmt value (exposed for tests).
std::string quote(std::string_view value);
// Formats one JSON string, quotes included (exposed for tests).
std::string jsonString(std::string_view value);
// The line write() would print, without the trailing newline (exposed for tests).
std::string formatLine(Level level, std::string_view msg, std::initializer_list<Field> fields);

}  // namespace snapimport::log
