#include "store/Labels.h"

#include <gtest/gtest.h>

#include "store/StoreError.h"

namespace snapimport::store {
namespace {

TEST(Labels, SizeLimitIsKeyPlusValue) {
  EXPECT_NO_THROW(validateLabels({{"k", std::string(4095, 'v')}}));
  EXPECT_THROW(validateLabels({{"k", std::string(4096, 'v')}}), StoreError);
}

TEST(Keys, OpaqueButNoControlCharacters) {
  EXPECT_NO_THROW(validateKey("k8s.io/1/extract-1 sha256:abc", "key"));
  EXPECT_NO_THROW(validateKey("../x", "key"));
  EXPECT_THROW(validateKey("", "key"), StoreError);
  EXPECT_THROW(validateKey(std::string("a\0", 2), "key"), StoreError);
  EXPECT_THROW(validateKey("a\nb", "key"), StoreError);
  EXPECT_THROW(validateKey(std::string(4097, 'k'), "key"), StoreError);
  try {
    validateKey("a\x01", "snapshot key");
  } catch (const StoreError& e) {
    EXPECT_EQ(std::string(e.what()), "snapshot key contains control character 0x01 at byte 1");
  }
}

}  // namespace
}  // namespace snapimport::store
