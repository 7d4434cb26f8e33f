#include "cluster/peer_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include "cluster/auth.h"
#include "cluster/protocol.h"
#include "common/log.h"
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
  Status st = ReadFullWithin(c->fd, hello.data(), hello.size(), timeout_);
  if (!st.ok()) return st;
  Decoder d(hello);
  if (d.U32() != kHelloMagic || d.U32() != kProtocolVersion) {
    return Status::Err(EPROTO, "peer " + addr.ToString() + " speaks another protocol");
  }
  c->nonce = hello.substr(8);
  c->frame_key = FrameKey(secret_, c->nonce);
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
  const std::string who = "node " + registry_.Name(owner);
  uint64_t done = 0;  // checked and handed to `sink`
  int damaged = 0;    // responses that failed their MAC or were cut
  for (;;) {
    auto c = Get(*addr);
    Status st = c.status();
    bool local_failure = false;
    if (c.ok()) {
      Conn& conn = **c;
      // A pooled connection may have been closed by the peer meanwhile: a
      // request on one that fails at once, before any answer, is simply
      // tried again (the pool is finite). A silent peer is not asked again.
      const bool pooled = conn.seq > 0;
      PeerRequest r;
      r.ino = ino;
      r.version = version;
      r.offset = offset + done;
      r.length = length - done;
      auto ex = Send(conn, r);
      st = ex.status();
      if (ex.ok()) {
        if (ex->status != 0) {
          Put(*addr, std::move(*c));
          // EIO: the owner has no readable copy (its data file is lost); its log says which.
          std::string why = ex->status == EIO ? " (its copy is lost or unreadable; see its log)" : "";
          return Status::Err(static_cast<int>(ex->status), who + " refused" + why);
        }
        if (ex->length != r.length) return Status::Err(ESTALE, "peer holds another size");
        const ResponseKey key{secret_, conn.nonce, conn.frame_key, ex->body};
        const uint64_t before = done;
        st = ReceiveFrames(conn, key, r.offset, r.length, sink, &done, &local_failure);
        std::lock_guard lock(mu_);
        fetched_[owner] += done - before;
      } else if (pooled && st.err() != EBADMSG && st.err() != ETIMEDOUT) {
        continue;
      }
      if (st.ok()) {
        Put(*addr, std::move(*c));
        return st;
      }
    }
    // Bad bytes, a changed hello or a cut connection: the rest of the range
    // is asked for again on a new connection, a bounded number of times. A
    // silent or absent peer is not asked again (that would only add waits).
    const int e = st.err();
    bool retry = !local_failure && (e == EBADMSG || e == EPROTO || e == ECONNRESET || e == EPIPE);
    if (!retry) return st;
    damaged++;
    TLOG_WARN("%s: inode %llu version %llu at %llu: %s (%d of %d tries)", who.c_str(),
              static_cast<unsigned long long>(ino), static_cast<unsigned long long>(version),
              static_cast<unsigned long long>(offset + done), st.ToString().c_str(), damaged, kMaxDamaged);
    if (damaged >= kMaxDamaged) return Status::Err(EIO, who + ": " + st.ToString());
  }
}

Status PeerClient::ReceiveFrames(Conn& conn, const ResponseKey& key, uint64_t offset, uint64_t length,
                                 const Sink& sink, uint64_t* done, bool* local_failure) {
  std::vector<char> buf(kFrameSize + kTagSize);
  for (uint64_t got = 0; got < length;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kFrameSize, length - got));
    // A frame must come within the timeout: a peer that trickles is as stuck as a silent one.
    TEMPFS_RETURN_IF_ERROR(ReadFullWithin(conn.fd, buf.data(), n + kTagSize, timeout_));
    Tag tag, want;
    std::copy(buf.begin() + n, buf.begin() + n + kTagSize, tag.begin());
    if (!FrameTag(key, offset + got, std::string_view(buf.data(), n), &want)) {
      return Status::Err(EIO, "cannot compute a frame tag");
    }
    // Checked before anyone sees them: a reader gets these bytes or an error.
    if (!TagEqual(tag, want)) return Status::Err(EBADMSG, "frame failed its MAC (changed on the way)");
    Status s = sink(buf.data(), n);
    if (!s.ok()) {
      *local_failure = true;
      return s;
    }
    got += n;
    *done += n;
  }
  return Status::Ok();
}

Result<PeerClient::Exchange> PeerClient::Send(Conn& conn, PeerRequest r) {
  r.node = registry_.self();
  r.seq = ++conn.seq;
  Exchange ex;
  ex.body = EncodeRequestBody(r);
  Mac mac = ComputeMac(secret_, conn.nonce, ex.body);
  std::string req = ex.body;
  req.append(reinterpret_cast<const char*>(mac.data()), mac.size());
  Status st = WriteFull(conn.fd, req.data(), req.size());
  char head[kResponseSize];
  if (st.ok()) st = ReadFullWithin(conn.fd, head, sizeof head, timeout_);
  if (!st.ok()) return st;
  const ResponseKey key{secret_, conn.nonce, conn.frame_key, ex.body};
  if (!DecodeResponse(key, std::string_view(head, sizeof head), &ex.status, &ex.length)) {
    return Status::Err(EBADMSG, "response failed its MAC (changed on the way)");
  }
  return ex;
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
    auto ex = Send(**c, r);
    if (!ex.ok()) {
      if (attempt == 0) continue;  // a pooled connection the peer closed
      return ex.status();
    }
    Put(*addr, std::move(*c));
    if (ex->status != 0) {
      return Status::Err(static_cast<int>(ex->status), "node " + registry_.Name(node) + " refused to take it over");
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
