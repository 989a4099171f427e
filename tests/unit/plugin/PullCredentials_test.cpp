#include "plugin/PullCredentials.h"

#include <gtest/gtest.h>

#include "registry/Credentials.h"
#include "registry/Error.h"

namespace snapimport::plugin {
namespace {

using namespace std::chrono_literals;

registry::Credential basic(const std::string& user) {
  registry::Credential c;
  c.username = user;
  c.password = "pw-" + user;
  return c;
}

struct FakeClock {
  std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
  PullCredentials::Clock fn() {
    return [this] { return t; };
  }
};

TEST(CriAuthConfig, UsernameAndPasswordWin) {
  auto c = credentialFromAuthConfig(
      {"alice", "secret", registry::base64Encode("bob:other"), "", "tok", ""});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "secret");
  EXPECT_TRUE(c->identityToken.empty());
  EXPECT_TRUE(c->onlyHost.empty());
  EXPECT_EQ(c->source, "CRI PullImage auth");
}

TEST(CriAuthConfig, IdentityTokenThenAuthThenRegistryToken) {
  auto id =
      credentialFromAuthConfig({"", "", registry::base64Encode("bob:x"), "", "refresh", "rt"});
  ASSERT_TRUE(id);
  EXPECT_EQ(id->identityToken, "refresh");
  EXPECT_TRUE(id->username.empty());

  auto auth = credentialFromAuthConfig(
      {"", "", registry::base64Encode(std::string("bob:p:w\0\0", 9)), "", "", "rt"});
  ASSERT_TRUE(auth);
  EXPECT_EQ(auth->username, "bob");
  EXPECT_EQ(auth->password, "p:w");  // split at the first colon, NUL padding trimmed

  auto rt = credentialFromAuthConfig({"", "", "", "", "", "bearer-token"});
  ASSERT_TRUE(rt);
  EXPECT_EQ(rt->registryToken, "bearer-token");
}

TEST(CriAuthConfig, EmptyIsAnonymous) { EXPECT_FALSE(credentialFromAuthConfig({})); }

TEST(CriAuthConfig, ServerAddressLimitsTheHost) {
  auto c = credentialFromAuthConfig({"u", "p", "", "https://reg.example.com:5000/v1/", "", ""});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->onlyHost, "reg.example.com:5000");
  EXPECT_NE(c->source.find("reg.example.com:5000"), std::string::npos);
  auto hub = credentialFromAuthConfig({"u", "p", "", "https://index.docker.io/v1/", "", ""});
  EXPECT_EQ(hub->onlyHost, "docker.io");
  EXPECT_TRUE(registry::sameRegistryHost(hub->onlyHost, "registry-1.docker.io"));
  EXPECT_FALSE(registry::sameRegistryHost(c->onlyHost, "mirror.example.com"));
}

TEST(CriAuthConfig, MalformedFieldsAreNamedNeverQuoted) {
  try {
    credentialFromAuthConfig({"", "", "!!not-base64-secret!!", "", "", ""});
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("AuthConfig.auth is not valid base64"), std::string::npos) << m;
    EXPECT_EQ(m.find("secret"), std::string::npos) << m;
  }
  EXPECT_THROW(credentialFromAuthConfig({"", "", registry::base64Encode("no-colon"), "", "", ""}),
               std::invalid_argument);
  EXPECT_THROW(credentialFromAuthConfig({"", "orphan-password", "", "", "", ""}),
               std::invalid_argument);
}

TEST(PullKey, NormalisesLikeContainerd) {
  EXPECT_EQ(pullKey("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(pullKey("docker.io/library/busybox:latest"), "docker.io/library/busybox:latest");
  const std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(pullKey("reg:5000/app:v1@" + d), "reg:5000/app@" + d);  // the digest wins
  EXPECT_EQ(pullKey("reg:5000/app@" + d), "reg:5000/app@" + d);
  EXPECT_THROW(pullKey("reg:5000/app:bad tag!"), registry::Error);
}

TEST(PullCredentials, BoundToTheReferenceNotTheHost) {
  PullCredentials creds(10s);
  uint64_t t = creds.begin("127.0.0.1:5000/team-a/app:v1", basic("a"));
  auto f = creds.find("127.0.0.1:5000/team-a/app:v1");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ticket, t);
  EXPECT_EQ(f->credential.username, "a");
  EXPECT_FALSE(creds.find("127.0.0.1:5000/team-b/app:v1"));  // same host, other repository
  EXPECT_FALSE(creds.find("127.0.0.1:5000/team-a/app:v2"));  // same repository, other pull
  EXPECT_FALSE(creds.find("not a reference"));
}

TEST(PullCredentials, NewestPullOfOneImageWins) {
  PullCredentials creds(10s);
  uint64_t a = creds.begin("reg/app:v1", basic("a"));
  uint64_t b = creds.begin("docker.io/reg/app:v1", basic("b"));
  EXPECT_EQ(creds.find("reg/app:v1")->credential.username, "b");
  creds.end(b);
  EXPECT_EQ(creds.find("reg/app:v1")->ticket, b);  // still in its grace
  EXPECT_TRUE(creds.live(a));
}

TEST(PullCredentials, DroppedAfterTheGrace) {
  FakeClock clock;
  PullCredentials creds(5s, clock.fn());
  uint64_t t = creds.begin("reg:5000/app:v1", basic("a"));
  clock.t += 1h;  // a running pull keeps its credential however long it takes
  EXPECT_TRUE(creds.find("reg:5000/app:v1"));
  creds.end(t);
  clock.t += 4s;
  EXPECT_TRUE(creds.live(t));
  EXPECT_EQ(creds.size(), 1u);
  clock.t += 1s;
  EXPECT_FALSE(creds.live(t));
  EXPECT_FALSE(creds.find("reg:5000/app:v1"));
  EXPECT_EQ(creds.size(), 0u);
  creds.end(t);  // twice is harmless
}

TEST(PullCredentials, ZeroGraceDropsAtTheEnd) {
  PullCredentials creds(0s);
  uint64_t t = creds.begin("reg:5000/app:v1", basic("a"));
  creds.end(t);
  EXPECT_FALSE(creds.find("reg:5000/app:v1"));
}

}  // namespace
}  // namespace snapimport::plugin
