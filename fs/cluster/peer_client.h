// PeerClient: fetches content from the node that owns it (the
// PeerTransport of cluster mode). Connections are kept per peer and reused,
// so a small file costs one round trip.
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
    uint64_t seq = 0;
    ~Conn();
  };
  Result<std::unique_ptr<Conn>> Get(const HostPort& addr);
  void Put(const HostPort& addr, std::unique_ptr<Conn> c);
  // Sends `r` (seq and MAC filled in) and reads the response head: the
  // status the peer answered and the length that follows.
  Result<std::pair<uint32_t, uint64_t>> Send(Conn& conn, PeerRequest r);

  NodeRegistry& registry_;
  const std::string secret_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;  // guarded by mu_
  std::map<uint32_t, uint64_t> fetched_;                           // guarded by mu_
  Histogram* fetch_latency_ = nullptr;
};

}  // namespace tempfs
