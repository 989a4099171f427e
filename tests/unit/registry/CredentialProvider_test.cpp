#include "registry/CredentialProvider.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "registry/Authorizer.h"
#include "registry/Error.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace snapimport::registry {
namespace {

constexpr const char* kV1 = "credentialprovider.kubelet.k8s.io/v1";
constexpr const char* kSecret = "s3cr3t-pa55word";

std::string response(const std::string& cacheKeyType, const std::string& cacheDuration,
                     const std::string& auth) {
  std::string r = std::string(R"({"apiVersion":")") + kV1 +
                  R"(","kind":"CredentialProviderResponse","cacheKeyType":")" + cacheKeyType + "\"";
  if (!cacheDuration.empty()) r += R"(,"cacheDuration":")" + cacheDuration + "\"";
  return r + R"(,"auth":)" + auth + "}";
}

std::string authFor(const std::string& key, const std::string& user = "alice") {
  return R"({")" + key + R"(":{"username":")" + user + R"(","password":")" + kSecret + R"("}})";
}

TEST(ProviderResponse, ParsesKubeletsFormat) {
  auto r = parseProviderResponse(
      response("Registry", "1h30m",
               R"({"*.reg.io":{"username":"u1","password":"p1"},"reg.io/team":{"username":"u2"}})"),
      kV1);
  EXPECT_EQ(r.cacheKeyType, CacheKeyType::Registry);
  ASSERT_TRUE(r.cacheDuration);
  EXPECT_EQ(*r.cacheDuration, 90min);
  ASSERT_EQ(r.auth.size(), 2u);
  EXPECT_EQ(r.auth[0].key, "*.reg.io");
  EXPECT_EQ(r.auth[0].username, "u1");
  EXPECT_EQ(r.auth[0].password, "p1");
  EXPECT_EQ(r.auth[1].password, "");

  auto minimal =
      parseProviderResponse(std::string(R"({"apiVersion":")") + kV1 +
                                R"(","kind":"CredentialProviderResponse","cacheKeyType":"Image"})",
                            kV1);
  EXPECT_FALSE(minimal.cacheDuration);
  EXPECT_TRUE(minimal.auth.empty());
}

TEST(ProviderResponse, ErrorsSayWhatIsWrongWithoutQuotingSecrets) {
  struct Case {
    std::string text;
    std::string want;
  };
  const std::string pw = kSecret;
  const Case cases[] = {
      {"not json " + pw, "not valid JSON"},
      {R"({"auth": {"reg.io": {"password": ")" + pw + "\"}", "not valid JSON"},  // truncated
      {"[\"" + pw + "\"]", "not a JSON object"},
      {response("Image", "", authFor("reg.io")).replace(15, 2, "v2"), "apiVersion"},
      {std::string(R"({"apiVersion":")") + kV1 +
           R"(","kind":"CredentialProviderRequest","cacheKeyType":"Image"})",
       "has kind \"CredentialProviderRequest\""},
      {response("Repository", "", authFor("reg.io")), "cacheKeyType \"Repository\""},
      {response("", "", authFor("reg.io")), "cacheKeyType \"\""},
      {response("Image", "5 minutes", authFor("reg.io")), "cacheDuration"},
      {response("Image", "", "[\"" + pw + "\"]"), "auth field that is not an object"},
      {response("Image", "", R"({"reg.io": ")" + pw + "\"}"), "auth entry that is not an object"},
      {response("Image", "",
                R"({"reg.io": {"username": "u", "password": ")" + pw + R"(", "token": "x"}})"),
       "unknown field \"token\""},
      {response("Image", "", R"({"reg.io": {"username": 7, "password": ")" + pw + "\"}}"),
       "username in auth[\"reg.io\"] is not a string"},
      {response("Image", "", authFor("reg.io")).insert(1, R"("extra":")" + pw + "\","),
       "unknown field \"extra\""},
      {std::string((1 << 20) + 1, ' '), "larger than 1 MiB"},
  };
  for (const auto& c : cases) {
    try {
      parseProviderResponse(c.text, kV1);
      ADD_FAILURE() << "no error for: " << c.text.substr(0, 200);
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find(c.want), std::string::npos) << "want '" << c.want << "' in: " << what;
      EXPECT_EQ(what.find(pw), std::string::npos) << "the secret is in: " << what;
    }
  }
}

