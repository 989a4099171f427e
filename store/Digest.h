#pragma once
// Content addresses. Every digest that reaches the store from the wire is parsed here first, so
// nothing unvalidated ever becomes a path: only "sha256:" followed by 64 lowercase hex digits is
// accepted (the only algorithm containerd writes, and the one the blob layout is built around).
#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace snapimport::store {

class Digest {
 public:
  static constexpr std::string_view kAlgorithm = "sha256";
  static constexpr size_t kHexLength = 64;

  // Throws StoreError(InvalidArgument) saying what is wrong with `text`.
  static Digest parse(std::string_view text);
  // Same check, without throwing.
  static bool isValid(std::string_view text);
  // From a bare 64-character lowercase hex string (a blob file name); throws like parse().
  static Digest fromHex(std::string_view hex);
  // The digest of `bytes`, in one go.
  static Digest of(std::string_view bytes);

  const std::string& str() const { return text_; }
  std::string_view hex() const { return std::string_view(text_).substr(kAlgorithm.size() + 1); }

  bool operator==(const Digest& other) const = default;
  auto operator<=>(const Digest& other) const = default;

 private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Incremental SHA-256 (OpenSSL EVP, so it uses whatever SIMD the CPU offers).
class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept = default;
  Sha256& operator=(Sha256&&) noexcept = default;

  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest of everything so far; the hash can keep going afterwards.
  Digest digest() const;
  void reset();

 private:
  struct CtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx_;
};

}  // namespace snapimport::store
