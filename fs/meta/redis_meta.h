// RedisMeta: the namespace in Redis, shared by the nodes of a cluster.
//
// Keys (prefix "tfs:"):
//   i:<ino>   string   the inode record (EncodeInodeRecord)
//   d:<ino>   hash     name -> entry (inode number, file type) of a directory
//   x:<ino>   hash     xattr name -> value
//   nextino   counter  last inode number handed out
//   orphans   set      inodes without names, kept until dropped
//   icount    counter  number of inodes
// A transaction WATCHes every key it reads and writes with MULTI/EXEC, so two
// nodes racing on one name cannot both win; the loser runs again and sees
// the winner's result.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <memory>

#include "meta/redis_client.h"
#include "meta/txn_meta.h"

namespace tempfs {

class RedisMeta final : public TxnMeta {
 public:
  static Result<std::unique_ptr<RedisMeta>> Open(const std::string& uri, std::chrono::milliseconds timeout);

  Result<std::vector<Ino>> Orphans() override;
  uint64_t InodeCount() override;
  Status Sync() override;

  RedisClient& client() { return client_; }

 protected:
  Status Transact(TxnKind kind, const std::function<Status(MetaTxn&)>& body) override;

 private:
  class Txn;
  RedisMeta(RedisAddress addr, std::chrono::milliseconds timeout) : client_(std::move(addr), timeout) {}
  RedisClient client_;
};

}  // namespace tempfs
