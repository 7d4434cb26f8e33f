#include "support/fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "gtest/gtest.h"

namespace tempfs::testing {

struct FaultProxy::Conn {
  int client = -1;
  int server = -1;
  Plan plan;
  std::thread up, down;
  ~Conn() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

namespace {

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

FaultProxy::FaultProxy(int target_port) : target_port_(target_port) {}

FaultProxy::~FaultProxy() { Stop(); }

bool FaultProxy::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 128) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
      ::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "fault proxy: cannot listen on loopback: " << strerror(errno);
    return false;
  }
  port_ = ntohs(a.sin_port);
  accept_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void FaultProxy::Stop() {
  if (!accept_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  CutAll();
  stop_cv_.notify_all();
  char b = 0;
  if (::write(stop_pipe_[1], &b, 1) != 1) ADD_FAILURE() << "fault proxy: cannot stop the accept loop";
  accept_.join();
  // No new connections now; conns_ is only read.
  for (auto& c : conns_) {
    c->up.join();
    c->down.join();
  }
  conns_.clear();
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

void FaultProxy::Set(const Plan& plan) {
  std::lock_guard lock(mu_);
  plan_ = plan;
}

void FaultProxy::CutAll() {
  std::lock_guard lock(mu_);
  for (auto& c : conns_) {
    ::shutdown(c->client, SHUT_RDWR);
    ::shutdown(c->server, SHUT_RDWR);
  }
}

void FaultProxy::AcceptLoop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
    if (p[0].revents == 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto c = std::make_unique<Conn>();
    c->client = client;
    c->server = ConnectLoopback(target_port_);
    accepted_++;
    std::lock_guard lock(mu_);
    if (c->server < 0 || stopping_) continue;  // the client sees the connection end
    if (plan_.connections != 0) {
      c->plan = plan_;
      if (plan_.connections > 0) plan_.connections--;
    }
    Conn* raw = c.get();
    c->up = std::thread([this, raw] { Pump(raw, false); });
    c->down = std::thread([this, raw] { Pump(raw, true); });
    conns_.push_back(std::move(c));
  }
}

// One direction of a connection. Only the server-to-client one has faults.
void FaultProxy::Pump(Conn* c, bool to_client) {
  const int from = to_client ? c->server : c->client;
  const int to = to_client ? c->client : c->server;
  const Plan plan = to_client ? c->plan : Plan{};
  std::vector<char> buf(64 * 1024);
  uint64_t pos = 0;
  for (;;) {
    size_t want = buf.size();
    bool at_fault = plan.fault == Fault::kStall || plan.fault == Fault::kCut;
    if (at_fault) {
      if (pos >= plan.at) {
        applied_++;
        if (plan.fault == Fault::kCut) {
          ::shutdown(c->client, SHUT_RDWR);
          ::shutdown(c->server, SHUT_RDWR);
          return;
        }
        std::unique_lock lock(mu_);
        stop_cv_.wait(lock, [&] { return stopping_; });
        return;
      }
      want = static_cast<size_t>(std::min<uint64_t>(want, plan.at - pos));
    }
    const bool slow = plan.fault == Fault::kSlow && pos >= plan.at;
    if (slow) {
      if (pos == plan.at) applied_++;
      want = std::min<size_t>(want, 100);
      // The pace of the trickle; Stop() ends it at once.
      std::unique_lock lock(mu_);
      if (stop_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_; })) return;
    } else if (plan.fault == Fault::kSlow) {
      want = static_cast<size_t>(std::min<uint64_t>(want, plan.at - pos));
    }
    ssize_t n = ::recv(from, buf.data(), want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::shutdown(to, SHUT_WR);
      return;
    }
    if (plan.fault == Fault::kFlip && plan.at >= pos && plan.at < pos + static_cast<uint64_t>(n)) {
      buf[plan.at - pos] ^= static_cast<char>(0xff);
      applied_++;
    }
    pos += static_cast<uint64_t>(n);
    if (!SendAll(to, buf.data(), static_cast<size_t>(n))) {
      ::shutdown(from, SHUT_RD);
      return;
    }
  }
}

}  // namespace tempfs::testing
