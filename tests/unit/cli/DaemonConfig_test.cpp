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

TEST(DaemonConfig, DefaultFileParsesToTheDefaults) {
  DaemonConfig d = DaemonConfig::parse(DaemonConfig::defaultFile(), "default.toml");
  DaemonConfig want;
  EXPECT_EQ(d.root, want.root);
  EXPECT_EQ(d.address, want.address);
  EXPECT_EQ(d.adminAddress, want.adminAddress);
  EXPECT_EQ(d.log.level, want.log.level);
  EXPECT_EQ(d.log.format, want.log.format);
  EXPECT_EQ(d.metrics.address, want.metrics.address);
  EXPECT_EQ(d.registry.hostsDir, want.registry.hostsDir);
  EXPECT_EQ(d.registry.authFile, want.registry.authFile);
  EXPECT_EQ(d.registry.credentialProviderConfig, want.registry.credentialProviderConfig);
  EXPECT_EQ(d.registry.credentialProviderBinDir, want.registry.credentialProviderBinDir);
  EXPECT_EQ(d.registry.credentialProviderTimeout, want.registry.credentialProviderTimeout);
  EXPECT_EQ(d.import.enabled, want.import.enabled);
  EXPECT_EQ(d.import.keepCompressedBlobs, want.import.keepCompressedBlobs);
  EXPECT_EQ(d.import.maxConcurrentLayers, want.import.maxConcurrentLayers);
  EXPECT_EQ(d.import.maxConcurrentPerRegistry, want.import.maxConcurrentPerRegistry);
  EXPECT_EQ(d.import.stagingGracePeriod, want.import.stagingGracePeriod);
  EXPECT_EQ(d.import.writebackInterval, want.import.writebackInterval);
  EXPECT_EQ(d.import.directWriteMinSize, want.import.directWriteMinSize);
  EXPECT_EQ(d.import.backgroundLayerNice, want.import.backgroundLayerNice);
  EXPECT_EQ(d.timeouts.connect, want.timeouts.connect);
  EXPECT_EQ(d.timeouts.stall, want.timeouts.stall);
  EXPECT_EQ(d.timeouts.layer, want.timeouts.layer);
  EXPECT_EQ(d.timeouts.shutdown, want.timeouts.shutdown);
  EXPECT_EQ(d.limits.maxManifestBytes, want.limits.maxManifestBytes);
  EXPECT_EQ(d.limits.maxConfigBytes, want.limits.maxConfigBytes);
  EXPECT_EQ(d.limits.maxLayerBytes, want.limits.maxLayerBytes);
  EXPECT_EQ(d.limits.maxLayerEntries, want.limits.maxLayerEntries);
  EXPECT_EQ(d.limits.maxPathBytes, want.limits.maxPathBytes);
  EXPECT_EQ(d.limits.maxPaxHeaderBytes, want.limits.maxPaxHeaderBytes);
}

TEST(DaemonConfig, EveryKeyIsDocumented) {
  // Each key line in the default file follows a comment line.
  std::string f = DaemonConfig::defaultFile();
  std::string prev;
  size_t keys = 0;
  for (size_t pos = 0; pos < f.size();) {
    size_t nl = f.find('\n', pos);
    std::string line = f.substr(pos, nl - pos);
    if (line.find(" = ") != std::string::npos && line[0] != '#') {
      ++keys;
      EXPECT_EQ(prev.rfind("# ", 0), 0u) << "undocumented: " << line;
    }
    prev = line;
    pos = nl + 1;
  }
  EXPECT_EQ(keys, 34u);
}

