#include "registry/Http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace snapimport::registry {
namespace {

// One response on 127.0.0.1: `size` body bytes of a position-dependent pattern, sent as fast as
// the socket takes them. Not common/HttpServer: that one builds each response whole in memory,
// and a second copy of the body appearing mid-test would hide the transport's own growth.
class BodyServer {
 public:
  explicit BodyServer(uint64_t size) : size_(size) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(fd_, 1) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~BodyServer() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/blob"; }
  static char at(uint64_t i) { return static_cast<char>((i * 2654435761u) >> 13); }

 private:
  void serve() {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    std::string req;
    char b[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(c, b, sizeof b);
      if (n <= 0) break;
      req.append(b, static_cast<size_t>(n));
    }
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size_) +
                       "\r\nContent-Type: application/octet-stream\r\n\r\n";
    bool ok = ::write(c, head.data(), head.size()) == static_cast<ssize_t>(head.size());
    std::vector<char> chunk(1 << 20);
    for (uint64_t off = 0; ok && off < size_;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size_ - off));
      for (size_t i = 0; i < n; ++i) chunk[i] = at(off + i);
      for (size_t done = 0; ok && done < n;) {
        ssize_t w = ::write(c, chunk.data() + done, n - done);
        ok = w > 0;
        if (ok) done += static_cast<size_t>(w);
      }
      off += n;
    }
    ::close(c);
  }

  uint64_t size_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

long residentKiB() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace

// A body read in reads of every size, from one byte to more than curl hands over at once, comes
// out exact (read() fills the caller's memory straight from curl when nothing is buffered, and
// keeps the rest in order), and a reader far slower than the socket does not make the transport
// hold more than its bounded buffer.
TEST(HttpStream, BodyComesOutExactAndBufferedBoundedWhateverTheReadSizes) {
  constexpr uint64_t kSize = 96ull << 20;
  BodyServer server(kSize);
  HttpTransport transport;
  HttpRequest req;
  req.url = server.url();
  auto stream = transport.open(req);
  ASSERT_EQ(stream->status(), 200);
  const size_t sizes[] = {1, 7, 4096, 128 << 10, 1 << 20, 3 << 20, 100, 256 << 10};
  std::vector<char> buf(3 << 20);
  const long rssBefore = residentKiB();
  long rssPeak = rssBefore;
  uint64_t got = 0, calls = 0, wrong = 0;
  for (;;) {
    size_t want = sizes[calls++ % std::size(sizes)];
    size_t n = stream->read(buf.data(), want);
    if (n == 0) break;
    ASSERT_LE(n, want);
    for (size_t i = 0; i < n; ++i) wrong += buf[i] != BodyServer::at(got + i);
    got += n;
    if (calls % 64 == 0) rssPeak = std::max(rssPeak, residentKiB());
  }
  EXPECT_EQ(got, kSize);
  EXPECT_EQ(wrong, 0u) << "bytes out of order or corrupted";
  // The transport buffers at most about 1 MiB beyond the reader (0.1-1.5 MiB of growth seen);
  // without the pause in the write callback it grew by 25 MiB here.
  EXPECT_LT(rssPeak - rssBefore, 8 * 1024) << "the transport buffered the body instead of pausing";
}

TEST(HttpUrl, RedactsQueryAndUserinfo) {
  EXPECT_EQ(redactUrl("https://s3.example/bucket/blob?X-Amz-Signature=secret#f"),
            "https://s3.example/bucket/blob");
  EXPECT_EQ(redactUrl("https://user:pw@host/x"), "https://host/x");
}

TEST(HttpUrl, OriginIncludesDefaultPort) {
  EXPECT_EQ(originOf("https://Reg.Example/v2/"), "https://reg.example:443");
  EXPECT_EQ(originOf("http://reg.example:5000/v2/"), "http://reg.example:5000");
  EXPECT_NE(originOf("https://a.example/"), originOf("http://a.example/"));
}

TEST(HttpUrl, ResolvesRelativeAndAbsoluteLocations) {
  std::string base = "https://reg.example:5000/v2/a/b/blobs/uploads/";
  EXPECT_EQ(resolveUrl(base, "/v2/a/b/blobs/uploads/uuid?_state=xyz"),
            "https://reg.example:5000/v2/a/b/blobs/uploads/uuid?_state=xyz");
  EXPECT_EQ(resolveUrl(base, "uuid2"), "https://reg.example:5000/v2/a/b/blobs/uploads/uuid2");
  EXPECT_EQ(resolveUrl(base, "https://storage.example/x?sig=1"), "https://storage.example/x?sig=1");
}

TEST(HttpUrl, AppendsToExistingQuery) {
  EXPECT_EQ(appendQuery("https://r/u?_state=a%2Bb", "digest", "sha256:ab"),
            "https://r/u?_state=a%2Bb&digest=sha256%3Aab");
  EXPECT_EQ(appendQuery("https://r/u", "ns", "docker.io"), "https://r/u?ns=docker.io");
}

TEST(HttpHeaders, CaseInsensitive) {
  HttpHeaders h;
  h.add("WWW-Authenticate", "a");
  h.add("www-authenticate", "b");
  EXPECT_EQ(h.get("Www-Authenticate"), "a");
  EXPECT_EQ(h.getAll("WWW-AUTHENTICATE").size(), 2u);
  h.set("www-authenticate", "c");
  EXPECT_EQ(h.getAll("WWW-Authenticate").size(), 1u);
}

}  // namespace snapimport::registry
