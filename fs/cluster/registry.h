// NodeRegistry: the cluster's membership, kept in Redis.
//
//   tfs:node:seq         counter of node numbers
//   tfs:node:num         hash  node name -> number (stable across restarts)
//   tfs:node:name        hash  number -> node name
//   tfs:node:hb:<num>    string  "ADDRESS STORE-ID": the node's peer address and
//                        the id of its store, expiring after the heartbeat TTL:
//                        a node is in the cluster while it is there
//
// Membership belongs to a namespace (namespace_identity.h): a node takes or
// keeps its number only while Redis holds the namespace its store joined,
// the number must be the one its store recorded, and every heartbeat is
// written only while that namespace is there (atomically, in a script).
// When it is gone, heartbeats stop and on_namespace_lost is called once.
// "Already live" means a heartbeat of another store under this number; a
// heartbeat of this store (a daemon killed and started again) is taken over.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <functional>
#include <thread>
#include <vector>

#include "cluster/net.h"
#include "meta/redis_client.h"

namespace tempfs {

class NodeRegistry {
 public:
  // Who this node is in the namespace.
  struct Identity {
    std::string ns;        // the namespace the store joined
    std::string store_id;  // the store's own id
    uint32_t recorded = 0;  // the node number the store recorded in `ns`; 0: none yet
  };
  NodeRegistry(RedisClient& redis, std::string name, HostPort advertise, std::chrono::milliseconds ttl,
               Identity identity);
  ~NodeRegistry();

  // Set before Join(): called once, from the heartbeat, with the reason,
  // when Redis no longer holds the namespace.
  void set_on_namespace_lost(std::function<void(const std::string&)> fn) { on_lost_ = std::move(fn); }
  // Takes (or finds) this node's number and starts the heartbeat. EIO if
  // Redis does not hold the store's namespace or gives this node another
  // number than the store recorded; EEXIST if another store's node is live
  // under the number.
  Result<uint32_t> Join();
  uint32_t self() const { return self_; }
  // The address of a live node; EHOSTUNREACH if it has no heartbeat.
  Result<HostPort> Address(uint32_t node);
  std::string Name(uint32_t node);

  struct Member {
    uint32_t num = 0;
    std::string name;
    std::string address;           // "" without a heartbeat
    int64_t heartbeat_age_ms = -1;  // since the last heartbeat; -1: none (gone)
  };
  // Every node that ever joined, by number.
  Result<std::vector<Member>> Members();
  std::chrono::milliseconds ttl() const { return ttl_; }

 private:
  void Beat();
  std::string HeartbeatValue() const { return advertise_.ToString() + " " + identity_.store_id; }

  RedisClient& redis_;
  const std::string name_;
  const HostPort advertise_;
  const std::chrono::milliseconds ttl_;
  const Identity identity_;
  std::function<void(const std::string&)> on_lost_;
  uint32_t self_ = 0;
  std::mutex mu_;
  std::map<uint32_t, std::string> names_;  // guarded by mu_
  std::map<uint32_t, std::pair<HostPort, std::chrono::steady_clock::time_point>> addresses_;  // guarded by mu_
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread beat_;
};

}  // namespace tempfs