TEST(DaemonConfig, SectionsAndValues) {
  DaemonConfig c = DaemonConfig::parse(
      "[log]\nlevel = \"debug\"\nformat = \"json\"\n"
      "[metrics]\naddress = \"127.0.0.1:9651\"\n"
      "[import]\nenabled = false\nmax_concurrent_layers = 3\nmax_concurrent_write_imports = 0\n"
      "diff_service = true\nwriteback_interval = \"0s\"\ndirect_write_min_size = \"0\"\n"
      "background_layer_nice = 0\n"
      "[timeouts]\nconnect = \"250ms\"\nlayer = \"0s\"\n"
      "[limits]\nmax_layer_bytes = \"2GiB\"\nmax_manifest_bytes = 1000\n",
      "f.toml");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(c.metrics.address, "127.0.0.1:9651");
  EXPECT_FALSE(c.import.enabled);
  EXPECT_EQ(c.import.maxConcurrentLayers, 3);
  EXPECT_EQ(c.import.maxConcurrentWriteImports, 0);
  EXPECT_EQ(DaemonConfig{}.import.maxConcurrentWriteImports, 4);
  EXPECT_TRUE(c.import.diffService);
  EXPECT_FALSE(DaemonConfig{}.import.diffService);
  EXPECT_EQ(c.import.writebackInterval, std::chrono::milliseconds(0));
  EXPECT_EQ(DaemonConfig{}.import.writebackInterval, std::chrono::milliseconds(100));
  EXPECT_EQ(c.import.directWriteMinSize, 0u);
  EXPECT_EQ(DaemonConfig{}.import.directWriteMinSize, 256u << 10);
  EXPECT_EQ(c.import.backgroundLayerNice, 0);
  EXPECT_EQ(DaemonConfig{}.import.backgroundLayerNice, 19);
  EXPECT_EQ(c.timeouts.connect, std::chrono::milliseconds(250));
  EXPECT_EQ(c.timeouts.layer, std::chrono::milliseconds(0));
  EXPECT_EQ(c.limits.maxLayerBytes, 2ull << 30);
  EXPECT_EQ(c.limits.maxManifestBytes, 1000u);
}

TEST(DaemonConfig, UnknownKeyInSectionIsDotted) {
  std::string e = errorOf("[import]\nenabled = true\nmax_jobs = 4\n");
  EXPECT_NE(e.find("/etc/snapimport/config.toml:3: unknown key \"import.max_jobs\""),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("max_concurrent_layers"), std::string::npos)
      << "should list the known keys: " << e;
  e = errorOf("[nosuchsection]\nx = 1\n");
  EXPECT_NE(e.find("unknown key \"nosuchsection\""), std::string::npos) << e;
}

TEST(DaemonConfig, BadValuesNameKeyFileLineAndReason) {
  struct Case {
    std::string text;
    const char* want;
  } cases[] = {
      {"[log]\nlevel = \"verbose\"\n",
       "config.toml:2: key \"log.level\" has invalid value \"verbose\": must be one of debug, "
       "info, warn, error"},
      {"[log]\nformat = 1\n", "config.toml:2: key \"log.format\" must be a string, not an integer"},
      {"[import]\nenabled = \"yes\"\n",
       "config.toml:2: key \"import.enabled\" must be a boolean (true or false), not a string"},
      {"[import]\nmax_concurrent_layers = 0\n",
       "key \"import.max_concurrent_layers\" is 0, must be between 1 and 1024"},
      {"[import]\nmax_concurrent_layers = \"8\"\n",
       "key \"import.max_concurrent_layers\" must be an integer, not a string"},
      {"[timeouts]\nconnect = 30\n", "key \"timeouts.connect\" must be a duration string"},
      {"[timeouts]\nconnect = \"30 seconds\"\n",
       "key \"timeouts.connect\" has invalid duration \"30 seconds\""},
      {"[timeouts]\nstall = \"0s\"\n", "key \"timeouts.stall\" must be longer than 0"},
      {"[limits]\nmax_layer_bytes = \"lots\"\n",
       "key \"limits.max_layer_bytes\" has invalid size \"lots\""},
      {"[limits]\nmax_layer_bytes = -1\n", "key \"limits.max_layer_bytes\" must not be negative"},
      {"[metrics]\naddress = \"localhost\"\n",
       "key \"metrics.address\" has invalid address \"localhost\""},
      {"[metrics]\naddress = \"127.0.0.1:99999\"\n", "key \"metrics.address\" has invalid port"},
      {"root = \"relative/dir\"\n", "config.toml:1: key \"root\" must be an absolute path"},
      {"[registry]\nhosts_dir = \"/etc/containerd/certs.d:certs\"\n",
       "key \"registry.hosts_dir\" must list absolute directories"},
      {"log = \"debug\"\n", "key \"log\" must be a table ([log]), not a string"},
      {"address = \"/" + std::string(200, 'x') + "\"\n", "key \"address\" is 201 bytes long"},
  };
  for (const auto& c : cases) {
    std::string e = errorOf(c.text);
    EXPECT_NE(e.find(c.want), std::string::npos) << "config:\n" << c.text << "error: " << e;
    EXPECT_EQ(e.rfind("/etc/snapimport/config.toml:", 0), 0u) << e;
  }
}

