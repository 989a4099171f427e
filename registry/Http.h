#pragma once
// HTTP over libcurl for the registry client. One share handle holds the connection cache, DNS and
// TLS sessions, so every request reuses warm connections (HTTP/2 when the server offers it over
// TLS). Responses are pulled: open() returns once the headers are in and read() pumps curl only
// when the caller wants more bytes, so a slow consumer applies back-pressure instead of memory.
//
// Redirects are never followed here: the caller decides per hop whether credentials may go along
// (they must not cross origins). Nothing in this file logs header values.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace snapimport::registry {

class HttpHeaders {
 public:
  void add(std::string name, std::string value) {
    items_.emplace_back(std::move(name), std::move(value));
  }
  // Replaces every header of that name.
  void set(std::string_view name, std::string value);
  void remove(std::string_view name);
  // First value of a header, case-insensitive; empty when absent.
  std::string get(std::string_view name) const;
  bool has(std::string_view name) const;
  std::vector<std::string> getAll(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }
  void clear() { items_.clear(); }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

struct TlsOptions {
  bool verify = true;
  std::vector<std::string> caFiles;  // added to the system bundle
  std::string clientCert;            // PEM file; may also hold the key
  std::string clientKey;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  HttpHeaders headers;
  // A small body held in memory, or a streamed one (reader returns 0 at the end; sizes are known
  // up front because registries want Content-Length).
  std::string body;
  std::function<size_t(char* buf, size_t len)> bodyReader;
  uint64_t bodySize = 0;
  TlsOptions tls;
};

struct TransportOptions {
  long connectTimeoutSeconds = 30;
  // No-progress timeout: fail when fewer than lowSpeedBytes arrive per second for
  // lowSpeedSeconds in a row (an endless trickle counts as no progress).
  long lowSpeedBytes = 1024;
  long lowSpeedSeconds = 30;
  int maxConnectionsPerHost = 6;
  std::string userAgent = "snapimport/0.1";
};

// A response whose body is read on demand.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  virtual long status() const = 0;
  virtual const HttpHeaders& headers() const = 0;
  // "HTTP/1.1", "HTTP/2"
  virtual std::string protocol() const = 0;
  // Body bytes; 0 at the end. Throws Error(Transport) when the connection fails midway.
  virtual size_t read(void* buf, size_t len) = 0;
  // Reads up to `limit` bytes of body; sets *truncated when there was more.
  std::string readAll(size_t limit, bool* truncated = nullptr);
};

class HttpTransport {
 public:
  explicit HttpTransport(TransportOptions options = {});
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Sends the request and waits for the response headers. Throws Error(Transport) when no
  // response arrives (connection refused, TLS failure, timeout).
  std::unique_ptr<HttpStream> open(const HttpRequest& request);

  const TransportOptions& options() const { return options_; }
  // Connections opened so far (for tests and benchmarks: reuse keeps this low).
  long connectionsOpened() const;

  struct Impl;

 private:
  TransportOptions options_;
  std::unique_ptr<Impl> impl_;
};

// The URL with its query and fragment removed, for messages: presigned storage URLs carry
// credentials in the query string.
std::string redactUrl(std::string_view url);
// "https://host:443" for a URL (scheme, host, effective port), used to compare origins.
std::string originOf(std::string_view url);
// RFC 3986 reference resolution of `location` against `base` (relative and absolute Location).
std::string resolveUrl(std::string_view base, std::string_view location);
// Appends "name=value" (value percent-encoded) to the URL's query.
std::string appendQuery(std::string_view url, std::string_view name, std::string_view value);
std::string percentEncode(std::string_view s);

}  // namespace snapimport::registry
