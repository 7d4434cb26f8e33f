// PeerServer: serves this node's file content to the other nodes.
//
// Each connection gets a thread. A connection must authenticate (its first
// request) within kAuthDeadline; until then it holds one of a few pending
// slots, and a new connection pushes the oldest pending one out, so idle or
// dripping strangers never take the room of authenticated peers, which have
// their own budget. Data leaves in MAC'd frames (protocol.h).
//
// Thread safety: Start/Stop from one thread.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "cluster/net.h"
#include "common/status.h"
#include "vfs/vfs.h"

namespace tempfs {

class PeerServer {
 public:
  PeerServer(Vfs& vfs, std::string secret, std::chrono::milliseconds timeout);
  ~PeerServer();

  Status Start(const HostPort& listen);
  void Stop();
  std::atomic<uint64_t> bytes_served{0};
  std::atomic<uint64_t> rejected{0};
  // Connections closed for not sending a whole first request in time.
  std::atomic<uint64_t> unauthenticated_closed{0};
  // Connections not yet authenticated that newer ones pushed out.
  uint64_t unauthenticated_pushed_out() const { return connections_.evicted(); }
  // Bytes served to each node since the start.
  std::map<uint32_t, uint64_t> BytesServed();

 private:
  void AcceptLoop();
  void Serve(int fd);

  Vfs& vfs_;
  const std::string secret_;
  const std::chrono::milliseconds timeout_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread accept_;
  std::mutex mu_;
  std::map<uint32_t, uint64_t> served_;  // guarded by mu_
  static constexpr size_t kMaxConnections = 64;    // authenticated
  static constexpr size_t kMaxUnauthenticated = 16;  // pending, oldest pushed out
  ConnectionSet connections_{kMaxConnections, kMaxUnauthenticated};
};

}  // namespace tempfs
