#include "registry/Http.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "common/Log.h"
#include "registry/Error.h"

namespace snapimport::registry {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

void ensureCurl() { static CurlGlobal once; }

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Io, "cannot read CA file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The system CA bundle, read once; extra CAs from hosts.toml are appended to it.
const std::string& systemCaBundle() {
  static const std::string bundle = [] {
    for (const char* p :
         {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
      std::ifstream in(p, std::ios::binary);
      if (in) {
        std::ostringstream ss;
        ss << in.rdbuf();
        return ss.str();
      }
    }
    return std::string();
  }();
  return bundle;
}

// Bounds how many requests run at once against one origin.
class HostLimiter {
 public:
  explicit HostLimiter(int limit) : limit_(std::max(1, limit)) {}
  void acquire(const std::string& origin) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return inUse_[origin] < limit_; });
    ++inUse_[origin];
  }
  void release(const std::string& origin) {
    {
      std::lock_guard lock(mu_);
      --inUse_[origin];
    }
    cv_.notify_all();
  }

 private:
  int limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int> inUse_;
};

}  // namespace

// --------------------------------------------------------------------------------------------
// headers and URLs

void HttpHeaders::set(std::string_view name, std::string value) {
  remove(name);
  add(std::string(name), std::move(value));
}

void HttpHeaders::remove(std::string_view name) {
  std::erase_if(items_, [&](const auto& kv) { return iequals(kv.first, name); });
}

std::string HttpHeaders::get(std::string_view name) const {
  for (const auto& [k, v] : items_) {
    if (iequals(k, name)) return v;
  }
  return {};
}

bool HttpHeaders::has(std::string_view name) const {
  return std::any_of(items_.begin(), items_.end(),
                     [&](const auto& kv) { return iequals(kv.first, name); });
}

std::vector<std::string> HttpHeaders::getAll(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : items_) {
    if (iequals(k, name)) out.push_back(v);
  }
  return out;
}

std::string redactUrl(std::string_view url) {
  auto cut = url.find_first_of("?#");
  std::string out(url.substr(0, cut));
  // userinfo never belongs in a message either
  auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    auto hostStart = scheme + 3;
    auto slash = out.find('/', hostStart);
    auto at = out.rfind('@', slash == std::string::npos ? out.size() : slash);
    if (at != std::string::npos && at >= hostStart) out.erase(hostStart, at + 1 - hostStart);
  }
  return out;
}

namespace {
struct CurlUrl {
  CURLU* h = curl_url();
  ~CurlUrl() { curl_url_cleanup(h); }
  std::string get(CURLUPart part, unsigned flags = 0) const {
    char* v = nullptr;
    if (curl_url_get(h, part, &v, flags) != CURLUE_OK || !v) return {};
    std::string s(v);
    curl_free(v);
    return s;
  }
};
}  // namespace

std::string originOf(std::string_view url) {
  CurlUrl u;
  if (curl_url_set(u.h, CURLUPART_URL, std::string(url).c_str(), 0) != CURLUE_OK) return {};
  std::string scheme = u.get(CURLUPART_SCHEME);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
  std::string host = u.get(CURLUPART_HOST);
  std::transform(host.begin(), host.end(), host.begin(), ::tolower);
  return scheme + "://" + host + ":" + u.get(CURLUPART_PORT, CURLU_DEFAULT_PORT);
}

std::string resolveUrl(std::string_view base, std::string_view location) {
  CurlUrl u;
  if (curl_url_set(u.h, CURLUPART_URL, std::string(base).c_str(), 0) != CURLUE_OK) {
    throw Error(ErrorKind::Invalid, "invalid URL " + redactUrl(base));
  }
  if (curl_url_set(u.h, CURLUPART_URL, std::string(location).c_str(), CURLU_NON_SUPPORT_SCHEME) !=
      CURLUE_OK) {
    throw Error(ErrorKind::Invalid,
                "invalid Location '" + redactUrl(location) + "' from " + redactUrl(base));
  }
  return u.get(CURLUPART_URL);
}

std::string percentEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out;
}

std::string appendQuery(std::string_view url, std::string_view name, std::string_view value) {
  std::string u(url);
  std::string fragment;
  if (auto hash = u.find('#'); hash != std::string::npos) {
    fragment = u.substr(hash);
    u.resize(hash);
  }
  u += (u.find('?') == std::string::npos) ? '?' : (u.back() == '?' || u.back() == '&' ? '\0' : '&');
  if (!u.empty() && u.back() == '\0') u.pop_back();
  u += percentEncode(name) + "=" + percentEncode(value);
  return u + fragment;
}

