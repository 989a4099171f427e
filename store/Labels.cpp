#include "Labels.h"

#include "StoreError.h"

namespace snapimport::store {

void validateLabels(const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (k.size() + v.size() > kMaxLabelSize) {
      fail(ErrorClass::InvalidArgument,
           "label key and value length (" + std::to_string(k.size() + v.size()) +
               " bytes) exceeds maximum size (" + std::to_string(kMaxLabelSize) +
               " bytes) for label \"" + k.substr(0, 64) + (k.size() > 64 ? "..." : "") + "\"");
    }
    if (k.empty()) fail(ErrorClass::InvalidArgument, "label key must not be empty");
  }
}

void validateKey(std::string_view key, std::string_view what) {
  if (key.empty()) fail(ErrorClass::InvalidArgument, std::string(what) + " must not be empty");
  if (key.size() > kMaxKeySize) {
    fail(ErrorClass::InvalidArgument, std::string(what) + " is " + std::to_string(key.size()) +
                                          " bytes long; the limit is " +
                                          std::to_string(kMaxKeySize));
  }
  for (size_t i = 0; i < key.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7f) {
      fail(ErrorClass::InvalidArgument,
           std::string(what) + " contains control character 0x" + "0123456789abcdef"[c >> 4] +
               "0123456789abcdef"[c & 15] + " at byte " + std::to_string(i));
    }
  }
}

}  // namespace snapimport::store