TEST(DaemonConfig, CredentialProviderKeys) {
  DaemonConfig off;
  EXPECT_EQ(off.registry.credentialProviderConfig, "");  // off by default
  EXPECT_EQ(off.registry.credentialProviderBinDir, "");
  EXPECT_EQ(off.registry.credentialProviderTimeout, std::chrono::seconds(10));
  DaemonConfig c = DaemonConfig::parse(
      "[registry]\ncredential_provider_config = \"/etc/kubernetes/credential-providers.yaml\"\n"
      "credential_provider_bin_dir = "
      "\"/usr/libexec/kubernetes/kubelet-plugins/credential-provider\"\n"
      "credential_provider_timeout = \"30s\"\n",
      "f.toml");
  EXPECT_EQ(c.registry.credentialProviderConfig, "/etc/kubernetes/credential-providers.yaml");
  EXPECT_EQ(c.registry.credentialProviderBinDir,
            "/usr/libexec/kubernetes/kubelet-plugins/credential-provider");
  EXPECT_EQ(c.registry.credentialProviderTimeout, std::chrono::seconds(30));
  EXPECT_NO_THROW(c.validate());

  std::string e = errorOf("[registry]\ncredential_provider_config = \"/etc/cp.yaml\"\n");
  EXPECT_NE(e.find("/etc/snapimport/config.toml: keys \"registry.credential_provider_config\" and "
                   "\"registry.credential_provider_bin_dir\" must be set together"),
            std::string::npos)
      << e;
  e = errorOf("[registry]\ncredential_provider_bin_dir = \"/usr/libexec/cp\"\n");
  EXPECT_NE(e.find("must be set together"), std::string::npos) << e;
  e = errorOf("[registry]\ncredential_provider_config = \"cp.yaml\"\n");
  EXPECT_NE(e.find("key \"registry.credential_provider_config\" must be an absolute path"),
            std::string::npos)
      << e;
  e = errorOf("[registry]\ncredential_provider_timeout = \"0s\"\n");
  EXPECT_NE(e.find("key \"registry.credential_provider_timeout\" must be longer than 0"),
            std::string::npos)
      << e;
  DaemonConfig half;
  half.registry.credentialProviderBinDir = "/usr/libexec/cp";
  EXPECT_THROW(half.validate(), ConfigError);
}

TEST(DaemonConfig, CriProxyKeys) {
  DaemonConfig off;
  EXPECT_EQ(off.cri.imageServiceAddress, "");  // off by default
  EXPECT_EQ(off.cri.containerdAddress, "/run/containerd/containerd.sock");
  EXPECT_EQ(off.cri.credentialGracePeriod, std::chrono::seconds(10));
  DaemonConfig c = DaemonConfig::parse(
      "[cri]\nimage_service_address = \"/run/snapimport/cri.sock\"\n"
      "containerd_address = \"unix:///run/k8s/containerd.sock\"\n"
      "credential_grace_period = \"0s\"\n",
      "f.toml");
  EXPECT_EQ(c.cri.imageServiceAddress, "/run/snapimport/cri.sock");
  EXPECT_EQ(c.cri.containerdAddress, "unix:///run/k8s/containerd.sock");
  EXPECT_EQ(c.cri.credentialGracePeriod, std::chrono::seconds(0));
  EXPECT_NO_THROW(c.validate());

  std::string e = errorOf("[cri]\nimage_service_address = \"cri.sock\"\n");
  EXPECT_NE(e.find("key \"cri.image_service_address\" must be an absolute path"), std::string::npos)
      << e;
  e = errorOf("[cri]\ncontainerd_address = \"tcp://127.0.0.1:1\"\n");
  EXPECT_NE(e.find("key \"cri.containerd_address\""), std::string::npos) << e;
  e = errorOf("[cri]\nimage_service_address = \"/run/containerd/containerd.sock\"\n");
  EXPECT_NE(e.find("the proxy would forward to itself"), std::string::npos) << e;
  e = errorOf("[cri]\nimage_service_address = \"/run/snapimport/snapimport.sock\"\n");
  EXPECT_NE(e.find("the same socket as \"address\""), std::string::npos) << e;
  e = errorOf("[cri]\nimage_endpoint = \"/x.sock\"\n");
  EXPECT_NE(e.find("unknown key \"cri.image_endpoint\""), std::string::npos) << e;
}

