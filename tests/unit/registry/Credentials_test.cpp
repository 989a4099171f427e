#include "registry/Credentials.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "registry/Error.h"

namespace fs = std::filesystem;

namespace snapimport::registry {

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("creds-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "bin");
    oldPath_ = std::getenv("PATH") ? std::getenv("PATH") : "";
    setenv("PATH", ((dir_ / "bin").string() + ":" + oldPath_).c_str(), 1);
  }
  void TearDown() override {
    setenv("PATH", oldPath_.c_str(), 1);
    fs::remove_all(dir_);
  }
  std::string file(const std::string& json) {
    auto p = dir_ / "config.json";
    std::ofstream(p) << json;
    return p.string();
  }
  void helper(const std::string& name, const std::string& script) {
    auto p = dir_ / "bin" / ("docker-credential-" + name);
    std::ofstream(p) << "#!/bin/sh\n" << script;
    fs::permissions(p, fs::perms::owner_all);
  }
  fs::path dir_;
  std::string oldPath_;
};

TEST(Base64, RoundTrips) {
  for (std::string s : {"", "a", "ab", "abc", "user:p@ss:with:colons"})
    EXPECT_EQ(base64Decode(base64Encode(s)), s);
  EXPECT_EQ(base64Encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_THROW(base64Decode("!!"), Error);
}

TEST_F(CredentialsTest, AuthsEntrySplitsAtFirstColon) {
  CredentialStore store({std::nullopt, file(R"({"auths":{"reg.io:5000":{"auth":")" +
                                            base64Encode("bob:pa:ss") + R"("}}})")});
  std::vector<std::string> tried;
  auto c = store.lookup("reg.io:5000", "a/b", &tried);
  EXPECT_EQ(c.username, "bob");
  EXPECT_EQ(c.password, "pa:ss");
  ASSERT_FALSE(tried.empty());
  EXPECT_EQ(tried.back().find("pa:ss"), std::string::npos);  // never the secret
}

TEST_F(CredentialsTest, DockerHubKeyAndLegacyKeys) {
  CredentialStore hub({std::nullopt, file(R"({"auths":{"https://index.docker.io/v1/":{"auth":")" +
                                          base64Encode("h:p") + R"("}}})")});
  EXPECT_EQ(hub.lookup("docker.io", "library/x").username, "h");
  CredentialStore legacy(
      {std::nullopt, file(R"({"auths":{"https://reg.example.com/v1/":{"auth":")" +
                          base64Encode("l:p") + R"("}}})")});
  EXPECT_EQ(legacy.lookup("reg.example.com", "x").username, "l");
  EXPECT_EQ(CredentialStore::configKey("registry-1.docker.io"), "https://index.docker.io/v1/");
}

TEST_F(CredentialsTest, TokensAndRepositoryScopedKeys) {
  CredentialStore s({std::nullopt, file(R"({"auths":{"reg.io":{"identitytoken":"idt"},
    "reg.io/team":{"registrytoken":"rt"}}})")});
  EXPECT_EQ(s.lookup("reg.io", "other").identityToken, "idt");
  EXPECT_EQ(s.lookup("reg.io", "team/app").registryToken, "rt");
}

TEST_F(CredentialsTest, CredHelpersWinOverCredsStoreAndAuths) {
  helper("one",
         "read url; echo "
         "\"{\\\"ServerURL\\\":\\\"$url\\\",\\\"Username\\\":\\\"u1\\\",\\\"Secret\\\":\\\"s1\\\"}"
         "\"\n");
  helper("store", "read url; echo '{\"Username\":\"<token>\",\"Secret\":\"refresh\"}'\n");
  helper("none", "echo 'credentials not found in native keychain'; exit 1\n");
  helper("broken", "echo 'keychain locked'; exit 1\n");
  std::string cfg =
      R"({"credsStore":"store","credHelpers":{"a.io":"one","c.io":"none","d.io":"broken"},
    "auths":{"a.io":{"auth":")" +
      base64Encode("x:y") + R"("},"c.io":{"auth":")" + base64Encode("inline:p") + R"("}}})";
  CredentialStore s({std::nullopt, file(cfg)});
  auto a = s.lookup("a.io", "r");
  EXPECT_EQ(a.username, "u1");
  EXPECT_EQ(a.password, "s1");
  EXPECT_NE(a.source.find("docker-credential-one"), std::string::npos);
  auto b = s.lookup("b.io", "r");  // credsStore
  EXPECT_EQ(b.identityToken, "refresh");
  EXPECT_TRUE(b.username.empty());
  EXPECT_EQ(s.lookup("c.io", "r").username, "inline");  // helper has none: fall back to auths
  EXPECT_THROW(s.lookup("d.io", "r"), Error);
}

TEST_F(CredentialsTest, ExplicitCredsWin) {
  CredentialStore s({std::string("me:secret"), ""});
  std::vector<std::string> tried;
  auto c = s.lookup("any.io", "x", &tried);
  EXPECT_EQ(c.username, "me");
  EXPECT_EQ(c.password, "secret");
  EXPECT_EQ(tried.at(0).find("secret"), std::string::npos);
  EXPECT_THROW(CredentialStore({std::string(":x"), ""}).lookup("a", "b"), Error);
}

TEST_F(CredentialsTest, MissingAuthfileIsAnError) {
  EXPECT_THROW(CredentialStore({std::nullopt, (dir_ / "nope.json").string()}).lookup("a", "b"),
               Error);
}

}  // namespace snapimport::registry
