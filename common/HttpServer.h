#pragma once
// A minimal HTTP/1.1 server for the daemon's own GET endpoints (/metrics, /healthz, /status) on
// a TCP address or a unix socket. One thread serves one connection at a time with short socket
// timeouts and answers with Connection: close: scrapes are small and rare, so this keeps the
// code small enough to trust rather than pulling in a web framework.
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace snapimport::http {

struct Response {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response()>;

// Endpoint syntax shared by the server and the client: an absolute path is a unix socket,
// anything else "host:port" ("[v6]:port"; empty host = all interfaces).
bool isUnixAddress(const std::string& address);

class Server {
 public:
  Server();
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Register before start(). Paths match exactly; the query string is ignored.
  void handle(const std::string& path, Handler handler);
  // Binds and listens; throws std::runtime_error naming the address. A unix socket gets `mode`
  // (a stale socket file is replaced, a live one refused).
  void listen(const std::string& address, mode_t unixMode = 0600);
  // The address actually bound (the port filled in when listen() was given port 0).
  std::string boundAddress() const { return bound_; }
  void start();
  // Stops accepting, finishes the connection in hand, joins the thread, removes a unix socket.
  void stop();

 private:
  void run();
  void serveConnection(int fd);
  Response dispatch(const std::string& method, const std::string& target);

  std::map<std::string, Handler> handlers_;
  int listenFd_ = -1;
  int wakePipe_[2] = {-1, -1};
  std::string bound_;
  std::string unixPath_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

// GET `path` from `address`; returns the body and sets `status`. Throws std::runtime_error
// naming the address when it cannot connect or the answer is not HTTP.
std::string get(const std::string& address, const std::string& path, int& status,
                int timeoutMs = 5000);

}  // namespace snapimport::http
