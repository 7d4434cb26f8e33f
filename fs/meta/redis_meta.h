// RedisMeta: the namespace in Redis, shared by the nodes of a cluster.
//
// Keys (prefix "tfs:"):
//   i:<ino>   string   the inode record (EncodeInodeRecord)
//   d:<ino>   hash     name -> entry (inode number, file type) of a directory
//   x:<ino>   hash     xattr name -> value
//   nextino   counter  last inode number handed out
//   orphans   set      inodes without names, kept until dropped
//   icount    counter  number of inodes
//   namespace string   the namespace id (namespace_identity.h), set once
// A transaction WATCHes every key it reads, the namespace id with the first,
// and ends with MULTI/EXEC (empty for reads, or when a rule said no): EXEC
// fails when anything it read changed meanwhile, and the transaction runs
// again. So every answer, an errno included, comes from one consistent state
// of the namespace; two nodes racing on one name cannot both win, and a name
// removed between reading it and reading its inode is ENOENT, not damage.
//
// The namespace id read in every transaction must be the store's: a Redis
// that lost its data (or another Redis) fences the engine for the rest of
// its life, with every operation failing with EIO.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "meta/redis_client.h"
#include "meta/txn_meta.h"

namespace tempfs {

class RedisMeta final : public TxnMeta {
 public:
  // Opens the namespace at `uri` for the store at `store_dir` and checks
  // that it is the one the store joined: a store of another namespace, or
  // of one Redis lost, is refused (EIO, saying what to do) unless
  // options.join_new_namespace. A store that never joined one joins the
  // namespace it finds (made if Redis has none) and records it.
  static Result<std::unique_ptr<RedisMeta>> Open(const std::string& uri, std::chrono::milliseconds timeout,
                                                  const std::string& store_dir, const MetaOpenOptions& options = {});

  Result<std::vector<Ino>> Orphans() override;
  uint64_t InodeCount() override;
  Result<Ino> LastIno() override;
  Status Sync() override;
  NamespaceState Namespace() override;

  // Reads the namespace id in Redis now (one round trip) and fences the
  // engine if it is not the store's. Returns the fence, or a Redis error.
  Status CheckNamespace();
  // Stops every operation for good (logged once): `problem` says why.
  void Fence(const std::string& problem);

  RedisClient& client() { return client_; }
  // Tests: runs after each read of a transaction, with the key it read,
  // so that a test can change Redis between two reads.
  void set_read_hook_for_testing(std::function<void(const std::string& key)> hook) { read_hook_ = std::move(hook); }

 protected:
  Status Transact(TxnKind kind, const std::function<Status(MetaTxn&)>& body) override;

 private:
  class Txn;
  RedisMeta(RedisAddress addr, std::chrono::milliseconds timeout) : client_(std::move(addr), timeout) {}
  // Open's identity check; sets ns_ and left_.
  Status JoinNamespace(const std::string& store_dir, const MetaOpenOptions& options);
  // The reason in an operation's error once fenced.
  Status Fenced();
  // Whether `value` (a GET of the id key) is this store's namespace; fences if not.
  bool NamespaceMatches(const RedisValue& value);

  RedisClient client_;
  std::string ns_;    // set by Open, then constant
  std::string left_;  // set by Open, then constant
  std::atomic<bool> fenced_{false};
  std::mutex fence_mu_;
  std::string fence_problem_;  // guarded by fence_mu_
  std::function<void(const std::string&)> read_hook_;
};

}  // namespace tempfs
