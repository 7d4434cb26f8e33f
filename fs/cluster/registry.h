// NodeRegistry: the cluster's membership, kept in Redis.
//
//   tfs:node:seq         counter of node numbers
//   tfs:node:num         hash  node name -> number (stable across restarts)
//   tfs:node:name        hash  number -> node name
//   tfs:node:hb:<num>    string  the node's peer address, expiring after the
//                        heartbeat TTL: a node is in the cluster while it is there
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
#include <thread>
#include <vector>

#include "cluster/net.h"
#include "meta/redis_client.h"

namespace tempfs {

class NodeRegistry {
 public:
  NodeRegistry(RedisClient& redis, std::string name, HostPort advertise, std::chrono::milliseconds ttl);
  ~NodeRegistry();

  // Takes (or finds) this node's number and starts the heartbeat.
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

  RedisClient& redis_;
  const std::string name_;
  const HostPort advertise_;
  const std::chrono::milliseconds ttl_;
  uint32_t self_ = 0;
  std::mutex mu_;
  std::map<uint32_t, std::string> names_;  // guarded by mu_
  std::map<uint32_t, std::pair<HostPort, std::chrono::steady_clock::time_point>> addresses_;  // guarded by mu_
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread beat_;
};

}  // namespace tempfs
