#include "registry/Manifest.h"

#include <gtest/gtest.h>

#include "registry/Error.h"

namespace snapimport::registry {

const std::string kD1 = "sha256:" + std::string(64, '1');
const std::string kD2 = "sha256:" + std::string(64, '2');
const std::string kD3 = "sha256:" + std::string(64, '3');

std::string entry(const std::string& digest, const std::string& platformJson,
                  const std::string& extra = "") {
  return R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + digest +
         R"(","size":10,"platform":)" + platformJson + extra + "}";
}

TEST(Manifest, DetectsTypesAndChecksContentType) {
  std::string m =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}, "layers":[]})";
  EXPECT_EQ(
      detectManifestType(m, "application/vnd.oci.image.manifest.v1+json; charset=utf-8", "img"),
      mediatype::kOciManifest);
  EXPECT_THROW(detectManifestType(m, "application/vnd.docker.distribution.manifest.v2+json", "img"),
               Error);
  std::string noType = R"({"schemaVersion":2,"manifests":[]})";
  EXPECT_EQ(detectManifestType(noType, "", "img"), mediatype::kOciIndex);
  std::string ambiguous = R"({"schemaVersion":2,"manifests":[],"layers":[]})";
  EXPECT_THROW(detectManifestType(ambiguous, "", "img"), Error);
}

TEST(Manifest, RefusesSchema1ByName) {
  for (auto [body, ct] : std::vector<std::pair<std::string, std::string>>{
           {R"({"schemaVersion":1,"name":"x"})",
            "application/vnd.docker.distribution.manifest.v1+prettyjws"},
           {R"({"schemaVersion":1,"name":"x"})", ""},
           {R"({"schemaVersion":1})", "text/plain"}}) {
    try {
      detectManifestType(body, ct, "reg/x:1");
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
      EXPECT_NE(std::string(e.what()).find("schema1"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("reg/x:1"), std::string::npos);
    }
  }
}

TEST(Manifest, RefusesOversizeAndMalformed) {
  EXPECT_THROW(detectManifestType(std::string(kMaxManifestSize + 1, ' '), "", "img"), Error);
  try {
    detectManifestType("{\"schemaVersion\": 2,", "", "reg/x:1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos);
  }
  EXPECT_THROW(
      parseManifest(R"({"config":{"mediaType":"x","digest":"sha256:bad","size":1},"layers":[]})",
                    "img"),
      Error);
  EXPECT_THROW(
      parseManifest(
          R"({"config":{"mediaType":"x","digest":")" + kD1 + R"(","size":-1},"layers":[]})", "img"),
      Error);
}

TEST(Manifest, ParsesImageManifest) {
  auto m = parseManifest(
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
          kD1 + R"(","size":5},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" +
          kD2 + R"(","size":7}]})",
      "img");
  EXPECT_EQ(m.config.digest.str(), kD1);
  ASSERT_EQ(m.layers.size(), 1u);
  EXPECT_EQ(m.layers[0].size, 7);
}

TEST(Platform, Normalises) {
  EXPECT_EQ(Platform::parse("linux/aarch64").str(), "linux/arm64");
  EXPECT_EQ(Platform::parse("linux/arm64/v8").str(), "linux/arm64");
  EXPECT_EQ(Platform::parse("linux/arm64/9").str(), "linux/arm64/v9");
  EXPECT_EQ(Platform::parse("linux/x86_64").str(), "linux/amd64");
  EXPECT_EQ(Platform::parse("linux/armhf").str(), "linux/arm/v7");
  EXPECT_EQ(Platform::parse("linux/armel").str(), "linux/arm/v6");
  EXPECT_EQ(Platform::parse("linux/arm").str(), "linux/arm/v7");
  EXPECT_EQ(Platform::parse("linux/i386").str(), "linux/386");
  EXPECT_EQ(Platform::parse("amd64").str(), "linux/amd64");
  EXPECT_EQ(Platform::parse("macos/arm64").str(), "darwin/arm64");
  EXPECT_THROW(Platform::parse("linux/"), Error);
  EXPECT_THROW(Platform::parse("a/b/c/d"), Error);
}

TEST(Platform, SelectsSkippingAttestationsWithFallback) {
  std::string idx =
      R"({"schemaVersion":2,"manifests":[)" +
      entry(kD3, R"({"os":"unknown","architecture":"unknown"})",
            R"(,"annotations":{"vnd.docker.reference.type":"attestation-manifest"})") +
      "," + entry(kD1, R"({"os":"linux","architecture":"arm64","variant":"v8"})") + "," +
      entry(kD2, R"({"os":"linux","architecture":"386"})") + "]}";
  auto index = parseIndex(idx, "img");
  EXPECT_EQ(selectPlatform(index, Platform::parse("linux/aarch64"), "img").digest.str(), kD1);
  EXPECT_EQ(selectPlatform(index, Platform::parse("linux/amd64"), "img").digest.str(),
            kD2);  // 386 fallback
  try {
    selectPlatform(index, Platform::parse("linux/s390x"), "reg/x:1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("linux/arm64, linux/386"), std::string::npos) << e.what();
  }
}

TEST(Platform, ExactBeatsFallbackRegardlessOfOrder) {
  std::string idx = R"({"manifests":[)" +
                    entry(kD1, R"({"os":"linux","architecture":"arm","variant":"v6"})") + "," +
                    entry(kD2, R"({"os":"linux","architecture":"arm","variant":"v7"})") + "]}";
  EXPECT_EQ(selectPlatform(parseIndex(idx, "i"), Platform::parse("linux/arm/v7"), "i").digest.str(),
            kD2);
  EXPECT_EQ(selectPlatform(parseIndex(idx, "i"), Platform::parse("linux/arm/v8"), "i").digest.str(),
            kD2);
}

}  // namespace snapimport::registry
