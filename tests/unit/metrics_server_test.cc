// MetricsServer over real TCP on 127.0.0.1: the 200 answer byte for byte,
// error statuses, the head size bound, silent clients, and a prompt Stop().
#include "daemon/metrics_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/net.h"

namespace tempfs {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(HostPort{"127.0.0.1", 0}).ok());
    ASSERT_GT(server_.port(), 0);
  }

  // Connects with socket timeouts of `timeout`, so every read below is bounded.
  int Dial(std::chrono::milliseconds timeout = 3000ms) {
    auto fd = Connect(HostPort{"127.0.0.1", server_.port()}, timeout);
    EXPECT_TRUE(fd.ok()) << fd.status().ToString();
    return fd.ok() ? *fd : -1;
  }

  // Reads until the server closes (or the socket timeout passes).
  static std::string ReadAll(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r <= 0) break;
      out.append(buf, r);
    }
    return out;
  }

  std::string Exchange(const std::string& request) {
    int fd = Dial();
    if (fd < 0) return {};
    EXPECT_TRUE(WriteFull(fd, request.data(), request.size()).ok());
    std::string reply = ReadAll(fd);
    close(fd);
    return reply;
  }

  static std::string StatusLine(const std::string& reply) { return reply.substr(0, reply.find("\r\n")); }

  std::atomic<int> renders_{0};
  MetricsServer server_{[this] {
    ++renders_;
    return std::string("# TYPE up gauge\nup 1\n");
  }};
};

TEST_F(MetricsServerTest, ServesMetrics) {
  std::string reply = Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  size_t head_end = reply.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << reply;
  std::string head = reply.substr(0, head_end + 2);
  std::string body = reply.substr(head_end + 4);
  EXPECT_EQ(StatusLine(reply), "HTTP/1.1 200 OK");
  EXPECT_NE(head.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nConnection: close\r\n"), std::string::npos) << head;
  EXPECT_EQ(body, "# TYPE up gauge\nup 1\n");
  EXPECT_EQ(renders_, 1);

  // HTTP/1.0, a query string, and bare LF line ends.
  reply = Exchange("GET /metrics?x=1 HTTP/1.0\n\n");
  EXPECT_EQ(StatusLine(reply), "HTTP/1.1 200 OK");
  EXPECT_TRUE(reply.ends_with("\r\n\r\n# TYPE up gauge\nup 1\n")) << reply;

  // HEAD: same head, no body.
  reply = Exchange("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusLine(reply), "HTTP/1.1 200 OK");
  EXPECT_NE(reply.find("Content-Length: 21\r\n"), std::string::npos) << reply;
  EXPECT_TRUE(reply.ends_with("\r\n\r\n")) << reply;
}

TEST_F(MetricsServerTest, RequestSentByteByByte) {
  int fd = Dial();
  ASSERT_GE(fd, 0);
  std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  for (char c : request) ASSERT_TRUE(WriteFull(fd, &c, 1).ok());
  EXPECT_EQ(StatusLine(ReadAll(fd)), "HTTP/1.1 200 OK");
  close(fd);
}

TEST_F(MetricsServerTest, ErrorStatuses) {
  EXPECT_EQ(StatusLine(Exchange("GET / HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(StatusLine(Exchange("GET /metricsx HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
  std::string reply = Exchange("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(StatusLine(reply), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(reply.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << reply;
  EXPECT_EQ(StatusLine(Exchange("DELETE /metrics HTTP/1.0\r\n\r\n")), "HTTP/1.1 405 Method Not Allowed");
  for (const char* bad : {"garbage\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
                          "GET  /metrics HTTP/1.1\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "\r\n\r\n"}) {
    EXPECT_EQ(StatusLine(Exchange(bad)), "HTTP/1.1 400 Bad Request") << bad;
  }
  EXPECT_EQ(renders_, 0);  // only a good GET renders
}

TEST_F(MetricsServerTest, OversizedHead) {
  std::string request = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(MetricsServer::kMaxHead, 'a') + "\r\n\r\n";
  EXPECT_EQ(StatusLine(Exchange(request)), "HTTP/1.1 431 Request Header Fields Too Large");
  // The client keeps sending after the limit: the answer still arrives.
  int fd = Dial();
  ASSERT_GE(fd, 0);
  std::string endless = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a');
  (void)WriteFull(fd, endless.data(), endless.size());  // may fail once the server has closed
  EXPECT_EQ(StatusLine(ReadAll(fd)), "HTTP/1.1 431 Request Header Fields Too Large");
  close(fd);
  // Just within the bound is fine.
  std::string head = "GET /metrics HTTP/1.1\r\nX-Big: ";
  head += std::string(MetricsServer::kMaxHead - head.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(head.size(), MetricsServer::kMaxHead);
  EXPECT_EQ(StatusLine(Exchange(head)), "HTTP/1.1 200 OK");
}

TEST_F(MetricsServerTest, SilentClientDoesNotBlockOthers) {
  int silent = Dial();
  ASSERT_GE(silent, 0);
  auto start = Clock::now();
  EXPECT_EQ(StatusLine(Exchange("GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
  EXPECT_LT(Clock::now() - start, 2s);  // served at once, not after the silent one's timeout
  close(silent);
}

TEST_F(MetricsServerTest, SilentClientsAreDroppedAfterTimeout) {
  // Fill every slot with a client that says nothing.
  std::vector<int> silent;
  for (size_t i = 0; i < MetricsServer::kMaxClients; ++i) {
    silent.push_back(Dial(MetricsServer::kTimeout + 3000ms));
    ASSERT_GE(silent.back(), 0);
  }
  // Another client is still served once the silent ones time out.
  auto start = Clock::now();
  int fd = Dial(MetricsServer::kTimeout + 3000ms);
  ASSERT_GE(fd, 0);
  std::string request = "GET /metrics HTTP/1.1\r\n\r\n";
  ASSERT_TRUE(WriteFull(fd, request.data(), request.size()).ok());
  EXPECT_EQ(StatusLine(ReadAll(fd)), "HTTP/1.1 200 OK");
  EXPECT_LT(Clock::now() - start, MetricsServer::kTimeout + 2s);
  close(fd);
  // The silent ones were closed by the server (EOF, not our socket timeout).
  for (int s : silent) {
    char c;
    EXPECT_EQ(recv(s, &c, 1, 0), 0);
    close(s);
  }
}

TEST_F(MetricsServerTest, StopIsPrompt) {
  int silent = Dial();
  ASSERT_GE(silent, 0);
  EXPECT_EQ(StatusLine(Exchange("GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
  int port = server_.port();
  auto start = Clock::now();
  server_.Stop();
  EXPECT_LT(Clock::now() - start, 1s);
  char c;
  EXPECT_EQ(recv(silent, &c, 1, 0), 0);  // its connection was closed
  close(silent);
  EXPECT_FALSE(Connect(HostPort{"127.0.0.1", port}, 1000ms).ok());
  server_.Stop();  // twice is fine
}

TEST(MetricsServer, StartErrors) {
  MetricsServer a([] { return std::string(); });
  ASSERT_TRUE(a.Start(HostPort{"127.0.0.1", 0}).ok());
  Status again = a.Start(HostPort{"127.0.0.1", 0});
  EXPECT_EQ(again.err(), EBUSY);
  MetricsServer b([] { return std::string(); });
  EXPECT_FALSE(b.Start(HostPort{"127.0.0.1", a.port()}).ok());  // port taken
  EXPECT_EQ(b.port(), 0);
}

}  // namespace
}  // namespace tempfs
