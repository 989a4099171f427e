#pragma once
// One exception type for everything the registry client reports. The message is written for a
// person: what was tried, on which image/URL, and why (HTTP status, the registry's error code).
// Messages never contain credentials or tokens.
#include <stdexcept>
#include <string>

namespace snapimport::registry {

enum class ErrorKind {
  Invalid,       // a reference, digest, manifest or argument is malformed
  NotFound,      // 404 / MANIFEST_UNKNOWN / BLOB_UNKNOWN / NAME_UNKNOWN
  Unauthorized,  // 401 after every credential source was tried
  Denied,        // 403 DENIED, or a token that lacks the scope
  Unsupported,   // schema1, unknown media type, transport we can't handle
  Verification,  // size or digest mismatch
  Transport,     // connection, TLS, timeout, dropped connection
  Server,        // 5xx, 429 after retries
  Io,            // local files
};

// Transport code of a TLS connection the server closed after the handshake, before answering.
inline constexpr const char* kTlsClosedCode = "tls-closed";

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, long httpStatus = 0, std::string code = {})
      : std::runtime_error(message), kind_(kind), status_(httpStatus), code_(std::move(code)) {}
  ErrorKind kind() const { return kind_; }
  long httpStatus() const { return status_; }
  // The registry's error code ("DENIED", "MANIFEST_UNKNOWN"); for Transport errors the libcurl
  // result number ("7", "28") or kTlsClosedCode; empty when there was none.
  const std::string& code() const { return code_; }

 private:
  ErrorKind kind_;
  long status_;
  std::string code_;
};

}  // namespace snapimport::registry
