#include "registry/Reference.h"

#include <gtest/gtest.h>

#include "registry/Error.h"

namespace snapimport::registry {

const std::string kHex(64, 'c');

TEST(Reference, NormalisesLikeDocker) {
  struct Case {
    std::string in, domain, path, tag;
  };
  for (const auto& c : std::vector<Case>{
           {"ubuntu", "docker.io", "library/ubuntu", "latest"},
           {"ubuntu:22.04", "docker.io", "library/ubuntu", "22.04"},
           {"docker.io/ubuntu", "docker.io", "library/ubuntu", "latest"},
           {"index.docker.io/library/ubuntu", "docker.io", "library/ubuntu", "latest"},
           {"bitnami/redis:7", "docker.io", "bitnami/redis", "7"},
           {"localhost/foo", "localhost", "foo", "latest"},
           {"localhost:5000/a/b/c:v1", "localhost:5000", "a/b/c", "v1"},
           {"127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest"},
           {"quay.io/org/repo", "quay.io", "org/repo", "latest"},
           {"[::1]:5000/x:t", "[::1]:5000", "x", "t"},
           {"Registry/x", "Registry", "x", "latest"},
           {"a__b/c-d--e.f_g", "docker.io", "a__b/c-d--e.f_g", "latest"},
       }) {
    auto r = Reference::parse(c.in);
    EXPECT_EQ(r.domain, c.domain) << c.in;
    EXPECT_EQ(r.path, c.path) << c.in;
    EXPECT_EQ(r.tag, c.tag) << c.in;
    EXPECT_FALSE(r.digest) << c.in;
  }
}

TEST(Reference, DigestWinsOverTag) {
  auto r = Reference::parse("reg.io:443/a/b:t@sha256:" + kHex);
  EXPECT_EQ(r.object(), "sha256:" + kHex);
  EXPECT_EQ(r.tag, "t");
  EXPECT_EQ(r.str(), "reg.io:443/a/b:t@sha256:" + kHex);
  auto d = Reference::parse("busybox@sha256:" + kHex);
  EXPECT_TRUE(d.tag.empty());
  EXPECT_EQ(d.name(), "docker.io/library/busybox");
}

TEST(Reference, RejectsInvalid) {
  for (std::string bad : std::vector<std::string>{
           "", "UPPER", "docker.io/Upper/x", "a//b", "-a", "a-", "a..b", "a___b", "x:", "x:-t",
           "x:" + std::string(129, 't'), "x@sha256:abc", "x@sha256:" + std::string(64, 'G'), kHex,
           "host:port/x", "reg.io/a/../b", "reg.io/a b", "reg.io/" + std::string(260, 'a'),
           "exa_mple.com/x"}) {
    EXPECT_THROW(Reference::parse(bad), Error) << bad;
  }
}

TEST(Reference, ErrorNamesTheReference) {
  try {
    Reference::parse("reg.io/x:bad tag");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reg.io/x:bad tag"), std::string::npos);
    EXPECT_EQ(e.kind(), ErrorKind::Invalid);
  }
}

TEST(Reference, RepositoryHasNoTag) {
  EXPECT_EQ(Reference::parseRepository("127.0.0.1:5000/a/b").tag, "");
  EXPECT_THROW(Reference::parseRepository("127.0.0.1:5000/a/b:t"), Error);
  EXPECT_THROW(Reference::parseRepository("busybox@sha256:" + kHex), Error);
}

TEST(Reference, ValidatesTagsAndDomains) {
  EXPECT_TRUE(Reference::isValidTag("_x.y-Z"));
  EXPECT_FALSE(Reference::isValidTag(".x"));
  EXPECT_TRUE(Reference::isValidDomain("my-reg.example.com:5000"));
  EXPECT_FALSE(Reference::isValidDomain("reg.io:"));
  EXPECT_FALSE(Reference::isValidDomain("-reg.io"));
}

}  // namespace snapimport::registry