std::string HttpStream::readAll(size_t limit, bool* truncated) {
  std::string out;
  char buf[65536];
  if (truncated) *truncated = false;
  while (true) {
    size_t n = read(buf, sizeof buf);
    if (n == 0) break;
    size_t room = limit - out.size();
    out.append(buf, std::min(n, room));
    if (n > room) {
      if (truncated) *truncated = true;
      break;
    }
  }
  return out;
}

// --------------------------------------------------------------------------------------------
// transport

struct HttpTransport::Impl {
  CURLSH* share = nullptr;
  std::mutex locks[CURL_LOCK_DATA_LAST];
  HostLimiter limiter;
  std::atomic<long> connections{0};
  std::mutex caMu;
  std::map<std::string, std::string> caBlobs;  // joined caFiles -> system bundle + extra CAs

  explicit Impl(int perHost) : limiter(perHost) {
    ensureCurl();
    share = curl_share_init();
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::unlock);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  ~Impl() { curl_share_cleanup(share); }

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Impl*>(user)->locks[data].lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Impl*>(user)->locks[data].unlock();
  }

  const std::string& caBlob(const std::vector<std::string>& files) {
    std::string key;
    for (const auto& f : files) key += f + '\n';
    std::lock_guard lock(caMu);
    auto it = caBlobs.find(key);
    if (it != caBlobs.end()) return it->second;
    std::string blob = systemCaBundle();
    // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict for "literal" + string&&.
    for (const auto& f : files) {
      blob += '\n';
      blob += readFile(f);
      blob += '\n';
    }
    return caBlobs.emplace(key, std::move(blob)).first->second;
  }
};

namespace {

class CurlStream : public HttpStream {
 public:
  CurlStream(HttpTransport::Impl& impl, const TransportOptions& opts, const HttpRequest& req)
      : impl_(impl), request_(req), origin_(originOf(req.url)) {
    impl_.limiter.acquire(origin_);
    try {
      setup(opts);
      waitForHeaders();
    } catch (...) {
      cleanup();
      throw;
    }
  }
  ~CurlStream() override { cleanup(); }

  long status() const override { return status_; }
  const HttpHeaders& headers() const override { return headers_; }
  std::string protocol() const override {
    long v = 0;
    curl_easy_getinfo(easy_, CURLINFO_HTTP_VERSION, &v);
    return v == CURL_HTTP_VERSION_2_0 ? "HTTP/2" : v == CURL_HTTP_VERSION_3 ? "HTTP/3" : "HTTP/1.1";
  }

  size_t read(void* buf, size_t len) override {
    if (pos_ == buffer_.size() && !done_ && len > 0) {
      // Nothing buffered: the write callback puts the body straight into the caller's memory, so
      // a blob's bytes are copied once between curl's receive buffer and the unpack's ring.
      target_ = static_cast<char*>(buf);
      targetRoom_ = len;
      targetGot_ = 0;
      try {
        while (targetGot_ == 0 && pos_ == buffer_.size() && !done_) pump();
      } catch (...) {
        target_ = nullptr;
        throw;
      }
      target_ = nullptr;
      if (targetGot_ > 0) return std::exchange(targetGot_, 0);
    }
    while (pos_ == buffer_.size() && !done_) pump();
    if (pos_ < buffer_.size()) {
      size_t n = std::min(len, buffer_.size() - pos_);
      std::memcpy(buf, buffer_.data() + pos_, n);
      pos_ += n;
      if (pos_ == buffer_.size()) {
        buffer_.clear();
        pos_ = 0;
        if (paused_) {
          paused_ = false;
          curl_easy_pause(easy_, CURLPAUSE_CONT);  // may deliver data right away
        }
      }
      return n;
    }
    checkResult();
    return 0;
  }

 private:
  static constexpr size_t kBufferCap = 1 << 20;

