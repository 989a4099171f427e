#include "registry/CredentialProviderConfig.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "registry/Error.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace snapimport::registry {
namespace {

const char* kYaml = R"(apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages:
      - "*.dkr.ecr.*.amazonaws.com"
      - registry.io:8080/path
    defaultCacheDuration: 12h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials, --verbose]
    env:
      - name: AWS_PROFILE
        value: nodes
  - name: second
    matchImages: ["reg.example.com"]
    defaultCacheDuration: "0"
    apiVersion: credentialprovider.kubelet.k8s.io/v1beta1
)";

TEST(CredentialProviderConfig, ParsesKubeletYaml) {
  auto cfg = CredentialProviderConfig::parse(kYaml, "/etc/kubernetes/credential-providers.yaml");
  ASSERT_EQ(cfg.providers.size(), 2u);
  const auto& p = cfg.providers[0];
  EXPECT_EQ(p.name, "ecr-credential-provider");
  EXPECT_EQ(p.matchImages,
            (std::vector<std::string>{"*.dkr.ecr.*.amazonaws.com", "registry.io:8080/path"}));
  EXPECT_EQ(p.defaultCacheDuration, 12h);
  EXPECT_EQ(p.apiVersion, "credentialprovider.kubelet.k8s.io/v1");
  EXPECT_EQ(p.args, (std::vector<std::string>{"get-credentials", "--verbose"}));
  ASSERT_EQ(p.env.size(), 1u);
  EXPECT_EQ(p.env[0].first, "AWS_PROFILE");
  EXPECT_EQ(p.env[0].second, "nodes");
  EXPECT_EQ(p.source, "/etc/kubernetes/credential-providers.yaml");
  EXPECT_EQ(cfg.providers[1].defaultCacheDuration, 0ns);
  EXPECT_TRUE(cfg.providers[1].args.empty());
}

TEST(CredentialProviderConfig, ParsesJson) {
  auto cfg = CredentialProviderConfig::parse(
      "{\n\t\"apiVersion\": \"kubelet.config.k8s.io/v1\", \"kind\": \"CredentialProviderConfig\",\n"
      "\t\"providers\": [{\"name\": \"p\", \"matchImages\": [\"*.azurecr.io\"],\n"
      "\t  \"defaultCacheDuration\": \"10m30s\", \"apiVersion\": "
      "\"credentialprovider.kubelet.k8s.io/v1\"}]}",
      "cfg.json");
  ASSERT_EQ(cfg.providers.size(), 1u);
  EXPECT_EQ(cfg.providers[0].defaultCacheDuration, 10min + 30s);
}

