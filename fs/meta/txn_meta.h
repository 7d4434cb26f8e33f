// TxnMeta: the namespace's rules, once, for every engine.
//
// Each MetaEngine operation is a transaction over MetaTxn primitives: it
// reads what it needs, checks POSIX's conditions, and writes the changed
// records. Engines supply Transact(): the embedded engine runs it under its
// lock and logs the writes; the Redis engine runs it optimistically (WATCH,
// MULTI/EXEC) and retries when another node changed what it read.
#pragma once

#include <functional>

#include "meta/meta_engine.h"
#include "meta/txn.h"

namespace tempfs {

class TxnMeta : public MetaEngine {
 public:
  Result<Attr> Lookup(Ino parent, std::string_view name) override;
  Result<Attr> GetAttr(Ino ino) override;
  Result<Attr> Create(Ino parent, std::string_view name, const NewNode& node) override;
  Result<Attr> Link(Ino ino, Ino new_parent, std::string_view new_name) override;
  Result<Attr> Unlink(Ino parent, std::string_view name) override;
  Result<Attr> Rmdir(Ino parent, std::string_view name) override;
  Result<std::optional<Attr>> Rename(Ino parent, std::string_view name, Ino new_parent,
                                     std::string_view new_name, unsigned flags) override;
  Result<Attr> SetAttr(Ino ino, const SetAttrRequest& req) override;
  Result<std::string> ReadLink(Ino ino) override;
  Result<std::vector<DirEntry>> ReadDir(Ino dir) override;
  Result<std::string> GetXattr(Ino ino, std::string_view name) override;
  Result<std::vector<std::string>> ListXattr(Ino ino) override;
  Status SetXattr(Ino ino, std::string_view name, std::string_view value, int flags) override;
  Status RemoveXattr(Ino ino, std::string_view name) override;
  Status Drop(Ino ino) override;

 protected:
  enum class TxnKind {
    kRead,   // changes nothing
    kWrite,  // may need space
    kFree,   // gives space back (may use a reserve when the store is full)
  };
  // Runs `body` as one transaction. A body may run more than once (after a
  // conflict); only its last run's writes take effect.
  virtual Status Transact(TxnKind kind, const std::function<Status(MetaTxn&)>& body) = 0;

  // Transact() for operations that produce a value: `body` fills `out`.
  template <typename T>
  Result<T> TransactFor(TxnKind kind, const std::function<Status(MetaTxn&, T&)>& body) {
    T out{};
    Status st = Transact(kind, [&](MetaTxn& t) { return body(t, out); });
    if (!st.ok()) return st;
    return out;
  }

  // Creates the root directory if the namespace has none.
  Status EnsureRoot();
};

}  // namespace tempfs
