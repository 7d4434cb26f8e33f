// How the core reaches data that lives on another node. The cluster layer
// implements these; the core only sees node numbers and inode versions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "meta/types.h"

namespace tempfs {

class PeerTransport {
 public:
  virtual ~PeerTransport() = default;
  using Sink = std::function<Status(const char* data, size_t len)>;
  // Streams bytes [offset, offset+length) of `ino` at `version` from node
  // `owner` into `sink`, in order, as they arrive. `sink` only ever gets
  // bytes the transport has verified came unchanged from the owner (the
  // cluster transport checks a MAC per frame first), so what it writes may
  // be shown to readers at once. Bytes that keep failing that check: EIO,
  // after a few tries. Fails within the transport's timeout when the peer
  // dies or stops answering; ESTALE if the peer no longer has that version
  // (or not that many bytes); EHOSTUNREACH if the node left the cluster.
  // Safe to call from several threads at once.
  virtual Status Fetch(uint32_t owner, Ino ino, uint64_t version, uint64_t offset, uint64_t length,
                       const Sink& sink) = 0;
  // A name for logs.
  virtual std::string NodeName(uint32_t node) = 0;
  // Drain: asks `node` to take over `ino` at `version`, which this node
  // owns. Returns once the node accepted; it copies the data in the
  // background and then records itself as the owner.
  virtual Status Adopt(uint32_t node, Ino ino, uint64_t version) = 0;
  // The nodes that have a heartbeat, this one included.
  virtual Result<std::vector<uint32_t>> LiveNodes() = 0;
};

}  // namespace tempfs