TEST(ProviderRequest, IsKubeletsRequest) {
  auto j = nlohmann::json::parse(providerRequest(kV1, "reg.io:5000/team/app"));
  EXPECT_EQ(j["apiVersion"], kV1);
  EXPECT_EQ(j["kind"], "CredentialProviderRequest");
  EXPECT_EQ(j["image"], "reg.io:5000/team/app");
  EXPECT_EQ(j.size(), 3u);
}

// A plugin under a temp dir: records each request, answers with the file `response` (after
// `sleep` seconds if that file exists), or fails as `fail` says.
class ProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("provider-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "bin");
    plugin("test-provider");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void plugin(const std::string& name) {
    auto p = dir_ / "bin" / name;
    std::string d = dir_.string();
    std::ofstream(p) << "#!/bin/sh\n"
                     << "req=$(cat)\n"
                     << "echo \"$req\" >> " << d << "/" << name << ".requests\n"
                     << "[ -f " << d << "/sleep ] && sleep $(cat " << d << "/sleep)\n"
                     << "if [ -f " << d << "/fail ]; then cat " << d << "/fail >&2; exit 1; fi\n"
                     << "cat " << d << "/" << name << ".response 2>/dev/null || cat " << d
                     << "/response\n";
    fs::permissions(p, fs::perms::owner_all);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  int requests(const std::string& name = "test-provider") {
    std::ifstream in(dir_ / (name + ".requests"));
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }

  CredentialProviderSpec spec(const std::string& name = "test-provider",
                              std::vector<std::string> match = {"*.io", "*.io:5000"},
                              std::chrono::nanoseconds defaultCache = 0ns) {
    CredentialProviderSpec s;
    s.name = name;
    s.matchImages = std::move(match);
    s.defaultCacheDuration = defaultCache;
    s.apiVersion = kV1;
    s.source = "/test.yaml";
    return s;
  }
  CredentialProviderOptions options(std::chrono::milliseconds timeout = 5s) {
    return {(dir_ / "bin").string(), timeout, [this] { return start_ + offset_.load(); }};
  }
  void advance(std::chrono::nanoseconds d) { offset_ = offset_.load() + d; }

  fs::path dir_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<std::chrono::nanoseconds> offset_{0ns};
};

TEST_F(ProviderTest, SendsTheRequestAndReturnsTheMatchingAuth) {
  write("response", response("Image", "1h", authFor("reg.io")));
  CredentialProvider p(spec(), options());
  auto r = p.provide("reg.io/team/app");
  ASSERT_TRUE(r.auth);
  EXPECT_EQ(r.auth->username, "alice");
  EXPECT_EQ(r.auth->password, kSecret);
  EXPECT_EQ(r.auth->key, "reg.io");
  EXPECT_FALSE(r.cached);
  EXPECT_EQ(r.expires, start_ + 1h);
  std::ifstream in(dir_ / "test-provider.requests");
  std::string line;
  std::getline(in, line);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["image"], "reg.io/team/app");
  EXPECT_EQ(j["kind"], "CredentialProviderRequest");
  EXPECT_EQ(j["apiVersion"], kV1);
}

TEST_F(ProviderTest, ImageCacheKeyIsPerImage) {
  write("response", response("Image", "1h", authFor("*.io")));
  CredentialProvider p(spec(), options());
  p.provide("reg.io/a");
  EXPECT_TRUE(p.provide("reg.io/a").cached);
  EXPECT_EQ(p.runs(), 1u);
  EXPECT_FALSE(p.provide("reg.io/b").cached);
  EXPECT_EQ(p.runs(), 2u);
  EXPECT_EQ(requests(), 2);
}

TEST_F(ProviderTest, RegistryCacheKeyCoversTheRegistry) {
  write("response", response("Registry", "1h", authFor("*.io")));
  CredentialProvider p(spec(), options());
  p.provide("reg.io/a");
  EXPECT_TRUE(p.provide("reg.io/b/c").cached);
  EXPECT_EQ(p.runs(), 1u);
  p.provide("other.io/a");
  EXPECT_EQ(p.runs(), 2u);
  p.provide("reg.io:5000/a");  // the port is part of the registry
  EXPECT_EQ(p.runs(), 3u);
}

