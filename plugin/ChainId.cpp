#include "ChainId.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace snapimport::plugin {

std::string sha256Digest(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static const char* hex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string chainIdOf(const std::string& parentChainId, const std::string& diffId) {
  if (parentChainId.empty()) return diffId;
  return sha256Digest(parentChainId + " " + diffId);
}

std::vector<std::string> chainIds(const std::vector<std::string>& diffIds) {
  std::vector<std::string> out;
  std::string prev;
  for (const auto& d : diffIds) {
    prev = chainIdOf(prev, d);
    out.push_back(prev);
  }
  return out;
}

}  // namespace snapimport::plugin