std::string errorOf(const std::string& text) {
  try {
    CredentialProviderConfig::parse(text, "/cfg.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Invalid);
    return e.what();
  }
  return "no error";
}

std::string withProvider(const std::string& body) {
  return "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n" +
         body;
}

const char* kGood =
    "  - name: p\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n";

TEST(CredentialProviderConfig, ErrorsNameTheFileAndTheField) {
  struct Case {
    std::string text;
    std::string want;
  };
  const Case cases[] = {
      {"apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\nproviders: []\n", "kind"},
      {"apiVersion: kubelet.config.k8s.io/v2\nkind: CredentialProviderConfig\n", "apiVersion"},
      {"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n", "providers"},
      {"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: []\n",
       "at least one provider"},
      {"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nextra: 1\n" +
           std::string("providers:\n") + kGood,
       "extra: unknown field"},
      {withProvider("  - matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "providers[0].name: is required"},
      {withProvider("  - name: ../evil\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "must not contain '/'"},
      {withProvider("  - name: '..'\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "not a file name"},
      {withProvider("  - name: 'a b'\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "spaces"},
      {withProvider(std::string(kGood) + kGood), "providers[1].name: \"p\" is used by an earlier"},
      {withProvider("  - name: p\n    defaultCacheDuration: 1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "providers[0].matchImages: at least one pattern"},
      {withProvider("  - name: p\n    matchImages: ['reg.io:port']\n    defaultCacheDuration: 1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "providers[0].matchImages[0]"},
      {withProvider("  - name: p\n    matchImages: [reg.io]\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "defaultCacheDuration: is required"},
      {withProvider("  - name: p\n    matchImages: [reg.io]\n    defaultCacheDuration: 12hours\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "defaultCacheDuration: must be a duration"},
      {withProvider("  - name: p\n    matchImages: [reg.io]\n    defaultCacheDuration: -1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
       "must not be negative"},
      {withProvider("  - name: p\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"),
       "providers[0].apiVersion: is required"},
      {withProvider("  - name: p\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
                    "    apiVersion: credentialprovider.kubelet.k8s.io/v2\n"),
       "is not supported"},
      {withProvider(std::string(kGood) +
                    "    tokenAttributes:\n      serviceAccountTokenAudience: x\n"),
       "tokenAttributes: service account token providers are not supported"},
      {withProvider(std::string(kGood) + "    env:\n      - name: A\n        valu: b\n"),
       "providers[0].env[0].valu: unknown field"},
      {withProvider(std::string(kGood) + "    env:\n      - value: b\n"), "env[0].name"},
      {withProvider(std::string(kGood) + "    args: {a: b}\n"), "args: must be a list"},
      {withProvider(std::string(kGood) + "    matchImage: [x]\n"),
       "providers[0].matchImage: unknown field"},
      {withProvider(std::string(kGood) + "    name: q\n"), "is given twice"},
      {"providers: [\n", "is not valid YAML (line"},
      {"{\"apiVersion\": ", "is not valid JSON"},
      {"{\"apiVersion\": 1, \"kind\": \"CredentialProviderConfig\", \"providers\": []}",
       "apiVersion: must be a string"},
      {"- a\n- b\n", "must hold a CredentialProviderConfig object"},
  };
  for (const auto& c : cases) {
    std::string e = errorOf(c.text);
    EXPECT_NE(e.find("credential provider config /cfg.yaml: "), std::string::npos) << e;
    EXPECT_NE(e.find(c.want), std::string::npos) << "want '" << c.want << "' in: " << e;
  }
}

class CredentialProviderConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cpc-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  std::string provider(const std::string& name) {
    return withProvider("  - name: " + name +
                        "\n    matchImages: [reg.io]\n    defaultCacheDuration: 1h\n"
                        "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n");
  }
  fs::path dir_;
};

TEST_F(CredentialProviderConfigFiles, LoadsOneFile) {
  auto cfg = CredentialProviderConfig::load(write("c.yaml", provider("one")));
  ASSERT_EQ(cfg.providers.size(), 1u);
  EXPECT_EQ(cfg.providers[0].source, (dir_ / "c.yaml").string());
}

TEST_F(CredentialProviderConfigFiles, DirectoryMergesInLexicographicOrder) {
  write("20-b.yml", provider("b"));
  write("10-a.json",
        R"({"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig",)"
        R"("providers":[{"name":"a","matchImages":["reg.io"],"defaultCacheDuration":"1h",)"
        R"("apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]})");
  write("30-c.yaml", provider("c"));
  write("README.md", "not a config");
  auto cfg = CredentialProviderConfig::load(dir_.string());
  ASSERT_EQ(cfg.providers.size(), 3u);
  EXPECT_EQ(cfg.providers[0].name, "a");
  EXPECT_EQ(cfg.providers[1].name, "b");
  EXPECT_EQ(cfg.providers[2].name, "c");
  EXPECT_EQ(cfg.providers[2].source, (dir_ / "30-c.yaml").string());
}

TEST_F(CredentialProviderConfigFiles, DuplicateNamesAcrossFilesAreAnError) {
  write("a.yaml", provider("same"));
  write("b.yaml", provider("same"));
  try {
    CredentialProviderConfig::load(dir_.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "b.yaml").string()), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("already used"), std::string::npos) << e.what();
  }
}

TEST_F(CredentialProviderConfigFiles, MissingFileAndEmptyDirectory) {
  EXPECT_THROW(CredentialProviderConfig::load((dir_ / "absent.yaml").string()), Error);
  try {
    CredentialProviderConfig::load(dir_.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds no"), std::string::npos) << e.what();
  }
}

TEST(GoDuration, ParsesWhatGoParses) {
  struct Case {
    const char* text;
    std::chrono::nanoseconds want;
  };
  const Case good[] = {
      {"0", 0ns},
      {"0s", 0ns},
      {"+0", 0ns},
      {"-0", 0ns},
      {"5s", 5s},
      {"30m", 30min},
      {"12h", 12h},
      {"1h30m", 90min},
      {"2h45m10s", 2h + 45min + 10s},
      {"300ms", 300ms},
      {"1.5h", 90min},
      {".5s", 500ms},
      {"1.s", 1s},
      {"10us", 10us},
      {"10\xC2\xB5s", 10us},
      {"10\xCE\xBCs", 10us},
      {"7ns", 7ns},
      {"-1m", -1min},
      {"1m0.5s", 60500ms},
      {"2562047h47m16.854775807s", std::chrono::nanoseconds(INT64_MAX)},
  };
  for (const auto& c : good) {
    std::chrono::nanoseconds got{-42};
    EXPECT_TRUE(parseGoDuration(c.text, got)) << c.text;
    EXPECT_EQ(got, c.want) << c.text;
  }
  for (const char* bad : {"", "1", "s", "1x", "1 h", "h1", "1h-1m", ".s", "-", "+", "1.2.3s",
                          "9999999999999999999h", "2562047h47m16.854775808s", "1H"}) {
    std::chrono::nanoseconds got;
    EXPECT_FALSE(parseGoDuration(bad, got)) << bad;
  }
}

}  // namespace
}  // namespace snapimport::registry