TEST_F(ProviderTest, GlobalCacheKeyCoversEveryImage) {
  write("response", response("Global", "1h", authFor("*.io")));
  CredentialProvider p(spec(), options());
  p.provide("reg.io/a");
  p.provide("other.io/b");
  p.provide("third.io:5000/c");
  EXPECT_EQ(p.runs(), 1u);
}

TEST_F(ProviderTest, CacheDurationExpires) {
  write("response", response("Registry", "1m", authFor("reg.io")));
  CredentialProvider p(spec(), options());
  p.provide("reg.io/a");
  advance(59s);
  EXPECT_TRUE(p.provide("reg.io/a").cached);
  advance(2s);
  auto r = p.provide("reg.io/a");
  EXPECT_FALSE(r.cached);
  EXPECT_EQ(p.runs(), 2u);
  EXPECT_EQ(r.expires, start_ + 61s + 1min);
}

TEST_F(ProviderTest, DefaultCacheDurationWhenTheResponseHasNone) {
  write("response", response("Image", "", authFor("reg.io")));
  CredentialProvider p(spec("test-provider", {"reg.io"}, 30s), options());
  EXPECT_EQ(p.provide("reg.io/a").expires, start_ + 30s);
  advance(29s);
  p.provide("reg.io/a");
  EXPECT_EQ(p.runs(), 1u);
  advance(2s);
  p.provide("reg.io/a");
  EXPECT_EQ(p.runs(), 2u);
}

TEST_F(ProviderTest, ZeroCacheDurationIsNotCached) {
  write("response", response("Global", "0s", authFor("reg.io")));
  CredentialProvider p(spec("test-provider", {"reg.io"}, 1h),
                       options());  // 0s wins over the default
  auto r = p.provide("reg.io/a");
  EXPECT_EQ(r.expires, start_);
  p.provide("reg.io/a");
  p.provide("reg.io/a");
  EXPECT_EQ(p.runs(), 3u);
}

TEST_F(ProviderTest, ZeroDefaultAndNoCacheDurationIsNotCached) {
  write("response", response("Global", "", authFor("reg.io")));
  CredentialProvider p(spec("test-provider", {"reg.io"}, 0ns), options());
  p.provide("reg.io/a");
  p.provide("reg.io/a");
  EXPECT_EQ(p.runs(), 2u);
}

TEST_F(ProviderTest, MostSpecificAuthKeyWins) {
  write("response", response("Global", "1h",
                             R"({"*.io":{"username":"wild","password":"p"},)"
                             R"("reg.io":{"username":"host","password":"p"},)"
                             R"("reg.io/team":{"username":"team","password":"p"}})"));
  CredentialProvider p(spec(), options());
  EXPECT_EQ(p.provide("reg.io/team/app").auth->username, "team");
  EXPECT_EQ(p.provide("reg.io/ops/app").auth->username, "host");
  EXPECT_EQ(p.provide("x.io/ops/app").auth->username, "wild");
  EXPECT_FALSE(p.provide("reg.io:5000/team/app").auth);  // answered, but nothing for this image
  EXPECT_EQ(p.runs(), 1u);
}

TEST_F(ProviderTest, ConcurrentAsksForOneImageRunThePluginOnce) {
  write("sleep", "1");  // long enough for all eight threads to join the one run
  write("response", response("Image", "0s", authFor("reg.io")));  // not cached: only the flight
  CredentialProvider p(spec(), options());
  std::vector<std::thread> threads;
  std::atomic<int> withAuth{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (p.provide("reg.io/a").auth) ++withAuth;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(withAuth, 8);
  EXPECT_EQ(p.runs(), 1u);
  EXPECT_EQ(requests(), 1);
}

TEST_F(ProviderTest, FailureSaysWhyAndIsNotCached) {
  write("fail", "metadata service unreachable\n");
  CredentialProvider p(spec(), options());
  for (int i = 0; i < 2; ++i) {
    try {
      p.provide("reg.io/a");
      FAIL() << "no error";
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("credential provider test-provider"), std::string::npos) << what;
      EXPECT_NE(what.find("exited with status 1"), std::string::npos) << what;
      EXPECT_NE(what.find("metadata service unreachable"), std::string::npos) << what;
    }
  }
  EXPECT_EQ(p.runs(), 2u);
}

