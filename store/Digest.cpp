#include "Digest.h"

#include "StoreError.h"

namespace snapimport::store {
namespace {

// Quotes untrusted text for an error message without letting it run on or carry control bytes.
std::string printable(std::string_view text) {
  constexpr size_t kMax = 100;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += "0123456789abcdef"[c >> 4];
      out += "0123456789abcdef"[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMax) out += "...";
  return out + "\"";
}

// Empty when `hex` is well formed, otherwise the reason it is not.
std::string hexProblem(std::string_view hex) {
  if (hex.size() != Digest::kHexLength) {
    return "the hex part has " + std::to_string(hex.size()) + " characters, sha256 needs " +
           std::to_string(Digest::kHexLength);
  }
  for (size_t i = 0; i < hex.size(); ++i) {
    char c = hex[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return "character " + std::to_string(i) + " of the hex part is not a lowercase hex digit";
    }
  }
  return {};
}

std::string problem(std::string_view text) {
  if (text.empty()) return "it is empty";
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return "it has no \"<algorithm>:\" prefix";
  if (text.substr(0, colon) != Digest::kAlgorithm) {
    return "algorithm " + printable(text.substr(0, colon)) + " is not supported (only sha256 is)";
  }
  return hexProblem(text.substr(colon + 1));
}

}  // namespace

Digest Digest::parse(std::string_view text) {
  std::string why = problem(text);
  if (!why.empty())
    fail(ErrorClass::InvalidArgument, "invalid digest " + printable(text) + ": " + why);
  return Digest(std::string(text));
}

bool Digest::isValid(std::string_view text) { return problem(text).empty(); }

Digest Digest::fromHex(std::string_view hex) {
  std::string why = hexProblem(hex);
  if (!why.empty())
    fail(ErrorClass::InvalidArgument, "invalid sha256 hex " + printable(hex) + ": " + why);
  return Digest(std::string(kAlgorithm) + ":" + std::string(hex));
}

Digest Digest::of(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.digest();
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
    fail(ErrorClass::Internal, "initialise OpenSSL SHA-256 context failed");
  }
}

void Sha256::update(const void* data, size_t size) {
  if (size == 0) return;
  if (EVP_DigestUpdate(ctx_.get(), data, size) != 1) {
    fail(ErrorClass::Internal, "OpenSSL SHA-256 update failed");
  }
}

Digest Sha256::digest() const {
  // Finalising destroys the state, so finalise a copy and keep hashing on the original.
  std::unique_ptr<EVP_MD_CTX, CtxFree> copy(EVP_MD_CTX_new());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!copy || EVP_MD_CTX_copy_ex(copy.get(), ctx_.get()) != 1 ||
      EVP_DigestFinal_ex(copy.get(), md, &len) != 1 || len != 32) {
    fail(ErrorClass::Internal, "OpenSSL SHA-256 finalisation failed");
  }
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex += "0123456789abcdef"[md[i] >> 4];
    hex += "0123456789abcdef"[md[i] & 15];
  }
  return Digest::fromHex(hex);
}

void Sha256::reset() {
  if (EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
    fail(ErrorClass::Internal, "reset OpenSSL SHA-256 context failed");
  }
}

}  // namespace snapimport::store
