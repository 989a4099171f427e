#include "registry/Hosts.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "registry/Error.h"

namespace fs = std::filesystem;

namespace snapimport::registry {

// GCC 12 warns (missing-field-initializers) even for designated initializers.
HostsOptions opts(std::string hostsDir, std::optional<bool> tlsVerify = std::nullopt) {
  HostsOptions o;
  o.hostsDir = std::move(hostsDir);
  o.tlsVerify = tlsVerify;
  return o;
}

class HostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("hosts-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const std::string& dir, const std::string& name, const std::string& text) {
    fs::create_directories(root_ / dir);
    std::ofstream(root_ / dir / name) << text;
  }
  fs::path root_;
};

TEST_F(HostsTest, DefaultsWithoutConfiguration) {
  auto h = resolveHosts("docker.io", opts(root_.string()));
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].baseUrl(), "https://registry-1.docker.io/v2");
  EXPECT_FALSE(h[0].isMirror);
  EXPECT_TRUE(h[0].tls.verify);
  auto l = resolveHosts("localhost:5000", opts(""));
  EXPECT_TRUE(l[0].httpFallback);
  EXPECT_FALSE(l[0].tls.verify);
  auto q = resolveHosts("quay.io", opts(""));
  EXPECT_FALSE(q[0].httpFallback);
  EXPECT_TRUE(q[0].tls.verify);
}

TEST_F(HostsTest, LookupOrder) {
  write("_default", "hosts.toml", "server = \"https://default.example\"\n");
  write("reg.io:5000", "hosts.toml", "server = \"https://colon.example\"\n");
  write("reg.io_5000_", "hosts.toml", "server = \"https://underscore.example\"\n");
  EXPECT_EQ(resolveHosts("reg.io:5000", opts(root_.string())).back().host, "underscore.example");
  fs::remove_all(root_ / "reg.io_5000_");
  EXPECT_EQ(resolveHosts("reg.io:5000", opts(root_.string())).back().host, "colon.example");
  EXPECT_EQ(resolveHosts("other.io", opts(root_.string())).back().host, "default.example");
  // Several roots: the first one with a match wins.
  EXPECT_EQ(resolveHosts("other.io", opts("/nonexistent:" + root_.string())).back().host,
            "default.example");
}

TEST_F(HostsTest, MirrorsInFileOrderThenServer) {
  write("docker.io", "hosts.toml", R"(
server = "https://registry-1.docker.io"

[host."https://zzz-mirror.example/some/path"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  client = [["c.cert", "c.key"]]
  [host."https://zzz-mirror.example/some/path".header]
    x-custom = ["a", "b"]

[host."http://aaa-mirror.example:8080"]
  capabilities = ["pull"]
  skip_verify = true
  override_path = true

[host."mirror3.example"]
)");
  auto h = resolveHosts("docker.io", opts(root_.string()));
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].baseUrl(), "https://zzz-mirror.example/some/path/v2");
  EXPECT_TRUE(h[0].can(kPull | kResolve));
  EXPECT_FALSE(h[0].can(kPush));
  EXPECT_EQ(h[0].tls.caFiles.at(0), (root_ / "docker.io" / "ca.pem").string());
  EXPECT_EQ(h[0].tls.clientCert, (root_ / "docker.io" / "c.cert").string());
  EXPECT_EQ(h[0].headers.getAll("x-custom").size(), 2u);
  EXPECT_TRUE(h[0].isMirror);
  EXPECT_EQ(h[1].baseUrl(), "http://aaa-mirror.example:8080");
  EXPECT_FALSE(h[1].tls.verify);
  EXPECT_FALSE(h[1].can(kResolve));
  EXPECT_EQ(h[2].baseUrl(), "https://mirror3.example/v2");
  EXPECT_EQ(h[3].baseUrl(), "https://registry-1.docker.io/v2");
  EXPECT_FALSE(h[3].isMirror);
}

TEST_F(HostsTest, UnknownCapabilityIsAnError) {
  write("reg.io", "hosts.toml",
        "[host.\"https://m.example\"]\ncapabilities = [\"pull\", \"fly\"]\n");
  EXPECT_THROW(resolveHosts("reg.io", opts(root_.string())), Error);
}

TEST_F(HostsTest, UnparsableFileFallsBackToCertificates) {
  write("reg.io", "hosts.toml", "this is [ not toml");
  write("reg.io", "ca.crt", "x");
  write("reg.io", "client.cert", "x");
  write("reg.io", "client.key", "x");
  auto h = resolveHosts("reg.io", opts(root_.string()));
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].tls.caFiles.size(), 1u);
  EXPECT_EQ(h[0].tls.clientKey, (root_ / "reg.io" / "client.key").string());
}

TEST_F(HostsTest, TlsVerifyFalseAllowsHttpFallback) {
  auto h = resolveHosts("reg.example", opts("", false));
  EXPECT_FALSE(h[0].tls.verify);
  EXPECT_TRUE(h[0].httpFallback);
}

// --tls-verify=true: the loopback rule (plain http, unverified https) no longer applies.
TEST_F(HostsTest, TlsVerifyTrueVerifiesLoopbackToo) {
  for (const char* r : {"127.0.0.1:5000", "localhost:5000", "[::1]:5000"}) {
    auto unset = resolveHosts(r, opts(""));
    ASSERT_EQ(unset.size(), 1u);
    EXPECT_TRUE(unset[0].httpFallback) << r;
    EXPECT_FALSE(unset[0].tls.verify) << r;
    auto forced = resolveHosts(r, opts("", true));
    ASSERT_EQ(forced.size(), 1u);
    EXPECT_EQ(forced[0].baseUrl(), std::string("https://") + r + "/v2");
    EXPECT_FALSE(forced[0].httpFallback) << r;
    EXPECT_TRUE(forced[0].tls.verify) << r;
  }
  // A remote registry is verified either way.
  EXPECT_TRUE(resolveHosts("quay.io", opts("", true))[0].tls.verify);
}

// Forced verification also overrides what hosts.toml relaxes (http:// hosts, skip_verify),
// keeping its mirrors, CAs and order.
TEST_F(HostsTest, TlsVerifyTrueOverridesHostsToml) {
  write("127.0.0.1_5000_", "hosts.toml", R"(
server = "http://127.0.0.1:5000"
skip_verify = true
ca = "ca.pem"

[host."http://127.0.0.1:6000"]
  capabilities = ["pull"]
)");
  auto configured = resolveHosts("127.0.0.1:5000", opts(root_.string()));
  ASSERT_EQ(configured.size(), 2u);
  EXPECT_EQ(configured[0].baseUrl(), "http://127.0.0.1:6000/v2");
  EXPECT_EQ(configured[1].baseUrl(), "http://127.0.0.1:5000/v2");
  EXPECT_FALSE(configured[1].tls.verify);

  auto forced = resolveHosts("127.0.0.1:5000", opts(root_.string(), true));
  ASSERT_EQ(forced.size(), 2u);
  EXPECT_EQ(forced[0].baseUrl(), "https://127.0.0.1:6000/v2");
  EXPECT_EQ(forced[1].baseUrl(), "https://127.0.0.1:5000/v2");
  for (const auto& h : forced) {
    EXPECT_TRUE(h.tls.verify) << h.baseUrl();
    EXPECT_FALSE(h.httpFallback) << h.baseUrl();
  }
  EXPECT_EQ(forced[1].tls.caFiles.at(0), (root_ / "127.0.0.1_5000_" / "ca.pem").string());
}

}  // namespace snapimport::registry
