#include "registry/Challenge.h"

#include <gtest/gtest.h>

namespace snapimport::registry {

TEST(Challenge, ParsesBearerWithQuotedParams) {
  auto cs = parseChallenges(
      {R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:foo/bar:pull,push")"});
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].scheme, "bearer");
  EXPECT_EQ(cs[0].param("realm"), "https://auth.example/token");
  EXPECT_EQ(cs[0].param("service"), "registry.example");
  EXPECT_EQ(cs[0].param("scope"), "repository:foo/bar:pull,push");
}

TEST(Challenge, SeveralChallengesInOneAndManyHeaders) {
  auto cs = parseChallenges(
      {R"(Basic realm="x", Bearer realm="https://a/t", service=reg, error="invalid_token")",
       "Negotiate", R"(BASIC realm="quoted \"escape\"")"});
  ASSERT_EQ(cs.size(), 4u);
  EXPECT_EQ(cs[0].scheme, "basic");
  EXPECT_EQ(cs[0].param("realm"), "x");
  EXPECT_EQ(cs[1].scheme, "bearer");
  EXPECT_EQ(cs[1].param("service"), "reg");
  EXPECT_EQ(cs[1].param("error"), "invalid_token");
  EXPECT_EQ(cs[2].scheme, "negotiate");
  EXPECT_EQ(cs[3].param("realm"), "quoted \"escape\"");
}

TEST(Challenge, CommasInsideQuotesAndOddSpacing) {
  auto cs =
      parseChallenges({R"(  Bearer   realm = "https://a/t?x=1,2" ,scope="a:b:pull b:c:push"  ,)"});
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].param("realm"), "https://a/t?x=1,2");
  EXPECT_EQ(cs[0].param("scope"), "a:b:pull b:c:push");
}

TEST(Scopes, MergesAndSortsActionsPerResource) {
  Scopes s;
  s.add("repository:a/b:push repository:a/b:pull");
  s.addRepository("reg.io:5000/x", "pull");
  s.add("registry:catalog:*");
  EXPECT_EQ(s.key(), "registry:catalog:* repository:a/b:pull,push repository:reg.io:5000/x:pull");
  Scopes t;
  t.add("repository:a/b:pull,push registry:catalog:* repository:reg.io:5000/x:pull");
  EXPECT_EQ(s, t);
}

}  // namespace snapimport::registry