TEST_F(ProviderTest, BadResponseNeverQuotesTheCredentials) {
  write("response", response("Image", "1h", authFor("reg.io")).replace(15, 2, "v9"));
  CredentialProvider p(spec(), options());
  try {
    p.provide("reg.io/a");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("apiVersion"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(kSecret), std::string::npos) << e.what();
  }
}

TEST_F(ProviderTest, HangingPluginTimesOut) {
  write("sleep", "30");
  write("response", response("Image", "1h", authFor("reg.io")));
  CredentialProvider p(spec(), options(300ms));
  auto t0 = std::chrono::steady_clock::now();
  try {
    p.provide("reg.io/a");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not answer within 300ms"), std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(ProviderTest, ProvidersAreConsultedInOrderAndTheFirstWithAuthWins) {
  for (const char* n : {"nomatch", "empty", "failing", "good", "later"}) plugin(n);
  write("empty.response",
        response("Image", "1h", R"({"other.io":{"username":"x","password":"y"}})"));
  write("good.response", response("Registry", "1h", authFor("reg.io", "good-user")));
  write("later.response", response("Registry", "1h", authFor("reg.io", "later-user")));
  // `failing` has no response file and no global one: cat fails, so the output is empty.
  CredentialProviderConfig cfg;
  cfg.providers = {spec("nomatch", {"elsewhere.io"}), spec("empty", {"reg.io"}),
                   spec("failing", {"*.io"}), spec("good", {"reg.io/team"}),
                   spec("later", {"reg.io"})};
  CredentialProviders providers(cfg, options());
  std::vector<std::string> tried;
  auto found = providers.lookup("reg.io", "team/app", &tried);
  ASSERT_TRUE(found.credential);
  EXPECT_EQ(found.credential->username, "good-user");
  EXPECT_EQ(found.credential->password, kSecret);
  EXPECT_EQ(found.credential->source, "credential provider good auth[\"reg.io\"]");
  EXPECT_EQ(found.credential->expires, start_ + 1h);
  EXPECT_EQ(requests("nomatch"), 0);
  EXPECT_EQ(requests("empty"), 1);
  EXPECT_EQ(requests("failing"), 1);
  EXPECT_EQ(requests("later"), 0);
  ASSERT_EQ(tried.size(), 3u);
  EXPECT_EQ(tried[0], "credential provider empty (no auth entry for reg.io/team/app)");
  EXPECT_NE(tried[1].find("credential provider failing (failed: "), std::string::npos) << tried[1];
  EXPECT_EQ(tried[2], "credential provider good auth[\"reg.io\"]");
  for (const auto& t : tried) EXPECT_EQ(t.find(kSecret), std::string::npos) << t;
}

TEST_F(ProviderTest, NothingFoundSaysWhenToAskAgain) {
  plugin("failing");
  write("fail", "boom");
  CredentialProviderConfig cfg;
  cfg.providers = {spec("failing", {"reg.io"})};
  CredentialProviders providers(cfg, options());
  std::vector<std::string> tried;
  auto r = providers.lookup("reg.io", "a", &tried);
  EXPECT_FALSE(r.credential);
  EXPECT_EQ(r.reconsiderAt, start_ + CredentialProviders::kRetryAfterFailure);

  auto none = providers.lookup("elsewhere.io", "a", &tried);
  EXPECT_FALSE(none.credential);
  EXPECT_EQ(none.reconsiderAt, std::chrono::steady_clock::time_point::max());
  EXPECT_EQ(tried.back(), "credential providers (none matches elsewhere.io/a)");
}

TEST_F(ProviderTest, UncachedAnswerServesThePullForAMoment) {
  write("response", response("Image", "0s", authFor("reg.io")));
  CredentialProviderConfig cfg;
  cfg.providers = {spec("test-provider", {"reg.io"})};
  CredentialProviders providers(cfg, options());
  auto r = providers.lookup("reg.io", "a");
  ASSERT_TRUE(r.credential);
  EXPECT_EQ(r.credential->expires, start_ + CredentialProviders::kUncachedReuse);
}

TEST_F(ProviderTest, CredentialStoreAsksProvidersBeforeTheAuthFile) {
  write("response", response("Registry", "1h", authFor("reg.io", "from-provider")));
  write("config.json", R"({"auths":{"reg.io":{"username":"from-file","password":"x"},)"
                       R"("other.io":{"username":"file-other","password":"x"}}})");
  CredentialProviderConfig cfg;
  cfg.providers = {spec("test-provider", {"reg.io", "other.io"})};
  CredentialOptions o;
  o.authFile = (dir_ / "config.json").string();
  o.providers = std::make_shared<CredentialProviders>(cfg, options());
  CredentialStore store(o);
  std::vector<std::string> tried;
  Credential c = store.lookup("reg.io", "team/app", &tried);
  EXPECT_EQ(c.username, "from-provider");
  EXPECT_EQ(c.expires, start_ + 1h);
  // For other.io the answer has no entry: the file serves, until the provider is due again.
  Credential f = store.lookup("other.io", "team/app", &tried);
  EXPECT_EQ(f.username, "file-other");
  EXPECT_EQ(f.expires, start_ + 1h);
}

TEST_F(ProviderTest, AuthorizerSendsProviderCredentialsToTheRegistryOnlyNotItsMirrors) {
  write("response", response("Registry", "1h", authFor("reg.io:5000", "bob")));
  CredentialProviderConfig cfg;
  cfg.providers = {spec("test-provider", {"reg.io:5000"})};
  CredentialOptions o;
  o.authFile = (dir_ / "none.json").string();
  std::ofstream(o.authFile) << "{}";
  o.providers = std::make_shared<CredentialProviders>(cfg, options());
  HttpTransport transport;
  Authorizer auth(transport, CredentialStore(o));
  RegistryHost origin, mirror;
  origin.host = "reg.io:5000";
  mirror.host = "mirror.example.com";
  mirror.isMirror = true;
  Scopes scopes;
  scopes.addRepository("team/app", "pull");
  HttpHeaders challenge;
  challenge.add("WWW-Authenticate", "Basic realm=\"r\"");
  ASSERT_TRUE(auth.handleUnauthorized(origin, scopes, challenge, false));
  ASSERT_TRUE(auth.handleUnauthorized(mirror, scopes, challenge, false));
  EXPECT_EQ(auth.authorization(origin, "reg.io:5000", "team/app", scopes),
            "Basic " + base64Encode(std::string("bob:") + kSecret));
  EXPECT_EQ(auth.authorization(mirror, "reg.io:5000", "team/app", scopes), "");
}

TEST_F(ProviderTest, LoadChecksThePluginsLikeKubelet) {
  auto cfgFile = (dir_ / "providers.yaml").string();
  auto cfgText = [](const std::string& name) {
    return "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n"
           "  - name: " +
           name +
           "\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
           "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n";
  };
  std::ofstream(cfgFile) << cfgText("test-provider");
  auto loaded = CredentialProviders::load(cfgFile, (dir_ / "bin").string(), 2s);
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(loaded->at(0).program(), (dir_ / "bin" / "test-provider").string());

  auto errorOf = [&](const std::string& binDir) -> std::string {
    try {
      CredentialProviders::load(cfgFile, binDir, 2s);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(errorOf((dir_ / "nope").string()).find("plugin directory"), std::string::npos);
  std::ofstream(cfgFile) << cfgText("absent");
  std::string e = errorOf((dir_ / "bin").string());
  EXPECT_NE(e.find(cfgFile), std::string::npos) << e;
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  std::ofstream(dir_ / "bin" / "noexec") << "#!/bin/sh\n";
  fs::permissions(dir_ / "bin" / "noexec", fs::perms::owner_read | fs::perms::owner_write);
  std::ofstream(cfgFile) << cfgText("noexec");
  e = errorOf((dir_ / "bin").string());
  EXPECT_NE(e.find("is not executable"), std::string::npos) << e;
  std::ofstream(cfgFile) << "kind: Nope\n";
  e = errorOf((dir_ / "bin").string());
  EXPECT_NE(e.find(cfgFile), std::string::npos) << e;
}

}  // namespace
}  // namespace snapimport::registry
