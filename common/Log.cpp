#include "Log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace snapimport::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_format{static_cast<int>(Format::Logfmt)};

const char* levelName(Level l) {
  switch (l) {
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warn:
      return "warning";
    case Level::Error:
      return "error";
  }
  return "info";
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
            1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(us));
  return buf;
}
}  // namespace

void setLevel(Level level) { g_level = static_cast<int>(level); }

void setFormat(Format format) { g_format = static_cast<int>(format); }

bool parseFormat(std::string_view text, Format& out) {
  if (text == "logfmt")
    out = Format::Logfmt;
  else if (text == "json")
    out = Format::Json;
  else
    return false;
  return true;
}

bool parseLevel(std::string_view text, Level& out) {
  if (text == "debug")
    out = Level::Debug;
  else if (text == "info")
    out = Level::Info;
  else if (text == "warn" || text == "warning")
    out = Level::Warn;
  else if (text == "error")
    out = Level::Error;
  else
    return false;
  return true;
}

bool enabled(Level level) { return static_cast<int>(level) >= g_level.load(); }

namespace {

// `v` in double quotes with quotes, backslashes and \n \t \r escaped; any other control byte is
// written with `controlFormat` ("\\x%02x" for logfmt, "\\u%04x" for JSON). Other bytes, UTF-8
// included, pass through unchanged (invalid UTF-8 is the reader's problem).
std::string quoted(std::string_view v, const char* controlFormat) {
  std::string out = "\"";
  for (unsigned char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, controlFormat, c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + '"';
}

}  // namespace

std::string quote(std::string_view v) {
  bool needs = v.empty();
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
      needs = true;
      break;
    }
  }
  return needs ? quoted(v, "\\x%02x") : std::string(v);
}

std::string jsonString(std::string_view v) { return quoted(v, "\\u%04x"); }

std::string formatLine(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  if (static_cast<Format>(g_format.load()) == Format::Json) {
    // Appends only: GCC 12 at -O3 reports a false -Wrestrict for "literal" + string&&.
    std::string line = "{\"time\":\"";
    line += timestamp();
    line += "\",\"level\":\"";
    line += levelName(level);
    line += "\",\"msg\":";
    line += jsonString(msg);
    for (const auto& [k, v] : fields) {
      line += ',';
      line += jsonString(k);
      line += ':';
      line += jsonString(v);
    }
    return line + "}";
  }
  std::string line = "time=" + timestamp() + " level=" + levelName(level) + " msg=" + quote(msg);
  for (const auto& [k, v] : fields) {
    line += ' ';
    line += k;
    line += '=';
    line += quote(v);
  }
  return line;
}

void write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  std::string line = formatLine(level, msg, fields);
  line += '\n';
  // One write(2) per line keeps lines from different threads whole.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace snapimport::log
