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

#include "cluster/registry.h"
#include "vfs/remote.h"

namespace tempfs {

class PeerClient final : public PeerTransport {
 public:
  PeerClient(NodeRegistry& registry, std::string secret, std::chrono::milliseconds timeout);
  ~PeerClient() override;

  Status Fetch(uint32_t owner, Ino ino, uint64_t version, uint64_t offset, uint64_t length,
               const Sink& sink) override;
  std::string NodeName(uint32_t node) override { return registry_.Name(node); }

 private:
  struct Conn {
    int fd = -1;
    std::string nonce;
    uint64_t seq = 0;
    ~Conn();
  };
  Result<std::unique_ptr<Conn>> Get(const HostPort& addr);
  void Put(const HostPort& addr, std::unique_ptr<Conn> c);

  NodeRegistry& registry_;
  const std::string secret_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;  // guarded by mu_
};

}  // namespace tempfs
