#include "registry/Digest.h"

#include <openssl/evp.h>

#include "registry/Error.h"

namespace snapimport::registry {
namespace {

bool isLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

const EVP_MD* mdFor(std::string_view algorithm) {
  if (algorithm == "sha256") return EVP_sha256();
  if (algorithm == "sha512") return EVP_sha512();
  throw Error(ErrorKind::Unsupported, "unsupported digest algorithm '" + std::string(algorithm) +
                                          "' (sha256 and sha512 are supported)");
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 80) out += "...";
  return out;
}

}  // namespace

bool Digest::isValid(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  auto alg = text.substr(0, colon);
  auto hex = text.substr(colon + 1);
  size_t want = alg == "sha256" ? 64 : alg == "sha512" ? 128 : 0;
  return want != 0 && hex.size() == want && isLowerHex(hex);
}

Digest Digest::parse(std::string_view text) {
  if (!isValid(text)) {
    throw Error(ErrorKind::Invalid,
                "invalid digest '" + printable(text) +
                    "': want sha256:<64 lowercase hex> or sha512:<128 lowercase hex>");
  }
  return Digest(std::string(text));
}

Digest Digest::fromParts(std::string_view algorithm, std::string_view hex) {
  return parse(std::string(algorithm) + ":" + std::string(hex));
}

std::string_view Digest::algorithm() const {
  std::string_view t = text_;
  return t.substr(0, t.find(':'));
}

std::string_view Digest::hex() const {
  std::string_view t = text_;
  auto colon = t.find(':');
  return colon == std::string_view::npos ? std::string_view{} : t.substr(colon + 1);
}

std::string Digest::shortForm() const {
  return std::string(algorithm()) + ":" + std::string(hex().substr(0, 12));
}

Hasher::Hasher(std::string_view algorithm) : algorithm_(algorithm), ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, mdFor(algorithm), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw Error(ErrorKind::Io, "cannot initialise " + algorithm_ + " hashing (OpenSSL)");
  }
}

Hasher::~Hasher() { EVP_MD_CTX_free(ctx_); }

Hasher::Hasher(Hasher&& other) noexcept
    : algorithm_(std::move(other.algorithm_)), ctx_(other.ctx_), bytes_(other.bytes_) {
  other.ctx_ = nullptr;
}

Hasher& Hasher::operator=(Hasher&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    algorithm_ = std::move(other.algorithm_);
    ctx_ = other.ctx_;
    bytes_ = other.bytes_;
    other.ctx_ = nullptr;
  }
  return *this;
}

void Hasher::update(const void* data, size_t len) {
  if (len == 0) return;
  EVP_DigestUpdate(ctx_, data, len);
  bytes_ += len;
}

Digest Hasher::digest() const {
  // Finalising a copy keeps this context usable, so callers can peek while streaming.
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, ctx_);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, md, &len);
  EVP_MD_CTX_free(copy);
  static const char* hexChars = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    hex += hexChars[md[i] >> 4];
    hex += hexChars[md[i] & 0xf];
  }
  return Digest::fromParts(algorithm_, hex);
}

Digest digestOf(std::string_view bytes, std::string_view algorithm) {
  Hasher h(algorithm);
  h.update(bytes);
  return h.digest();
}

}  // namespace snapimport::registry
