// ControlServer: the daemon's local control socket, which tempfs-admin
// talks to.
//
// The socket is STORE/control.sock, mode 0600, owned by the daemon's user;
// besides the file mode, every connection's peer credentials are checked
// (SO_PEERCRED) and callers other than root or the daemon's own user are
// refused. Requests name inodes (the admin resolves paths on the mount
// itself), never paths, so no request reaches outside the filesystem.
//
// Protocol: the client sends one JSON object on one line, {"cmd": ...};
// the server answers with JSON lines: zero or more {"progress": {...}}
// for long commands, then one {"ok": true, "result": ...} or
// {"ok": false, "errno": N, "error": "..."}, and closes the connection.
//
//   status                          node, mode, store usage, counters, peers
//   locate   {"inos": [N...]}       where each file's data is
//   tree     {"ino": N}             totals of a directory tree, by owner
//   prefetch {"ino": N}             copy a remote file here (progress lines)
//   evict    {"ino": N}             drop this node's copy
//   pin      {"ino": N, "on": B}    keep (or stop keeping) a copy from eviction
//   peers                           the cluster's nodes and traffic
//   drain                           hand this node's data to others (progress)
//   gc                              remove data of deleted or changed files
//
// Thread safety: Start/Stop from one thread; connections are served by
// their own threads (bounded).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "cluster/net.h"
#include "common/json.h"
#include "common/status.h"
#include "meta/types.h"

namespace tempfs {

class Vfs;
class NodeRegistry;
class PeerClient;
class PeerServer;
class RedisClient;

// What the control socket reports on and acts upon. Cluster pointers are
// null on a single node.
struct ControlContext {
  Vfs* vfs = nullptr;
  std::string node_id;  // "" on a single node
  std::string store;
  std::string mountpoint;
  std::string meta;  // "embedded" or the engine URI
  // The data path the FUSE session settled on, with the reason.
  std::function<std::string()> data_path;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  NodeRegistry* registry = nullptr;
  PeerClient* peer_client = nullptr;
  PeerServer* peer_server = nullptr;
  RedisClient* redis = nullptr;
};

class ControlServer {
 public:
  explicit ControlServer(ControlContext ctx);
  ~ControlServer();

  static std::string SocketPath(const std::string& store) { return store + "/control.sock"; }

  Status Start();
  void Stop();
  // Where the metrics are served ("" if not), for status.
  void set_metrics_address(std::string a) {
    std::lock_guard lock(mu_);
    metrics_address_ = std::move(a);
  }

 private:
  void AcceptLoop();
  void Serve(int fd);
  // Runs one request; `progress` sends a progress line.
  Result<Json> Handle(const Json& request, const std::function<bool(Json)>& progress);
  Result<Json> Status_();
  Result<Json> Locate(const Json& request);
  // The node that holds a file's data, by name ("" if unknown).
  std::string OwnerName(const Attr& a);
  Result<Json> Tree(const Json& request);
  Result<Json> Prefetch(const Json& request, const std::function<bool(Json)>& progress);
  Result<Json> Peers();
  Result<Json> Drain(const std::function<bool(Json)>& progress);

  ControlContext ctx_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread accept_;
  ConnectionSet connections_{8};
  std::mutex mu_;
  std::string metrics_address_;  // guarded by mu_
};

// Connects to the control socket of the daemon serving `store`, sends
// `request` and returns the final answer's result; `progress` gets each
// progress line. Used by tempfs-admin. Fails with the daemon's errno and
// message, ECONNREFUSED/ENOENT when no daemon serves the store.
Result<Json> ControlCall(const std::string& store, const Json& request, const std::function<void(const Json&)>& progress,
                         std::chrono::milliseconds timeout);

}  // namespace tempfs
