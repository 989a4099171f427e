#include "cli/DaemonConfig.h"

#include <gtest/gtest.h>

namespace snapimport::cli {
namespace {

std::string errorOf(const std::string& text) {
  try {
    DaemonConfig::parse(text, "/etc/snapimport/config.toml");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(DaemonConfig, DefaultsAndOverrides) {
  DaemonConfig c = DaemonConfig::parse("root = \"/srv/si\"\n", "f.toml");
  EXPECT_EQ(c.root, "/srv/si");
  EXPECT_EQ(c.address, DaemonConfig{}.address);
}

TEST(DaemonConfig, UnknownKeyNamesKeyFileAndLine) {
  std::string e = errorOf("root = \"/x\"\nroot_dir = \"/y\"\n");
  EXPECT_NE(e.find("unknown key \"root_dir\""), std::string::npos) << e;
  EXPECT_NE(e.find("/etc/snapimport/config.toml:2"), std::string::npos) << e;
}

TEST(DaemonConfig, WrongTypeNamesKey) {
  std::string e = errorOf("address = 5\n");
  EXPECT_NE(e.find("\"address\" must be a string"), std::string::npos) << e;
}

TEST(DaemonConfig, SyntaxErrorNamesFile) {
  std::string e = errorOf("root = \n");
  EXPECT_NE(e.find("/etc/snapimport/config.toml:1"), std::string::npos) << e;
}

TEST(DaemonConfig, UnreadableFileIsNamed) {
  try {
    DaemonConfig::load("/nonexistent/snapimport.toml");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/snapimport.toml"), std::string::npos);
  }
}

}  // namespace
}  // namespace snapimport::cli
