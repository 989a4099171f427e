#include "registry/Digest.h"

#include <gtest/gtest.h>

#include "registry/Error.h"

namespace snapimport::registry {

TEST(Digest, ParsesValidSha256AndSha512) {
  auto d = Digest::parse("sha256:" + std::string(64, 'a'));
  EXPECT_EQ(d.algorithm(), "sha256");
  EXPECT_EQ(d.hex(), std::string(64, 'a'));
  EXPECT_TRUE(Digest::isValid("sha512:" + std::string(128, '0')));
}

TEST(Digest, RejectsWhatCouldEscapeAPathOrUrl) {
  for (std::string bad : std::vector<std::string>{
           "", "sha256", "sha256:", "sha256:" + std::string(63, 'a'),
           "sha256:" + std::string(65, 'a'), "sha256:" + std::string(64, 'A'),
           "sha256:../../../../etc/passwd", "md5:" + std::string(32, 'a'),
           "sha512:" + std::string(64, 'a'), "sha256:" + std::string(63, 'a') + "/",
           "SHA256:" + std::string(64, 'a')}) {
    EXPECT_FALSE(Digest::isValid(bad)) << bad;
    EXPECT_THROW(Digest::parse(bad), Error) << bad;
  }
}

TEST(Digest, HashesKnownVectors) {
  EXPECT_EQ(digestOf("").str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(digestOf("{}").str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  Hasher h;
  h.update("{");
  EXPECT_EQ(h.bytes(), 1u);
  (void)h.digest();  // peeking must not disturb the running state
  h.update("}");
  EXPECT_EQ(h.digest(), digestOf("{}"));
  EXPECT_EQ(digestOf("abc", "sha512").hex().substr(0, 16), "ddaf35a193617aba");
}

}  // namespace snapimport::registry
