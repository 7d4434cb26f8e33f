#include "cluster/peer_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include "cluster/auth.h"
#include "cluster/protocol.h"
#include "meta/codec.h"

namespace tempfs {

PeerClient::Conn::~Conn() {
  if (fd >= 0) close(fd);
}

PeerClient::PeerClient(NodeRegistry& registry, std::string secret, std::chrono::milliseconds timeout)
    : registry_(registry), secret_(std::move(secret)), timeout_(timeout) {}

PeerClient::~PeerClient() = default;

Result<std::unique_ptr<PeerClient::Conn>> PeerClient::Get(const HostPort& addr) {
  {
    std::lock_guard lock(mu_);
    auto& v = idle_[addr.ToString()];
    if (!v.empty()) {
      auto c = std::move(v.back());
      v.pop_back();
      return c;
    }
  }
  auto fd = Connect(addr, timeout_);
  if (!fd.ok()) return fd.status();
  auto c = std::make_unique<Conn>();
  c->fd = *fd;
  std::string hello(kHelloSize, '\0');
  Status st = ReadFull(c->fd, hello.data(), hello.size());
  if (!st.ok()) return st;
  Decoder d(hello);
  if (d.U32() != kHelloMagic || d.U32() != kProtocolVersion) {
    return Status::Err(EPROTO, "peer " + addr.ToString() + " speaks another protocol");
  }
  c->nonce = hello.substr(8);
  return c;
}

void PeerClient::Put(const HostPort& addr, std::unique_ptr<Conn> c) {
  std::lock_guard lock(mu_);
  auto& v = idle_[addr.ToString()];
  if (v.size() < 4) v.push_back(std::move(c));
}

Status PeerClient::Fetch(uint32_t owner, Ino ino, uint64_t version, uint64_t offset, uint64_t length,
                         const Sink& sink) {
  auto addr = registry_.Address(owner);
  if (!addr.ok()) return addr.status();
  struct Timer {
    Histogram* h;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    ~Timer() {
      if (h != nullptr) h->Observe(std::chrono::steady_clock::now() - t0);
    }
  } timer{fetch_latency_};
  // A pooled connection may have been closed by the peer meanwhile: a request
  // that fails before any byte arrived is tried once more on a new one.
  for (int attempt = 0;; attempt++) {
    auto c = Get(*addr);
    if (!c.ok()) return c.status();
    Conn& conn = **c;
    PeerRequest r;
    r.ino = ino;
    r.version = version;
    r.offset = offset;
    r.length = length;
    auto head = Send(conn, r);
    if (!head.ok()) {
      if (attempt == 0) continue;
      return head.status();
    }
    auto [status, len] = *head;
    if (status != 0) {
      Put(*addr, std::move(*c));
      // EIO: the owner has no readable copy (its data file is lost); its log says which.
      std::string why = status == EIO ? " (its copy is lost or unreadable; see its log)" : "";
      return Status::Err(static_cast<int>(status), "node " + registry_.Name(owner) + " refused" + why);
    }
    if (len != length) return Status::Err(ESTALE, "peer holds another size");
    std::vector<char> buf(1 << 20);
    uint64_t got = 0;
    while (got < len) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), len - got));
      // Whole chunks: fewer wakeups for the writer and the waiting readers.
      ssize_t n = recv(conn.fd, buf.data(), want, MSG_WAITALL);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return Status::Err(ECONNRESET, "node " + registry_.Name(owner) + " closed the connection");
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Err(ETIMEDOUT, "node " + registry_.Name(owner) + " stopped sending");
        return Status::FromErrno("recv");
      }
      Status s = sink(buf.data(), static_cast<size_t>(n));
      if (!s.ok()) return s;
      got += n;
      std::lock_guard lock(mu_);
      fetched_[owner] += n;
    }
    Put(*addr, std::move(*c));
    return Status::Ok();
  }
}

Result<std::pair<uint32_t, uint64_t>> PeerClient::Send(Conn& conn, PeerRequest r) {
  r.node = registry_.self();
  r.seq = ++conn.seq;
  std::string body = EncodeRequestBody(r);
  Mac mac = ComputeMac(secret_, conn.nonce, body);
  body.append(reinterpret_cast<const char*>(mac.data()), mac.size());
  Status st = WriteFull(conn.fd, body.data(), body.size());
  char head[kResponseSize];
  if (st.ok()) st = ReadFull(conn.fd, head, sizeof head);
  if (!st.ok()) return st;
  Decoder d(std::string_view(head, sizeof head));
  uint32_t status = d.U32();
  d.U32();
  return std::make_pair(status, d.U64());
}

Status PeerClient::Adopt(uint32_t node, Ino ino, uint64_t version) {
  auto addr = registry_.Address(node);
  if (!addr.ok()) return addr.status();
  for (int attempt = 0;; attempt++) {
    auto c = Get(*addr);
    if (!c.ok()) return c.status();
    PeerRequest r;
    r.op = PeerRequest::Op::kAdopt;
    r.ino = ino;
    r.version = version;
    auto head = Send(**c, r);
    if (!head.ok()) {
      if (attempt == 0) continue;  // a pooled connection the peer closed
      return head.status();
    }
    Put(*addr, std::move(*c));
    if (head->first != 0) {
      return Status::Err(static_cast<int>(head->first), "node " + registry_.Name(node) + " refused to take it over");
    }
    return Status::Ok();
  }
}

Result<std::vector<uint32_t>> PeerClient::LiveNodes() {
  auto members = registry_.Members();
  if (!members.ok()) return members.status();
  std::vector<uint32_t> out;
  for (auto& m : *members) {
    if (m.heartbeat_age_ms >= 0) out.push_back(m.num);
  }
  return out;
}

std::map<uint32_t, uint64_t> PeerClient::BytesFetched() {
  std::lock_guard lock(mu_);
  return fetched_;
}

}  // namespace tempfs
