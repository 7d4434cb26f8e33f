// EmbeddedMeta: the single-node metadata engine. The namespace is held in
// memory and every transaction's writes are logged to a Journal under the
// store before they are applied, so the log, not memory, is the copy that
// counts.
//
// Thread safety: one reader/writer lock; writing transactions are
// serialised, reading ones run in parallel. Never a conflict to retry.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include "meta/journal.h"
#include "meta/txn_meta.h"

namespace tempfs {

class EmbeddedMeta final : public TxnMeta {
 public:
  // Opens (or creates) the engine kept in `dir`; its files are reached
  // through `env`, which must outlive the engine.
  static Result<std::unique_ptr<EmbeddedMeta>> Open(const std::string& dir, Env* env = Env::Default());

  Result<std::vector<Ino>> Orphans() override;
  uint64_t InodeCount() override;
  uint64_t IndexBuckets() override;
  Status Sync() override;

 protected:
  Status Transact(TxnKind kind, const std::function<Status(MetaTxn&)>& body) override;

 private:
  struct Child {
    Ino ino;
    uint32_t type;
  };
  struct Node {
    InodeRecord rec;
    std::map<std::string, Child, std::less<>> children;
    std::map<std::string, std::string, std::less<>> xattrs;
  };
  class Txn;

  EmbeddedMeta() = default;
  void Apply(std::string_view record);
  void Dump(const Journal::RecordFn& emit);
  Node* Find(Ino ino);

  std::shared_mutex mu_;
  std::unordered_map<Ino, Node> nodes_;  // guarded by mu_
  Ino next_ino_ = kRootIno + 1;          // guarded by mu_
  std::unique_ptr<Journal> journal_;     // guarded by mu_
};

}  // namespace tempfs