TEST(DaemonConfig, ValidateChecksFlagOverrides) {
  DaemonConfig c;
  c.log.level = "loud";
  try {
    c.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("key \"log.level\" has invalid value \"loud\""),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(DaemonConfig{}.validate());
}

TEST(DaemonConfig, AdminSocketIsDerivedFromAddress) {
  DaemonConfig c;
  EXPECT_EQ(c.adminSocket(), "/run/snapimport/snapimport-admin.sock");
  c.address = "/tmp/x/plugin";
  EXPECT_EQ(c.adminSocket(), "/tmp/x/plugin-admin.sock");
  c.adminAddress = "/run/a.sock";
  EXPECT_EQ(c.adminSocket(), "/run/a.sock");
}

TEST(DaemonConfig, DurationsAndSizes) {
  DaemonConfig::Duration d;
  EXPECT_TRUE(parseDuration("90s", d));
  EXPECT_EQ(d, std::chrono::seconds(90));
  EXPECT_TRUE(parseDuration("2h", d));
  EXPECT_EQ(d, std::chrono::hours(2));
  EXPECT_FALSE(parseDuration("1.5s", d));
  EXPECT_FALSE(parseDuration("s", d));
  EXPECT_FALSE(parseDuration("10", d));
  EXPECT_EQ(formatDuration(std::chrono::seconds(90)), "90s");
  EXPECT_EQ(formatDuration(std::chrono::milliseconds(1500)), "1500ms");
  uint64_t n;
  EXPECT_TRUE(parseSize("4MiB", n));
  EXPECT_EQ(n, 4u << 20);
  EXPECT_TRUE(parseSize("3GB", n));
  EXPECT_EQ(n, 3'000'000'000u);
  EXPECT_TRUE(parseSize("512", n));
  EXPECT_EQ(n, 512u);
  EXPECT_FALSE(parseSize("4 MiB", n));
  EXPECT_FALSE(parseSize("99999999TiB", n));
  EXPECT_EQ(formatSize(64ull << 30), "64GiB");
  EXPECT_EQ(formatSize(1000), "1000");
}

TEST(DaemonConfig, UnreadableFileSaysWhy) {
  try {
    DaemonConfig::load("/nonexistent/snapimport.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(
        std::string(e.what()).find(
            "cannot open config file /nonexistent/snapimport.toml: No such file or directory"),
        std::string::npos)
        << e.what();
  }
  try {
    DaemonConfig::load("/");  // a directory: opens, but cannot be read
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read config file /: Is a directory"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace snapimport::cli

namespace snapimport::cli {
namespace {

TEST(DaemonConfigRules, KeepingCompressedBlobsIsRefusedWithTheReason) {
  std::string e = errorOf("[import]\nkeep_compressed_blobs = true\n");
  EXPECT_NE(e.find("import.keep_compressed_blobs"), std::string::npos) << e;
  EXPECT_NE(e.find("not supported"), std::string::npos) << e;
}

TEST(DaemonConfigRules, ManifestLimitCannotExceedTheProtocolCap) {
  EXPECT_NE(errorOf("[limits]\nmax_manifest_bytes = \"8MiB\"\n").find("at most 4MiB"),
            std::string::npos);
  EXPECT_EQ(
      DaemonConfig::parse("[limits]\nmax_manifest_bytes = \"1MiB\"\n", "f").limits.maxManifestBytes,
      1u << 20);
}

}  // namespace
}  // namespace snapimport::cli
