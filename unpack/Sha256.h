#pragma once
#include <cstddef>
#include <memory>
#include <string>

struct evp_md_ctx_st;

namespace snapimport::unpack {

// Incremental SHA-256 (OpenSSL EVP, so SHA-NI/AVX2 code paths are used when present).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t len);
  // "sha256:<64 hex>"; the hasher cannot be updated afterwards.
  std::string digest();

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace snapimport::unpack
