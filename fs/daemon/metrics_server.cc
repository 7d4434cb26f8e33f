#include "daemon/metrics_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace tempfs {
namespace {

using Clock = std::chrono::steady_clock;
// After answering, how long unread input is drained so that closing does not
// reset the connection before the client has read the answer.
constexpr std::chrono::milliseconds kLinger{1000};

std::string Response(int code, const char* reason, const std::string& content_type, const std::string& body,
                     bool with_body, const char* extra_header = "") {
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
  out += "Content-Type: " + content_type + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_header;
  out += "Connection: close\r\n\r\n";
  if (with_body) out += body;
  return out;
}

std::string Error(int code, const char* reason, const char* extra_header = "") {
  return Response(code, reason, "text/plain; charset=utf-8", std::string(reason) + "\n", true, extra_header);
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c <= ' ' || c >= 0x7f || std::string_view("()<>@,;:\\\"/[]?={}").find(c) != std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// The whole answer to one request head (the lines before the blank line).
std::string Answer(std::string_view head, const std::function<std::string()>& render) {
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the blank line that ends the head
    lines.push_back(line);
    head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
  }
  if (lines.empty()) return Error(400, "Bad Request");
  // METHOD SP TARGET SP HTTP/1.x
  std::string_view rl = lines[0];
  size_t sp1 = rl.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos) {
    return Error(400, "Bad Request");
  }
  std::string_view method = rl.substr(0, sp1);
  std::string_view target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = rl.substr(sp2 + 1);
  if (!IsToken(method) || target.empty() || target[0] != '/' || (version != "HTTP/1.0" && version != "HTTP/1.1")) {
    return Error(400, "Bad Request");
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || !IsToken(lines[i].substr(0, colon))) return Error(400, "Bad Request");
  }
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") return Error(404, "Not Found");
  if (method != "GET" && method != "HEAD") return Error(405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
  std::string body;
  try {
    body = render();
  } catch (const std::exception& e) {
    TLOG_ERROR("metrics: rendering failed: %s", e.what());
    return Error(500, "Internal Server Error");
  }
  return Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, method == "GET");
}

// Where the request head ends (just past the blank line), or npos.
size_t HeadEnd(const std::string& buf) {
  size_t crlf = buf.find("\r\n\r\n");
  size_t lf = buf.find("\n\n");
  size_t a = crlf == std::string::npos ? crlf : crlf + 4;
  size_t b = lf == std::string::npos ? lf : lf + 2;
  return std::min(a, b);
}

struct Conn {
  enum State { kReading, kWriting, kDraining };
  int fd;
  State state = kReading;
  Clock::time_point deadline;
  std::string in, out;
  size_t sent = 0;
  bool done = false;
};

// Reads what is there; answers once the head is complete or too large.
void OnReadable(Conn& c, const std::function<std::string()>& render) {
  char buf[4096];
  for (;;) {
    ssize_t r = recv(c.fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r <= 0) {
      c.done = true;
      return;
    }
    if (c.state == Conn::kDraining) continue;
    c.in.append(buf, r);
    size_t end = HeadEnd(c.in);
    if (end != std::string::npos && end <= MetricsServer::kMaxHead) {
      c.out = Answer(std::string_view(c.in).substr(0, end), render);
    } else if (c.in.size() > MetricsServer::kMaxHead) {
      c.out = Error(431, "Request Header Fields Too Large");
    } else {
      continue;
    }
    c.state = Conn::kWriting;
    c.deadline = Clock::now() + MetricsServer::kTimeout;
    c.in.clear();
    return;
  }
}

void OnWritable(Conn& c) {
  while (c.sent < c.out.size()) {
    ssize_t w = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (w < 0) {
      c.done = true;
      return;
    }
    c.sent += w;
    c.deadline = Clock::now() + MetricsServer::kTimeout;
  }
  shutdown(c.fd, SHUT_WR);
  c.state = Conn::kDraining;
  c.deadline = Clock::now() + kLinger;
}

}  // namespace

MetricsServer::MetricsServer(std::function<std::string()> render) : render_(std::move(render)) {}

MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start(const HostPort& addr) {
  if (thread_.joinable()) return Status::Err(EBUSY, "metrics server already running");
  auto fd = Listen(addr);
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  fcntl(listen_fd_, F_SETFL, fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                   : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    Status st = Status::FromErrno("eventfd");
    close(listen_fd_);
    listen_fd_ = -1;
    return st;
  }
  thread_ = std::thread([this] { Loop(); });
  TLOG_INFO("metrics: serving http://%s/metrics", HostPort{addr.host, port_}.ToString().c_str());
  return Status::Ok();
}

void MetricsServer::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  ssize_t w = write(wake_fd_, &one, sizeof one);
  (void)w;
  thread_.join();
  close(wake_fd_);
  close(listen_fd_);
  wake_fd_ = listen_fd_ = -1;
}

void MetricsServer::Loop() {
  std::vector<Conn> conns;
  std::vector<pollfd> pfds;
  for (;;) {
    // [0] wake, [1] listener, then one per connection in order.
    pfds.clear();
    pfds.push_back({wake_fd_, POLLIN, 0});
    pfds.push_back({conns.size() < kMaxClients ? listen_fd_ : -1, POLLIN, 0});
    Clock::time_point now = Clock::now();
    int timeout_ms = -1;
    for (const Conn& c : conns) {
      pfds.push_back({c.fd, static_cast<short>(c.state == Conn::kWriting ? POLLOUT : POLLIN), 0});
      auto left = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - now).count();
      int ms = static_cast<int>(std::max<int64_t>(left, 0));
      timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
    }
    int n = poll(pfds.data(), pfds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      TLOG_ERROR("metrics: poll: %s", strerror(errno));
      break;
    }
    if (pfds[0].revents != 0) break;
    now = Clock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      short rev = pfds[i + 2].revents;
      if (rev != 0) {
        if (c.state == Conn::kWriting) {
          OnWritable(c);
        } else {
          OnReadable(c, render_);
          if (c.state == Conn::kWriting) OnWritable(c);
        }
      }
      if (Clock::now() >= c.deadline) c.done = true;
      if (c.done) close(c.fd);
    }
    std::erase_if(conns, [](const Conn& c) { return c.done; });
    while (pfds[1].revents != 0 && conns.size() < kMaxClients) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;  // EAGAIN, or a connection that went away meanwhile
      Conn c;
      c.fd = fd;
      c.deadline = Clock::now() + kTimeout;
      conns.push_back(std::move(c));
    }
  }
  for (const Conn& c : conns) close(c.fd);
}

}  // namespace tempfs
