// PeerServer: serves this node's file content to the other nodes.
//
// Each connection gets a thread; the number of connections is bounded.
// Data leaves in MAC'd frames (protocol.h).
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
  static constexpr size_t kMaxConnections = 64;
  ConnectionSet connections_{kMaxConnections};
};

}  // namespace tempfs
