#include "cluster/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace tempfs {

Result<HostPort> HostPort::Parse(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return Status::Err(EINVAL, "expected HOST:PORT, got '" + s + "'");
  HostPort hp;
  hp.host = s.substr(0, colon);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  std::string port = s.substr(colon + 1);
  char* end = nullptr;
  long p = strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p <= 0 || p > 65535) return Status::Err(EINVAL, "bad port in '" + s + "'");
  hp.port = static_cast<int>(p);
  return hp;
}

std::string HostPort::ToString() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

Result<addrinfo*> Resolve(const HostPort& a, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &res);
  if (rc != 0) return Status::Err(EINVAL, "cannot resolve " + a.ToString() + ": " + gai_strerror(rc));
  return res;
}

}  // namespace

Result<int> Listen(const HostPort& addr) {
  auto res = Resolve(addr, true);
  if (!res.ok()) return res.status();
  Status last = Status::Err(EADDRNOTAVAIL, "listen " + addr.ToString());
  for (addrinfo* ai = *res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
      freeaddrinfo(*res);
      return fd;
    }
    last = Status::FromErrno("listen on " + addr.ToString());
    close(fd);
  }
  freeaddrinfo(*res);
  return last;
}

Result<int> Connect(const HostPort& addr, std::chrono::milliseconds timeout) {
  auto res = Resolve(addr, false);
  if (!res.ok()) return res.status();
  Status last = Status::Err(EHOSTUNREACH, "connect " + addr.ToString());
  for (addrinfo* ai = *res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(timeout.count()));
      if (rc == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        errno = err;
        rc = err == 0 ? 0 : -1;
      } else {
        errno = rc == 0 ? ETIMEDOUT : errno;
        rc = -1;
      }
    }
    if (rc == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      ConfigurePeerSocket(fd, timeout);
      freeaddrinfo(*res);
      return fd;
    }
    last = Status::FromErrno("connect " + addr.ToString());
    close(fd);
  }
  freeaddrinfo(*res);
  return last;
}

Status ReadFull(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    // Whole messages at once: fewer wakeups for large frames.
    ssize_t r = recv(fd, p, n, MSG_WAITALL);
    if (r == 0) return Status::Err(ECONNRESET, "peer closed the connection");
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Err(ETIMEDOUT, "peer stopped answering");
      return Status::FromErrno("recv");
    }
    p += r;
    n -= r;
  }
  return Status::Ok();
}

Status ReadFullBy(int fd, void* buf, size_t n, std::chrono::steady_clock::time_point deadline) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      return Status::Err(ETIMEDOUT, "peer did not send a whole request in time");
    }
    pollfd pfd{fd, POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count()));
    if (rc < 0 && errno != EINTR) return Status::FromErrno("poll");
    if (rc <= 0) continue;  // the deadline is checked above
    ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
    if (r == 0) return Status::Err(ECONNRESET, "peer closed the connection");
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Status::FromErrno("recv");
    }
    p += r;
    n -= r;
  }
  return Status::Ok();
}

Status ReadFullWithin(int fd, void* buf, size_t n, std::chrono::milliseconds limit) {
  using std::chrono::milliseconds;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto* p = static_cast<char*>(buf);
  bool shortened = false;
  Status st;
  while (n > 0) {
    // SO_RCVTIMEO bounds each recv(), and a recv() that got some bytes ends
    // with them: only the time left keeps a trickle from going on for ever.
    auto left = std::chrono::ceil<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= milliseconds::zero()) {
      st = Status::Err(ETIMEDOUT, "peer sent too slowly (" + std::to_string(n) + " bytes missing after " +
                                      std::to_string(limit.count()) + " ms)");
      break;
    }
    if (left < limit) {
      SetSocketTimeout(fd, SO_RCVTIMEO, left);
      shortened = true;
    }
    ssize_t r = recv(fd, p, n, MSG_WAITALL);
    if (r == 0) {
      st = Status::Err(ECONNRESET, "peer closed the connection");
      break;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;  // the deadline is checked above
      st = Status::FromErrno("recv");
      break;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  if (shortened) SetSocketTimeout(fd, SO_RCVTIMEO, limit);
  return st;
}

Status WriteFull(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Err(ETIMEDOUT, "peer stopped reading");
      return Status::FromErrno("send");
    }
    p += r;
    n -= r;
  }
  return Status::Ok();
}

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return HostPort{host, port}.ToString();
}

int AcceptUntilStopped(int listen_fd, int stop_fd) {
  pollfd p[2] = {{listen_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  if (poll(p, 2, -1) < 0) return -1;
  if (p[1].revents) return kAcceptStopped;
  int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE)) poll(nullptr, 0, 100);
  return fd < 0 ? -1 : fd;
}

bool ConnectionSet::Spawn(int fd, std::function<void(int)> serve) {
  {
    std::lock_guard lock(mu_);
    if (closing_) return false;
    if (max_pending_ == 0) {
      if (fds_.size() >= max_) return false;
      admitted_.insert(fd);
    } else {
      // Pushed-out threads end at once; room for 4 times as many as can be
      // pending only stops a pile-up of them under a flood.
      if (fds_.size() >= max_ + 5 * max_pending_) return false;
      if (pending_.size() >= max_pending_) {
        shutdown(pending_.front(), SHUT_RDWR);  // its thread sees the end and closes it
        pending_.pop_front();
        evicted_++;
      }
      pending_.push_back(fd);
    }
    fds_.insert(fd);
  }
  std::thread([this, fd, serve = std::move(serve)] {
    serve(fd);
    std::lock_guard lock(mu_);
    Forget(fd);
    close(fd);  // under mu_: a descriptor number is never shut down after reuse
    idle_.notify_all();
  }).detach();
  return true;
}

bool ConnectionSet::Admit(int fd) {
  std::lock_guard lock(mu_);
  if (admitted_.count(fd) != 0) return true;
  auto it = std::find(pending_.begin(), pending_.end(), fd);
  if (it == pending_.end() || admitted_.size() >= max_) return false;
  pending_.erase(it);
  admitted_.insert(fd);
  return true;
}

void ConnectionSet::Forget(int fd) {
  fds_.erase(fd);
  admitted_.erase(fd);
  auto it = std::find(pending_.begin(), pending_.end(), fd);
  if (it != pending_.end()) pending_.erase(it);
}

uint64_t ConnectionSet::evicted() const {
  std::lock_guard lock(mu_);
  return evicted_;
}

void ConnectionSet::CloseAll() {
  std::unique_lock lock(mu_);
  closing_ = true;
  for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  idle_.wait(lock, [&] { return fds_.empty(); });
}

bool ConnectionSet::closing() const {
  std::lock_guard lock(mu_);
  return closing_;
}

void SetSocketTimeout(int fd, int opt, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

void ConfigurePeerSocket(int fd, std::chrono::milliseconds timeout) {
  SetSocketTimeout(fd, SO_RCVTIMEO, timeout);
  SetSocketTimeout(fd, SO_SNDTIMEO, timeout);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace tempfs
