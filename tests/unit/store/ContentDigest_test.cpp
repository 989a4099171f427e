#include <gtest/gtest.h>

#include <string>

#include "store/Digest.h"
#include "store/IngestHasher.h"
#include "store/StoreError.h"

namespace snapimport::store {
namespace {

constexpr const char* kEmpty =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

ErrorClass classOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const StoreError& e) {
    return e.errorClass();
  }
  ADD_FAILURE() << "no StoreError thrown";
  return ErrorClass::Internal;
}

TEST(ContentDigest, ParsesCanonicalSha256) {
  Digest d = Digest::parse(kEmpty);
  EXPECT_EQ(d.str(), kEmpty);
  EXPECT_EQ(d.hex(), std::string(kEmpty).substr(7));
  EXPECT_EQ(Digest::of(""), d);
  EXPECT_EQ(Digest::fromHex(d.hex()), d);
}

TEST(ContentDigest, RefusesEverythingElseAsInvalidArgument) {
  std::string hex = std::string(kEmpty).substr(7);
  std::string upper = hex;
  for (auto& c : upper) c = static_cast<char>(toupper(c));
  for (const std::string& bad :
       {std::string(), std::string("sha256"), std::string("sha256:"), "sha256:" + hex.substr(1),
        "sha256:" + hex + "0", "sha256:" + upper, "SHA256:" + hex, "sha512:" + hex + hex, hex,
        "sha256:" + hex.substr(0, 60) + "/../", "sha256:" + hex.substr(1) + std::string(1, '\0'),
        " sha256:" + hex}) {
    EXPECT_FALSE(Digest::isValid(bad)) << bad;
    EXPECT_EQ(classOf([&] { Digest::parse(bad); }), ErrorClass::InvalidArgument) << bad;
  }
  EXPECT_EQ(classOf([&] { Digest::fromHex("../" + hex.substr(3)); }), ErrorClass::InvalidArgument);
}

TEST(ContentDigest, ErrorMessageSaysWhy) {
  try {
    Digest::parse("sha512:abc");
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
  }
}

TEST(ContentDigest, IncrementalHashMatchesOneShotAndCanBeReadMidway) {
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7919 % 251);
  Sha256 h;
  h.update(data.substr(0, 1000));
  EXPECT_EQ(h.digest(), Digest::of(data.substr(0, 1000)));
  h.update(data.substr(1000));
  EXPECT_EQ(h.digest(), Digest::of(data));
  h.reset();
  EXPECT_EQ(h.digest().str(), kEmpty);
}

TEST(ContentIngestHasher, AsyncChunksGiveTheSameDigestInOrder) {
  std::string data(20 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 % 253);
  IngestHasher h;
  size_t off = 0;
  // Small ones inline first, then big ones on the worker, then small ones behind them.
  for (size_t n : {10u, 1000u, 1u << 20, 5u << 20, 100u, 3u << 20}) {
    h.push(data.substr(off, n));
    off += n;
  }
  EXPECT_EQ(h.digest(), Digest::of(data.substr(0, off)));
  h.push(data.substr(off));
  EXPECT_EQ(h.digest(), Digest::of(data));
  h.reset();
  EXPECT_EQ(h.digest().str(), kEmpty);
  h.update(data.data(), 5);
  EXPECT_EQ(h.digest(), Digest::of(data.substr(0, 5)));
}

TEST(ContentIngestHasher, DestroyingWithWorkQueuedDoesNotHang) {
  IngestHasher h;
  for (int i = 0; i < 8; ++i) h.push(std::string(4 << 20, 'x'));
}

}  // namespace
}  // namespace snapimport::store
