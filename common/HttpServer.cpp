#include "HttpServer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace snapimport::http {
namespace {

constexpr size_t kMaxRequestHead = 8192;
constexpr int kIoTimeoutMs = 2000;

std::string errnoText() { return std::strerror(errno); }

void setTimeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool writeAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

sockaddr_un unixAddr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    throw std::runtime_error("unix socket path " + path + " is longer than " +
                             std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Splits "host:port" / "[v6]:port"; throws naming the address.
void splitHostPort(const std::string& address, std::string& host, std::string& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("address " + address + " is not host:port");
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
}

std::string describe(const sockaddr* sa) {
  char host[NI_MAXHOST], port[NI_MAXSERV];
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) !=
      0)
    return "?";
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict for "literal" + string&&
  // (its operator+ inserts at 0 into the temporary).
  std::string out;
  if (sa->sa_family == AF_INET6) out += '[';
  out += host;
  if (sa->sa_family == AF_INET6) out += ']';
  out += ':';
  out += port;
  return out;
}

// Connects to a unix path or host:port; returns the fd or throws naming the address.
int connectTo(const std::string& address, int timeoutMs) {
  if (isUnixAddress(address)) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket: " + errnoText());
    sockaddr_un addr = unixAddr(address);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::string e = errnoText();
      close(fd);
      throw std::runtime_error("cannot connect to " + address + ": " + e);
    }
    setTimeouts(fd, timeoutMs);
    return fd;
  }
  std::string host, port;
  splitHostPort(address, host, port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? "localhost" : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) throw std::runtime_error("cannot resolve " + address + ": " + gai_strerror(rc));
  std::string lastError = "no addresses";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    setTimeouts(fd, timeoutMs);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      freeaddrinfo(res);
      return fd;
    }
    lastError = errnoText();
    close(fd);
  }
  freeaddrinfo(res);
  throw std::runtime_error("cannot connect to " + address + ": " + lastError);
}

}  // namespace

bool isUnixAddress(const std::string& address) { return !address.empty() && address[0] == '/'; }

Server::Server() = default;

Server::~Server() { stop(); }

void Server::handle(const std::string& path, Handler handler) {
  handlers_[path] = std::move(handler);
}

void Server::listen(const std::string& address, mode_t unixMode) {
  if (isUnixAddress(address)) {
    sockaddr_un addr = unixAddr(address);
    struct stat st {};
    if (lstat(address.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(address + " exists and is not a socket");
      int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      bool live =
          probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      if (probe >= 0) close(probe);
      if (live) throw std::runtime_error("another process is already serving on " + address);
      unlink(address.c_str());
    }
    listenFd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listenFd_ < 0) throw std::runtime_error("socket: " + errnoText());
    // With the usual umask the file is created without group/other write, so nobody else can
    // connect before the chmod narrows it further.
    if (bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("cannot bind unix socket " + address + ": " + errnoText());
    }
    unixPath_ = address;
    if (chmod(address.c_str(), unixMode) != 0)
      throw std::runtime_error("chmod " + address + ": " + errnoText());
    bound_ = address;
  } else {
    std::string host, port;
    splitHostPort(address, host, port);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("cannot resolve " + address + ": " + gai_strerror(rc));
    std::string lastError = "no addresses";
    for (addrinfo* ai = res; ai && listenFd_ < 0; ai = ai->ai_next) {
      int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        listenFd_ = fd;
      } else {
        lastError = errnoText();
        close(fd);
      }
    }
    freeaddrinfo(res);
    if (listenFd_ < 0) throw std::runtime_error("cannot listen on " + address + ": " + lastError);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(listenFd_, reinterpret_cast<sockaddr*>(&ss), &len);
    bound_ = describe(reinterpret_cast<sockaddr*>(&ss));
  }
  if (::listen(listenFd_, 16) != 0)
    throw std::runtime_error("listen on " + address + ": " + errnoText());
  fcntl(listenFd_, F_SETFL, fcntl(listenFd_, F_GETFL) | O_NONBLOCK);
}

void Server::start() {
  if (pipe2(wakePipe_, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errnoText());
  thread_ = std::thread([this] { run(); });
}

void Server::stop() {
  if (thread_.joinable()) {
    stopping_ = true;
    char c = 0;
    ssize_t ignored = write(wakePipe_[1], &c, 1);
    (void)ignored;
    thread_.join();
  }
  for (int* fd : {&listenFd_, &wakePipe_[0], &wakePipe_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  if (!unixPath_.empty()) unlink(unixPath_.c_str());
  unixPath_.clear();
}

void Server::run() {
  while (!stopping_) {
    pollfd fds[2] = {{listenFd_, POLLIN, 0}, {wakePipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // EAGAIN after a client gave up, EMFILE: try again at the next poll
    setTimeouts(fd, kIoTimeoutMs);
    serveConnection(fd);
    close(fd);
  }
}

void Server::serveConnection(int fd) {
  std::string head;
  char buf[2048];
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    if (head.size() > kMaxRequestHead) return;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  std::string line = head.substr(0, head.find_first_of("\r\n"));
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  Response r;
  std::string method;
  if (sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    r = {400, "text/plain; charset=utf-8", "malformed request line\n"};
  } else {
    method = line.substr(0, sp1);
    r = dispatch(method, line.substr(sp1 + 1, sp2 - sp1 - 1));
  }
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reasonPhrase(r.status) + "\r\n" +
                    "Content-Type: " + r.contentType + "\r\n" +
                    "Content-Length: " + std::to_string(r.body.size()) +
                    "\r\nConnection: close\r\n";
  if (r.status == 405) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (method != "HEAD") out += r.body;
  writeAll(fd, out);
}

Response Server::dispatch(const std::string& method, const std::string& target) {
  if (method != "GET" && method != "HEAD")
    return {405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
  std::string path = target.substr(0, target.find('?'));
  auto it = handlers_.find(path);
  if (it == handlers_.end()) {
    std::string known;
    for (const auto& [p, h] : handlers_) known += p + "\n";
    return {404, "text/plain; charset=utf-8", "not found; endpoints:\n" + known};
  }
  try {
    return it->second();
  } catch (const std::exception& e) {
    return {500, "text/plain; charset=utf-8", std::string(e.what()) + "\n"};
  }
}

std::string get(const std::string& address, const std::string& path, int& status, int timeoutMs) {
  int fd = connectTo(address, timeoutMs);
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (!writeAll(fd, req)) {
    std::string e = errnoText();
    close(fd);
    throw std::runtime_error("cannot send request to " + address + ": " + e);
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string e = errnoText();
      close(fd);
      throw std::runtime_error("reading from " + address + ": " + e);
    }
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  size_t headEnd = resp.find("\r\n\r\n");
  if (resp.compare(0, 5, "HTTP/") != 0 || headEnd == std::string::npos || resp.size() < 12) {
    throw std::runtime_error(address + " did not answer with HTTP");
  }
  status = std::atoi(resp.c_str() + 9);
  // Connection: close, so the body is everything after the head.
  return resp.substr(headEnd + 4);
}

}  // namespace snapimport::http
