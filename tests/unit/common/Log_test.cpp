#include "common/Log.h"

#include <gtest/gtest.h>

namespace snapimport::log {
namespace {

TEST(Logfmt, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(quote("plain"), "plain");
  EXPECT_EQ(quote(""), "\"\"");
  EXPECT_EQ(quote("k8s.io/1/extract-1 sha256:ab"), "\"k8s.io/1/extract-1 sha256:ab\"");
  EXPECT_EQ(quote("a=b"), "\"a=b\"");
  EXPECT_EQ(quote("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
  EXPECT_EQ(quote(std::string("nul\0x", 5)), "\"nul\\x00x\"");
}

TEST(Logfmt, LevelsParse) {
  Level l;
  EXPECT_TRUE(parseLevel("debug", l));
  EXPECT_EQ(l, Level::Debug);
  EXPECT_TRUE(parseLevel("warn", l));
  EXPECT_FALSE(parseLevel("loud", l));
}

}  // namespace
}  // namespace snapimport::log
