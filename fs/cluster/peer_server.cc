#include "cluster/peer_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "cluster/auth.h"
#include "cluster/protocol.h"
#include "common/log.h"
#include "meta/codec.h"

namespace tempfs {
namespace {

// Sends `len` bytes of `data_fd` from `off` in tagged frames (protocol.h).
// Read into memory rather than sendfile(2)'d: the tag needs the bytes.
Status SendFrames(int fd, const ResponseKey& key, int data_fd, uint64_t off, uint64_t len, std::vector<char>* buf,
                  const std::function<void(size_t)>& sent) {
  buf->resize(kFrameSize + kTagSize);
  while (len > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kFrameSize, len));
    size_t got = 0;
    while (got < n) {
      ssize_t r = pread(data_fd, buf->data() + got, n - got, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::FromErrno("read the data file");
      if (r == 0) return Status::Err(EIO, "data file shorter than its size");
      got += r;
    }
    Tag tag;
    if (!FrameTag(key, off, std::string_view(buf->data(), n), &tag)) {
      return Status::Err(EIO, "cannot compute a frame tag");
    }
    std::copy(tag.begin(), tag.end(), buf->begin() + n);
    TEMPFS_RETURN_IF_ERROR(WriteFull(fd, buf->data(), n + kTagSize));
    sent(n);
    off += n;
    len -= n;
  }
  return Status::Ok();
}

}  // namespace

PeerServer::PeerServer(Vfs& vfs, std::string secret, std::chrono::milliseconds timeout)
    : vfs_(vfs), secret_(std::move(secret)), timeout_(timeout) {}

PeerServer::~PeerServer() { Stop(); }

Status PeerServer::Start(const HostPort& listen) {
  auto fd = Listen(listen);
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  if (pipe2(stop_pipe_, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
  accept_ = std::thread([this] { AcceptLoop(); });
  TLOG_INFO("serving peers on %s", listen.ToString().c_str());
  return Status::Ok();
}

void PeerServer::Stop() {
  if (!accept_.joinable()) return;
  char c = 0;
  ssize_t n = write(stop_pipe_[1], &c, 1);
  (void)n;
  accept_.join();
  // Connection threads use this object: end their connections (an idle
  // one would otherwise wait a minute) and wait for them.
  connections_.CloseAll();
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
}

void PeerServer::AcceptLoop() {
  for (;;) {
    int fd = AcceptUntilStopped(listen_fd_, stop_pipe_[0]);
    if (fd == kAcceptStopped) return;
    if (fd < 0) continue;
    if (!connections_.Spawn(fd, [this](int c) { Serve(c); })) {
      TLOG_WARN("peer %s: refused, too many connections", PeerName(fd).c_str());
      close(fd);
    }
  }
}

void PeerServer::Serve(int fd) {
  // The first request must arrive whole soon, however slowly it trickles:
  // until then the connection holds only a pending slot (see ConnectionSet).
  const auto auth_deadline = std::chrono::steady_clock::now() + kAuthDeadline;
  ConfigurePeerSocket(fd, timeout_);
  std::string who = PeerName(fd);
  std::string nonce = RandomBytes(kNonceSize);
  const std::string frame_key = FrameKey(secret_, nonce);
  Encoder hello;
  hello.U32(kHelloMagic);
  hello.U32(kProtocolVersion);
  hello.buffer() += nonce;
  if (!WriteFull(fd, hello.buffer().data(), hello.size()).ok()) return;
  uint64_t last_seq = 0;
  std::vector<char> frame;
  for (;;) {
    auto deadline = auth_deadline;
    if (last_seq != 0) {
      // Idle connections are kept for a while for the next request, which
      // must then arrive whole within the timeout.
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 60000) <= 0) return;
      deadline = std::chrono::steady_clock::now() + timeout_;
    }
    std::string req(kRequestSize, '\0');
    Status rs = ReadFullBy(fd, req.data(), req.size(), deadline);
    if (!rs.ok()) {
      if (last_seq == 0 && rs.err() == ETIMEDOUT) {
        unauthenticated_closed++;
        TLOG_WARN("peer %s: closed, no request within %llds", who.c_str(),
                  static_cast<long long>(kAuthDeadline.count()));
      }
      return;
    }
    std::string body = req.substr(0, kRequestBody);
    Mac got;
    std::copy(req.begin() + kRequestBody, req.end(), got.begin());
    PeerRequest r;
    if (!MacEqual(got, ComputeMac(secret_, nonce, body)) || !DecodeRequestBody(body, &r) || r.seq <= last_seq) {
      rejected++;
      TLOG_WARN("peer %s: request refused: bad authentication", who.c_str());
      return;
    }
    if (last_seq == 0 && !connections_.Admit(fd)) {
      TLOG_WARN("peer %s (node %u): refused, %zu authenticated connections already", who.c_str(), r.node,
                kMaxConnections);
      return;
    }
    last_seq = r.seq;
    const ResponseKey key{secret_, nonce, frame_key, body};
    auto respond = [&](uint32_t status, uint64_t length) {
      std::string head = EncodeResponse(key, status, length);
      return WriteFull(fd, head.data(), head.size());
    };
    if (r.op == PeerRequest::Op::kAdopt) {
      Status st = vfs_.Adopt(r.ino, r.version, r.node);
      TLOG_INFO("peer %s (node %u): take over inode %llu version %llu: %s", who.c_str(), r.node,
                static_cast<unsigned long long>(r.ino), static_cast<unsigned long long>(r.version),
                st.ok() ? "accepted" : st.ToString().c_str());
      if (!respond(static_cast<uint32_t>(st.err()), 0).ok()) return;
      continue;
    }
    auto file = vfs_.OpenForPeer(r.ino, r.version);
    if (!file.ok()) {
      TLOG_INFO("peer %s (node %u): inode %llu version %llu: %s", who.c_str(), r.node,
                static_cast<unsigned long long>(r.ino), static_cast<unsigned long long>(r.version),
                file.status().ToString().c_str());
      if (!respond(static_cast<uint32_t>(file.err()), 0).ok()) return;
      continue;
    }
    auto [data_fd, size] = *file;
    uint64_t off = std::min(r.offset, size);
    uint64_t len = std::min(r.length, size - off);
    Status st = respond(0, len);
    if (st.ok()) {
      st = SendFrames(fd, key, data_fd, off, len, &frame, [&](size_t n) {
        bytes_served += n;
        std::lock_guard lock(mu_);
        served_[r.node] += n;
      });
    }
    close(data_fd);
    if (!st.ok()) return;
  }
}

std::map<uint32_t, uint64_t> PeerServer::BytesServed() {
  std::lock_guard lock(mu_);
  return served_;
}

}  // namespace tempfs
