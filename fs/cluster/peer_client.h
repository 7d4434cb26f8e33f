// PeerClient: fetches content from the node that owns it (the
// PeerTransport of cluster mode). Connections are kept per peer and reused,
// so a small file costs one round trip. Every frame of a response is checked
// against its tag before its bytes go to the sink; a frame that fails, or a
// connection cut mid-range, makes it ask again for the rest of the range on a
// new connection, kMaxDamaged times at most, then EIO. Wrong bytes never
// reach the sink.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "cluster/protocol.h"
#include "cluster/registry.h"
#include "common/metrics.h"
#include "vfs/remote.h"

namespace tempfs {

class PeerClient final : public PeerTransport {
 public:
  PeerClient(NodeRegistry& registry, std::string secret, std::chrono::milliseconds timeout);
  ~PeerClient() override;

  Status Fetch(uint32_t owner, Ino ino, uint64_t version, uint64_t offset, uint64_t length,
               const Sink& sink) override;
  std::string NodeName(uint32_t node) override { return registry_.Name(node); }
  Status Adopt(uint32_t node, Ino ino, uint64_t version) override;
  Result<std::vector<uint32_t>> LiveNodes() override;

  // Bytes fetched from each node since the start.
  std::map<uint32_t, uint64_t> BytesFetched();
  // Observes the duration of every range request (set before use).
  void set_fetch_latency(Histogram* h) { fetch_latency_ = h; }

 private:
  struct Conn {
    int fd = -1;
    std::string nonce;
    std::string frame_key;  // FrameKey(secret, nonce)
    uint64_t seq = 0;
    ~Conn();
  };
  Result<std::unique_ptr<Conn>> Get(const HostPort& addr);
  void Put(const HostPort& addr, std::unique_ptr<Conn> c);
  struct Exchange {
    std::string body;  // of the request, which the response's MACs cover
    uint32_t status = 0;
    uint64_t length = 0;
  };
  // Sends `r` (seq and MAC filled in) and reads the response head, checked:
  // the status the peer answered and the length that follows. EBADMSG if
  // the head fails its MAC.
  Result<Exchange> Send(Conn& conn, PeerRequest r);
  // Reads `length` bytes of frames answering a request at `offset`, checks
  // each, hands it to `sink` and counts it in *done. EBADMSG for a frame that
  // fails its MAC; *local_failure when `sink` failed.
  Status ReceiveFrames(Conn& conn, const ResponseKey& key, uint64_t offset, uint64_t length, const Sink& sink,
                       uint64_t* done, bool* local_failure);

  static constexpr int kMaxDamaged = 3;

  NodeRegistry& registry_;
  const std::string secret_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;  // guarded by mu_
  std::map<uint32_t, uint64_t> fetched_;                           // guarded by mu_
  Histogram* fetch_latency_ = nullptr;
};

}  // namespace tempfs
