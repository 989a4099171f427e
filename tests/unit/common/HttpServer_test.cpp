#include "common/HttpServer.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "../store/TempDir.h"

namespace snapimport::http {
namespace {

// Sends raw bytes to a unix socket and returns whatever comes back.
std::string raw(const std::string& sock, const std::string& request) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "connect failed";
  ssize_t ignored = write(fd, request.data(), request.size());
  (void)ignored;
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  testing::TempDir tmp;
  std::string sock = (tmp.path() / "admin.sock").string();
  Server server;

  void SetUp() override {
    server.handle("/healthz", [] { return Response{200, "text/plain", "ok\n"}; });
    server.handle("/boom", []() -> Response { throw std::runtime_error("kaput"); });
  }
};

TEST_F(HttpServerTest, ServesGetOnUnixSocketWithMode) {
  server.listen(sock, 0600);
  server.start();
  struct stat st {};
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int status = 0;
  EXPECT_EQ(get(sock, "/healthz?verbose=1", status), "ok\n");
  EXPECT_EQ(status, 200);
  get(sock, "/nope", status);
  EXPECT_EQ(status, 404);
  EXPECT_NE(get(sock, "/boom", status).find("kaput"), std::string::npos);
  EXPECT_EQ(status, 500);
  server.stop();
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << "socket file left behind";
}

TEST_F(HttpServerTest, ServesTcpOnAnEphemeralPort) {
  server.listen("127.0.0.1:0");
  server.start();
  std::string addr = server.boundAddress();
  ASSERT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
  EXPECT_NE(addr, "127.0.0.1:0");
  int status = 0;
  EXPECT_EQ(get(addr, "/healthz", status), "ok\n");
  EXPECT_EQ(status, 200);
}

TEST_F(HttpServerTest, RejectsOtherMethodsAndGarbage) {
  server.listen(sock);
  server.start();
  std::string r = raw(sock, "POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405", 0), 0u) << r;
  r = raw(sock, "HEAD /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_EQ(r.find("ok\n"), std::string::npos) << "HEAD must not send a body";
  r = raw(sock, "hello\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  // Still serving after all that.
  int status = 0;
  EXPECT_EQ(get(sock, "/healthz", status), "ok\n");
}

TEST_F(HttpServerTest, RefusesALiveSocketAndReplacesAStaleOne) {
  server.listen(sock);
  server.start();
  Server second;
  EXPECT_THROW(second.listen(sock), std::runtime_error);
  server.stop();
  // A leftover socket file nobody serves on (a crash) is replaced.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  close(fd);
  Server third;
  EXPECT_NO_THROW(third.listen(sock));
}

TEST(HttpClient, NamesTheAddressItCannotReach) {
  int status = 0;
  try {
    get("/nonexistent/dir/admin.sock", "/status", status);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/admin.sock"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace snapimport::http
