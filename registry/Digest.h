#pragma once
// Content digests ("sha256:<64 hex>", "sha512:<128 hex>"). Every digest is validated against the
// image-spec grammar before it can reach a URL or a path (CVE-2024-3727).
#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace snapimport::registry {

class Digest {
 public:
  Digest() = default;
  // Throws Error(Invalid) unless `text` is sha256 or sha512 with lowercase hex of the right length.
  static Digest parse(std::string_view text);
  static bool isValid(std::string_view text);
  static Digest fromParts(std::string_view algorithm, std::string_view hex);

  const std::string& str() const { return text_; }
  std::string_view algorithm() const;
  std::string_view hex() const;
  bool empty() const { return text_.empty(); }
  // A short form for progress output: "sha256:0123456789ab".
  std::string shortForm() const;

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Incremental hash of the bytes that flow past; algorithm "sha256" or "sha512".
class Hasher {
 public:
  explicit Hasher(std::string_view algorithm = "sha256");
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;

  void update(const void* data, size_t len);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest of everything seen so far; the hasher keeps going afterwards.
  Digest digest() const;
  uint64_t bytes() const { return bytes_; }

 private:
  std::string algorithm_;
  EVP_MD_CTX* ctx_ = nullptr;
  uint64_t bytes_ = 0;
};

Digest digestOf(std::string_view bytes, std::string_view algorithm = "sha256");

}  // namespace snapimport::registry
