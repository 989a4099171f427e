// log.format = json: one JSON object per line, whatever a message or field holds.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/Log.h"

namespace snapimport::log {
namespace {

TEST(LogFormat, ParsesNames) {
  Format f;
  EXPECT_TRUE(parseFormat("json", f));
  EXPECT_EQ(f, Format::Json);
  EXPECT_TRUE(parseFormat("logfmt", f));
  EXPECT_EQ(f, Format::Logfmt);
  EXPECT_FALSE(parseFormat("JSON", f));
}

TEST(LogFormat, JsonLinesParseBack) {
  setFormat(Format::Json);
  std::string line =
      formatLine(Level::Warn, "bad \"thing\"\n", {{"key", "a\\b\x01"}, {"path", "/x y"}});
  setFormat(Format::Logfmt);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["msg"], "bad \"thing\"\n");
  EXPECT_EQ(j["key"], "a\\b\x01");
  EXPECT_EQ(j["path"], "/x y");
  EXPECT_TRUE(j.contains("time"));
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(LogFormat, LogfmtStaysTheDefault) {
  std::string line = formatLine(Level::Info, "hello", {{"k", "v"}});
  EXPECT_NE(line.find("level=info msg=hello k=v"), std::string::npos) << line;
}

}  // namespace
}  // namespace snapimport::log
