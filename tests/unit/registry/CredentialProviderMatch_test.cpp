#include "registry/CredentialProviderMatch.h"

#include <gtest/gtest.h>

namespace snapimport::registry {
namespace {

struct MatchCase {
  const char* pattern;
  const char* image;
  bool match;
};

// kubelet's own TestURLsMatch table, then the cases the importer meets (ports, paths, IPs).
TEST(CredentialProviderMatch, MatchImagesTable) {
  const MatchCase cases[] = {
      // one label per *, anywhere in the host
      {"*.kubernetes.io", "prefix.kubernetes.io", true},
      {"prefix.*.io", "prefix.kubernetes.io", true},
      {"prefix.kubernetes.*", "prefix.kubernetes.io", true},
      {"*-good.kubernetes.io", "prefix-good.kubernetes.io", true},
      {"*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true},
      {"prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true},
      {"*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true},
      {"prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true},
      // label counts differ: * never spans a dot, nor matches nothing
      {"*.kubernetes.io", "kubernetes.io", false},
      {"*.*.kubernetes.io", "prefix.kubernetes.io", false},
      {"*.*.kubernetes.io", "kubernetes.io", false},
      {"*.k8s.io", "a.b.k8s.io", false},
      {"*.io", "k8s.gcr.io", false},
      // a label differs
      {"kubernetes.io", "kubernetes.com", false},
      {"k*.io", "quay.io", false},
      {"app*.k8s.io", "application.k8s.io", true},
      {"app*.k8s.io", "web.k8s.io", false},
      // ports must be equal, also when the pattern has none
      {"*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false},
      {"prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false},
      {"reg.example.com:5000", "reg.example.com:5000/team/app", true},
      {"reg.example.com:5000", "reg.example.com/team/app", false},
      {"reg.example.com", "reg.example.com:5000/team/app", false},
      {"127.0.0.1:5000", "127.0.0.1:5000/private/app", true},
      {"*.0.0.1:5000", "127.0.0.1:5000/private/app", true},
      {"*.127.0.0.1:5000", "127.0.0.1:5000/private/app", false},
      {"127.0.0.1:5001", "127.0.0.1:5000/private/app", false},
      {"[::1]:5000", "[::1]:5000/private/app", true},
      // the pattern's path is a string prefix of the image's path (kubelet's HasPrefix)
      {"reg.io/team", "reg.io/team/app", true},
      {"reg.io/team/", "reg.io/team/app", true},
      {"reg.io/team", "reg.io/teamster/app", true},
      {"reg.io/team/", "reg.io/teamster/app", false},
      {"reg.io/team/app/sub", "reg.io/team/app", false},
      {"reg.io/other", "reg.io/team/app", false},
      {"reg.io", "reg.io/any/path", true},
      // Docker Hub: the image as kubelet normalises it
      {"docker.io", "docker.io/library/busybox", true},
      {"*.docker.io", "docker.io/library/busybox", false},
      // globs work in labels only, [..] as in Go's filepath.Match; a '?' starts a URL query for
      // kubelet's url.Parse, so it never matches
      {"reg?.io", "reg1.io/a", false},
      {"reg[0-9].io", "reg7.io/a", true},
      {"reg[0-9].io", "regx.io/a", false},
      {"reg[.io", "reg[.io/a", false},  // a malformed glob matches nothing, as in kubelet
  };
  for (const auto& c : cases) {
    EXPECT_EQ(imageMatches(c.pattern, c.image), c.match)
        << "pattern " << c.pattern << " image " << c.image;
  }
}

TEST(CredentialProviderMatch, PatternProblems) {
  EXPECT_EQ(imagePatternProblem("*.azurecr.io"), "");
  EXPECT_EQ(imagePatternProblem("registry.io:8080/path"), "");
  EXPECT_EQ(imagePatternProblem("[::1]:5000"), "");
  EXPECT_NE(imagePatternProblem(""), "");
  EXPECT_NE(imagePatternProblem("reg.io path"), "");
  EXPECT_NE(imagePatternProblem("reg.io\t"), "");
  EXPECT_NE(imagePatternProblem("reg.io:*"), "");
  EXPECT_NE(imagePatternProblem("reg.io:80a/x"), "");
  EXPECT_NE(imagePatternProblem("[::1"), "");
}

TEST(CredentialProviderMatch, ImageRegistry) {
  EXPECT_EQ(imageRegistry("reg.io:5000/team/app"), "reg.io:5000");
  EXPECT_EQ(imageRegistry("docker.io/library/busybox"), "docker.io");
}

TEST(CredentialProviderMatch, PreferredAuthKeyIsTheMostSpecificMatch) {
  std::vector<std::string> keys = {"*.example.com", "reg.example.com", "reg.example.com/team",
                                   "reg.example.com/team/app", "other.io"};
  auto pick = [&](const char* image) -> std::string {
    auto i = preferredAuthKey(keys, image);
    return i ? keys[*i] : "none";
  };
  EXPECT_EQ(pick("reg.example.com/team/app"), "reg.example.com/team/app");
  EXPECT_EQ(pick("reg.example.com/team/web"), "reg.example.com/team");
  EXPECT_EQ(pick("reg.example.com/ops/web"), "reg.example.com");
  EXPECT_EQ(pick("mirror.example.com/ops/web"), "*.example.com");
  EXPECT_EQ(pick("reg.example.com:5000/team/app"), "none");  // ports must match
  EXPECT_EQ(pick("example.com/x"), "none");
}

TEST(CredentialProviderMatch, AuthKeysMayCarrySchemeAndDockerPaths) {
  std::vector<std::string> keys = {"https://reg.io/v1/", "http://other.io:5000/v2/"};
  EXPECT_EQ(preferredAuthKey(keys, "reg.io/a/b"), 0u);
  EXPECT_EQ(preferredAuthKey(keys, "other.io:5000/x"), 1u);
  EXPECT_EQ(preferredAuthKey(keys, "third.io/x"), std::nullopt);
  EXPECT_EQ(preferredAuthKey({}, "reg.io/a"), std::nullopt);
}

TEST(CredentialProviderMatch, IndexDockerIoKeyServesDockerHubImages) {
  std::vector<std::string> keys = {"https://index.docker.io/v1/"};
  EXPECT_EQ(preferredAuthKey(keys, "docker.io/library/busybox"), 0u);
  EXPECT_EQ(preferredAuthKey(keys, "reg.io/library/busybox"), std::nullopt);
}

}  // namespace
}  // namespace snapimport::registry
