#include "registry/Http.h"

#include <gtest/gtest.h>

namespace snapimport::registry {

TEST(HttpUrl, RedactsQueryAndUserinfo) {
  EXPECT_EQ(redactUrl("https://s3.example/bucket/blob?X-Amz-Signature=secret#f"),
            "https://s3.example/bucket/blob");
  EXPECT_EQ(redactUrl("https://user:pw@host/x"), "https://host/x");
}

TEST(HttpUrl, OriginIncludesDefaultPort) {
  EXPECT_EQ(originOf("https://Reg.Example/v2/"), "https://reg.example:443");
  EXPECT_EQ(originOf("http://reg.example:5000/v2/"), "http://reg.example:5000");
  EXPECT_NE(originOf("https://a.example/"), originOf("http://a.example/"));
}

TEST(HttpUrl, ResolvesRelativeAndAbsoluteLocations) {
  std::string base = "https://reg.example:5000/v2/a/b/blobs/uploads/";
  EXPECT_EQ(resolveUrl(base, "/v2/a/b/blobs/uploads/uuid?_state=xyz"),
            "https://reg.example:5000/v2/a/b/blobs/uploads/uuid?_state=xyz");
  EXPECT_EQ(resolveUrl(base, "uuid2"), "https://reg.example:5000/v2/a/b/blobs/uploads/uuid2");
  EXPECT_EQ(resolveUrl(base, "https://storage.example/x?sig=1"), "https://storage.example/x?sig=1");
}

TEST(HttpUrl, AppendsToExistingQuery) {
  EXPECT_EQ(appendQuery("https://r/u?_state=a%2Bb", "digest", "sha256:ab"),
            "https://r/u?_state=a%2Bb&digest=sha256%3Aab");
  EXPECT_EQ(appendQuery("https://r/u", "ns", "docker.io"), "https://r/u?ns=docker.io");
}

TEST(HttpHeaders, CaseInsensitive) {
  HttpHeaders h;
  h.add("WWW-Authenticate", "a");
  h.add("www-authenticate", "b");
  EXPECT_EQ(h.get("Www-Authenticate"), "a");
  EXPECT_EQ(h.getAll("WWW-AUTHENTICATE").size(), 2u);
  h.set("www-authenticate", "c");
  EXPECT_EQ(h.getAll("WWW-Authenticate").size(), 1u);
}

}  // namespace snapimport::registry
