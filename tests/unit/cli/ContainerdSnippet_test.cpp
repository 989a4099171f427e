// `snapimport config containerd`: the snippet per containerd release, parsed back with toml++,
// and the checked-in packaging/containerd/config-*.toml equal to its default output.
#include "cli/ContainerdSnippet.h"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "cli/DaemonConfig.h"

namespace snapimport::cli {
namespace {

ContainerdSnippetOptions defaults(int configVersion, std::string platform = "linux/amd64") {
  ContainerdSnippetOptions o;
  o.configVersion = configVersion;
  o.address = DaemonConfig{}.address;
  o.root = DaemonConfig{}.root;
  o.hostsDir = defaultContainerdHostsDir(configVersion);
  o.platform = std::move(platform);
  return o;
}

std::string errorOf(const ContainerdSnippetOptions& o) {
  try {
    renderContainerdSnippet(o);
  } catch (const SnippetError& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ContainerdSnippet, ReleasesMapToConfigVersions) {
  for (const char* v : {"1.6", "1.7", "1.6.20", "v1.7.24"})
    EXPECT_EQ(containerdConfigVersion(v), 2) << v;
  for (const char* v : {"2", "2.0", "2.1", "2.x", "2.1.9", "v2.0.0", "2.2"})
    EXPECT_EQ(containerdConfigVersion(v), 3) << v;
}

TEST(ContainerdSnippet, UnknownReleaseListsTheAcceptedOnes) {
  for (const char* v : {"1.5", "1", "3.0", "", "1.7.x", "2.1.9.1", "1.7.", "latest", "2.y"}) {
    try {
      containerdConfigVersion(v);
      ADD_FAILURE() << v << " was accepted";
    } catch (const SnippetError& e) {
      std::string what = e.what();
      EXPECT_TRUE(has(what, std::string("\"") + v + "\"")) << what;
      EXPECT_TRUE(has(what, "1.6, 1.7, 2.0, 2.1, 2.x")) << what;
    }
  }
}

TEST(ContainerdSnippet, Version2HasTheProxyPluginsAndCriKeys) {
  ContainerdSnippetOptions o = defaults(2);
  o.address = "/run/si/si.sock";
  o.hostsDir = "/etc/a:/etc/b";
  toml::table t = toml::parse(renderContainerdSnippet(o));
  EXPECT_EQ(t["version"].value<int64_t>(), 2);
  EXPECT_EQ(t["disabled_plugins"][0].value<std::string>(), "io.containerd.content.v1.content");
  EXPECT_EQ(t["proxy_plugins"]["snapimport"]["type"].value<std::string>(), "snapshot");
  EXPECT_EQ(t["proxy_plugins"]["snapimport"]["address"].value<std::string>(), "/run/si/si.sock");
  EXPECT_EQ(t["proxy_plugins"]["snapimport-content"]["type"].value<std::string>(), "content");
  EXPECT_EQ(t["proxy_plugins"]["snapimport-content"]["address"].value<std::string>(),
            "/run/si/si.sock");
  auto cri = t["plugins"]["io.containerd.grpc.v1.cri"];
  EXPECT_EQ(cri["containerd"]["snapshotter"].value<std::string>(), "snapimport");
  EXPECT_EQ(cri["containerd"]["disable_snapshot_annotations"].value<bool>(), false);
  EXPECT_EQ(cri["registry"]["config_path"].value<std::string>(), "/etc/a:/etc/b");
  // Nothing of the 2.x layout.
  EXPECT_FALSE(t["plugins"]["io.containerd.cri.v1.images"]);
  EXPECT_FALSE(t["plugins"]["io.containerd.transfer.v1.local"]);
}

TEST(ContainerdSnippet, Version3HasExportsCriImagesAndTransferUnpack) {
  ContainerdSnippetOptions o = defaults(3, "linux/arm64");
  o.address = "/run/si/si.sock";
  o.root = "/srv/snapimport";
  o.hostsDir = "/etc/hosts.d";
  toml::table t = toml::parse(renderContainerdSnippet(o));
  EXPECT_EQ(t["version"].value<int64_t>(), 3);
  EXPECT_EQ(t["disabled_plugins"][0].value<std::string>(), "io.containerd.content.v1.content");
  auto snap = t["proxy_plugins"]["snapimport"];
  EXPECT_EQ(snap["type"].value<std::string>(), "snapshot");
  EXPECT_EQ(snap["address"].value<std::string>(), "/run/si/si.sock");
  // containerd's exports are map[string]string: the annotation switch is the string "true".
  EXPECT_EQ(snap["exports"]["root"].value<std::string>(), "/srv/snapimport");
  ASSERT_TRUE(snap["exports"]["enable_remote_snapshot_annotations"].is_string());
  EXPECT_EQ(snap["exports"]["enable_remote_snapshot_annotations"].value<std::string>(), "true");
  EXPECT_EQ(t["proxy_plugins"]["snapimport-content"]["type"].value<std::string>(), "content");
  EXPECT_EQ(t["proxy_plugins"]["snapimport-content"]["address"].value<std::string>(),
            "/run/si/si.sock");
  auto images = t["plugins"]["io.containerd.cri.v1.images"];
  EXPECT_EQ(images["snapshotter"].value<std::string>(), "snapimport");
  EXPECT_EQ(images["disable_snapshot_annotations"].value<bool>(), true);
  EXPECT_EQ(images["registry"]["config_path"].value<std::string>(), "/etc/hosts.d");
  auto transfer = t["plugins"]["io.containerd.transfer.v1.local"];
  EXPECT_EQ(transfer["config_path"].value<std::string>(), "/etc/hosts.d");
  auto* unpack = transfer["unpack_config"].as_array();
  ASSERT_NE(unpack, nullptr);
  ASSERT_EQ(unpack->size(), 2u);
  std::vector<std::string> snapshotters;
  for (const auto& entry : *unpack) {
    const toml::table& e = *entry.as_table();
    EXPECT_EQ(e["platform"].value<std::string>(), "linux/arm64");
    EXPECT_EQ(e["differ"].value<std::string>(), "walking");
    snapshotters.push_back(e["snapshotter"].value_or(std::string()));
  }
  EXPECT_EQ(snapshotters, (std::vector<std::string>{"snapimport", "overlayfs"}));
  // Nothing of the 1.x layout.
  EXPECT_FALSE(t["plugins"]["io.containerd.grpc.v1.cri"]);
}

TEST(ContainerdSnippet, ReleasesThatTakeADiffProxy) {
  for (const char* v : {"1.7", "1.7.4", "v1.7.24", "2.0", "2.1.9", "2.x", "2"})
    EXPECT_TRUE(containerdTakesDiffProxy(v)) << v;
  for (const char* v : {"1.6", "1.6.20", "1.7.0", "1.7.3"})
    EXPECT_FALSE(containerdTakesDiffProxy(v)) << v;
}

// The diff proxy: first in the diff service's list (1.7 and 2.x local pulls), the differ of the
// transfer service's snapimport unpack (2.x), absent for 1.6 (which refuses type "diff").
TEST(ContainerdSnippet, DiffServiceFirstWhereContainerdTakesIt) {
  for (int version : {2, 3}) {
    ContainerdSnippetOptions o = defaults(version);
    o.address = "/run/si/si.sock";
    toml::table off = toml::parse(renderContainerdSnippet(o));
    EXPECT_FALSE(off["proxy_plugins"]["snapimport-diff"]) << version;
    EXPECT_FALSE(off["plugins"]["io.containerd.service.v1.diff-service"]) << version;
    o.diffService = true;
    toml::table t = toml::parse(renderContainerdSnippet(o));
    EXPECT_EQ(t["proxy_plugins"]["snapimport-diff"]["type"].value<std::string>(), "diff");
    EXPECT_EQ(t["proxy_plugins"]["snapimport-diff"]["address"].value<std::string>(),
              "/run/si/si.sock");
    auto* order = t["plugins"]["io.containerd.service.v1.diff-service"]["default"].as_array();
    ASSERT_NE(order, nullptr) << version;
    ASSERT_EQ(order->size(), 2u);
    EXPECT_EQ((*order)[0].value<std::string>(), "snapimport-diff");
    EXPECT_EQ((*order)[1].value<std::string>(), "walking");
    if (version == 3) {
      auto* unpack = t["plugins"]["io.containerd.transfer.v1.local"]["unpack_config"].as_array();
      ASSERT_NE(unpack, nullptr);
      for (const auto& entry : *unpack) {
        const toml::table& e = *entry.as_table();
        EXPECT_EQ(
            e["differ"].value<std::string>(),
            e["snapshotter"].value<std::string>() == "snapimport" ? "snapimport-diff" : "walking");
      }
    }
  }
}

TEST(ContainerdSnippet, Version3RefusesAHostsDirList) {
  ContainerdSnippetOptions o = defaults(3);
  o.hostsDir = "/etc/containerd/certs.d:/etc/docker/certs.d";
  std::string e = errorOf(o);
  EXPECT_TRUE(has(e, "':' list")) << e;
  EXPECT_TRUE(has(e, "one hosts directory")) << e;
  EXPECT_EQ(defaultContainerdHostsDir(3), "/etc/containerd/certs.d");
}

TEST(ContainerdSnippet, RefusesRelativePathsAndControlCharacters) {
  ContainerdSnippetOptions o = defaults(3);
  o.address = "run/si.sock";
  EXPECT_TRUE(has(errorOf(o), "--address must be an absolute path")) << errorOf(o);
  o = defaults(3);
  o.root = "";
  EXPECT_TRUE(has(errorOf(o), "--root must be an absolute path")) << errorOf(o);
  o = defaults(2);
  o.hostsDir = "/etc/a:certs.d";
  EXPECT_TRUE(has(errorOf(o), "absolute path, not \"certs.d\"")) << errorOf(o);
  o = defaults(2);
  o.address = "/run/a\nb.sock";
  EXPECT_TRUE(has(errorOf(o), "--address contains a control character")) << errorOf(o);
}

TEST(ContainerdSnippet, QuotesAndBackslashesStayInsideTheString) {
  ContainerdSnippetOptions o = defaults(3);
  o.root = R"(/srv/we"ird\dir)";
  toml::table t = toml::parse(renderContainerdSnippet(o));
  EXPECT_EQ(t["proxy_plugins"]["snapimport"]["exports"]["root"].value<std::string>(), o.root);
}

TEST(ContainerdSnippet, HostPlatformIsGoStyle) {
  std::string p = hostUnpackPlatform();
  EXPECT_TRUE(p.starts_with("linux/")) << p;
  EXPECT_FALSE(has(p, "x86_64") || has(p, "aarch64")) << p;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The checked-in snippets are the default output (on amd64; the .deb ships what the built binary
// prints, so other architectures get their own platform line).
TEST(ContainerdSnippet, PackagedFilesAreTheDefaultOutput) {
  const std::string dir = std::string(SNAPIMPORT_SOURCE_DIR) + "/packaging/containerd/";
  for (auto [file, release] :
       {std::pair{"config-1.6.toml", "1.6"}, std::pair{"config-1.7.toml", "1.7"},
        std::pair{"config-2.x.toml", "2.x"}}) {
    std::string packaged = readFile(dir + file);
    ASSERT_FALSE(packaged.empty()) << dir + file << " is missing or empty";
    ContainerdSnippetOptions o = defaults(containerdConfigVersion(release));
    o.diffService = containerdTakesDiffProxy(release);
    EXPECT_EQ(packaged, renderContainerdSnippet(o))
        << file << " differs from `snapimport config containerd --version " << release
        << "`; regenerate it with that command";
  }
}

}  // namespace
}  // namespace snapimport::cli