  void setup(const TransportOptions& opts) {
    multi_ = curl_multi_init();
    easy_ = curl_easy_init();
    if (!multi_ || !easy_) throw Error(ErrorKind::Transport, "cannot initialise libcurl");
    curl_easy_setopt(easy_, CURLOPT_SHARE, impl_.share);
    curl_easy_setopt(easy_, CURLOPT_URL, request_.url.c_str());
    curl_easy_setopt(easy_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy_, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT, opts.connectTimeoutSeconds);
    curl_easy_setopt(easy_, CURLOPT_LOW_SPEED_LIMIT, opts.lowSpeedBytes);
    curl_easy_setopt(easy_, CURLOPT_LOW_SPEED_TIME, opts.lowSpeedSeconds);
    curl_easy_setopt(easy_, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy_, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(easy_, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(easy_, CURLOPT_USERAGENT, opts.userAgent.c_str());
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &CurlStream::onHeader);
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &CurlStream::onData);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, errbuf_);
    curl_easy_setopt(easy_, CURLOPT_SOCKOPTFUNCTION, &CurlStream::onSocket);
    curl_easy_setopt(easy_, CURLOPT_SOCKOPTDATA, &impl_);
    // TLS: verification stays on unless configured off for this host.
    if (!request_.tls.verify) {
      curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!request_.tls.caFiles.empty()) {
      const std::string& blob = impl_.caBlob(request_.tls.caFiles);
      curl_blob b{const_cast<char*>(blob.data()), blob.size(), CURL_BLOB_NOCOPY};
      curl_easy_setopt(easy_, CURLOPT_CAINFO_BLOB, &b);
    }
    if (!request_.tls.clientCert.empty()) {
      curl_easy_setopt(easy_, CURLOPT_SSLCERT, request_.tls.clientCert.c_str());
      curl_easy_setopt(
          easy_, CURLOPT_SSLKEY,
          (request_.tls.clientKey.empty() ? request_.tls.clientCert : request_.tls.clientKey)
              .c_str());
    }
    // Method and body.
    bool hasBody = !request_.body.empty() || request_.bodyReader || request_.method == "PUT" ||
                   request_.method == "PATCH" || request_.method == "POST";
    uint64_t size = request_.bodyReader ? request_.bodySize : request_.body.size();
    if (request_.method == "HEAD") {
      curl_easy_setopt(easy_, CURLOPT_NOBODY, 1L);
    } else if (hasBody) {
      curl_easy_setopt(easy_, CURLOPT_READFUNCTION, &CurlStream::onRead);
      curl_easy_setopt(easy_, CURLOPT_READDATA, this);
      if (request_.method == "POST") {
        curl_easy_setopt(easy_, CURLOPT_POST, 1L);
        curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
      } else {
        curl_easy_setopt(easy_, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy_, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
        if (request_.method != "PUT")
          curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, request_.method.c_str());
      }
    } else if (request_.method != "GET") {
      curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, request_.method.c_str());
    }
    for (const auto& [k, v] : request_.headers.items()) {
      headerList_ = curl_slist_append(headerList_, (k + ": " + v).c_str());
    }
    // No 100-continue round trip; registries answer early errors anyway.
    headerList_ = curl_slist_append(headerList_, "Expect:");
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headerList_);
    curl_multi_add_handle(multi_, easy_);
    added_ = true;
  }

  static int onSocket(void* user, curl_socket_t, curlsocktype purpose) {
    if (purpose == CURLSOCKTYPE_IPCXN) ++static_cast<HttpTransport::Impl*>(user)->connections;
    return CURL_SOCKOPT_OK;
  }

  static size_t onHeader(char* data, size_t size, size_t n, void* user) {
    auto* self = static_cast<CurlStream*>(user);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
      self->headers_.clear();  // a new response (after 1xx)
      self->inHeaders_ = true;
      return size * n;
    }
    std::string t = trim(line);
    if (t.empty()) {
      long code = 0;
      curl_easy_getinfo(self->easy_, CURLINFO_RESPONSE_CODE, &code);
      if (code >= 200 || code == 0) {
        self->status_ = code;
        self->headersDone_ = true;
      }
      return size * n;
    }
    auto colon = t.find(':');
    if (colon != std::string::npos && self->headerBytes_ < 256 * 1024) {
      self->headerBytes_ += t.size();
      self->headers_.add(trim(t.substr(0, colon)), trim(t.substr(colon + 1)));
    }
    return size * n;
  }

  static size_t onData(char* data, size_t size, size_t n, void* user) {
    auto* self = static_cast<CurlStream*>(user);
    const size_t total = size * n;
    // read() waiting with an empty buffer gets the bytes in its own memory first; what does not
    // fit stays in order behind them, in the buffer.
    const size_t direct = self->target_ ? std::min(total, self->targetRoom_ - self->targetGot_) : 0;
    if (direct == 0 && self->buffer_.size() - self->pos_ >= kBufferCap) {
      self->paused_ = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    if (direct > 0) {
      std::memcpy(self->target_ + self->targetGot_, data, direct);
      self->targetGot_ += direct;
    }
    self->buffer_.append(data + direct, total - direct);
    return total;
  }

  static size_t onRead(char* buf, size_t size, size_t n, void* user) {
    auto* self = static_cast<CurlStream*>(user);
    size_t want = size * n;
    if (self->request_.bodyReader) {
      try {
        return self->request_.bodyReader(buf, want);
      } catch (const std::exception& e) {
        self->uploadError_ = e.what();
        return CURL_READFUNC_ABORT;
      }
    }
    size_t left = self->request_.body.size() - self->bodyPos_;
    size_t k = std::min(want, left);
    std::memcpy(buf, self->request_.body.data() + self->bodyPos_, k);
    self->bodyPos_ += k;
    return k;
  }

  void pump() {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi_, &running);
    if (mc != CURLM_OK) {
      throw Error(ErrorKind::Transport,
                  std::string("libcurl multi error: ") + curl_multi_strerror(mc));
    }
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg == CURLMSG_DONE) {
        done_ = true;
        result_ = msg->data.result;
      }
    }
    if (!done_ && pos_ == buffer_.size() && targetGot_ == 0 && !(headersDone_ && paused_)) {
      curl_multi_poll(multi_, nullptr, 0, 500, nullptr);
    }
  }

  void waitForHeaders() {
    while (!headersDone_ && !done_) pump();
    if (!headersDone_) {
      checkResult();
      // The connection closed cleanly without a response.
      throw Error(ErrorKind::Transport,
                  request_.method + " " + redactUrl(request_.url) +
                      ": the server closed the connection without a response");
    }
    if (log::enabled(log::Level::Debug)) {
      log::debug("http", {{"method", request_.method},
                          {"url", redactUrl(request_.url)},
                          {"status", std::to_string(status_)},
                          {"proto", protocol()}});
    }
  }

  void checkResult() {
    if (!done_ || result_ == CURLE_OK) return;
    std::string why = errbuf_[0] ? errbuf_ : curl_easy_strerror(result_);
    if (!uploadError_.empty()) why = "reading the upload body: " + uploadError_;
    if (result_ == CURLE_OPERATION_TIMEDOUT) {
      why = "no progress: " + why;
    }
    // With TLS 1.3 a server that refuses our client certificate (or its absence) sends its alert
    // after the handshake looks complete to us, so libcurl reports only a dead connection. Say
    // what that almost always means instead of leaving the reader with a socket error.
    bool tls = request_.url.rfind("https://", 0) == 0;
    bool deadRightAway =
        status_ == 0 && (result_ == CURLE_RECV_ERROR || result_ == CURLE_SEND_ERROR ||
                         result_ == CURLE_GOT_NOTHING);
    if (tls && deadRightAway) {
      why += request_.tls.clientCert.empty()
                 ? " (the server closed the TLS connection before answering: if this registry "
                   "requires a client certificate, configure `client` for it in hosts.toml)"
                 : " (the server closed the TLS connection before answering: it may have refused "
                   "the client certificate " +
                       request_.tls.clientCert + ")";
    }
    // OpenSSL's words for a server that answered the handshake with something that is not TLS.
    if (tls && result_ == CURLE_SSL_CONNECT_ERROR &&
        why.find("wrong version number") != std::string::npos)
      why += " (the server does not speak TLS there: is it a plain-http registry?)";
    // The code says which libcurl failure it was, so the client can tell what waiting may heal.
    std::string code =
        tls && deadRightAway ? kTlsClosedCode : std::to_string(static_cast<int>(result_));
    throw Error(ErrorKind::Transport, request_.method + " " + redactUrl(request_.url) + ": " + why,
                0, code);
  }

  void cleanup() {
    if (easy_) {
      if (added_) curl_multi_remove_handle(multi_, easy_);
      curl_easy_cleanup(easy_);
      easy_ = nullptr;
    }
    if (multi_) {
      curl_multi_cleanup(multi_);
      multi_ = nullptr;
    }
    if (headerList_) {
      curl_slist_free_all(headerList_);
      headerList_ = nullptr;
    }
    if (!released_) {
      released_ = true;
      impl_.limiter.release(origin_);
    }
  }

  HttpTransport::Impl& impl_;
  HttpRequest request_;
  std::string origin_;
  CURLM* multi_ = nullptr;
  CURL* easy_ = nullptr;
  curl_slist* headerList_ = nullptr;
  bool added_ = false;
  bool released_ = false;
  char errbuf_[CURL_ERROR_SIZE] = {};
  HttpHeaders headers_;
  size_t headerBytes_ = 0;
  long status_ = 0;
  bool inHeaders_ = false;
  bool headersDone_ = false;
  bool done_ = false;
  bool paused_ = false;
  CURLcode result_ = CURLE_OK;
  std::string buffer_;
  size_t pos_ = 0;
  // The caller's memory while read() waits on an empty buffer_ (see read()).
  char* target_ = nullptr;
  size_t targetRoom_ = 0, targetGot_ = 0;
  size_t bodyPos_ = 0;
  std::string uploadError_;
};

}  // namespace

HttpTransport::HttpTransport(TransportOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_.maxConnectionsPerHost)) {}

HttpTransport::~HttpTransport() = default;

std::unique_ptr<HttpStream> HttpTransport::open(const HttpRequest& request) {
  return std::make_unique<CurlStream>(*impl_, options_, request);
}

long HttpTransport::connectionsOpened() const { return impl_->connections.load(); }

}  // namespace snapimport::registry
