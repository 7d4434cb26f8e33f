// EmbeddedMeta: the single-node metadata engine. The namespace is held in
// memory and every change is logged to a Journal under the store before it
// is applied, so the log, not memory, is the copy that counts.
//
// Thread safety: one reader/writer lock guards the whole namespace; changes
// are serialised, lookups run in parallel.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include "meta/journal.h"
#include "meta/meta_engine.h"

namespace tempfs {

class EmbeddedMeta final : public MetaEngine {
 public:
  // Opens (or creates) the engine kept in `dir`.
  static Result<std::unique_ptr<EmbeddedMeta>> Open(const std::string& dir);

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
  Result<std::vector<Ino>> Orphans() override;
  uint64_t InodeCount() override;
  Status Sync() override;

 private:
  struct Node {
    Attr attr;
    Ino parent = 0;      // directories only: the one directory that names them
    std::string target;  // symlinks
    std::map<std::string, Ino, std::less<>> children;
    std::map<std::string, std::string, std::less<>> xattrs;
  };
  class Batch;

  EmbeddedMeta() = default;
  // Logs `batch` and applies it. Requires mu_ held exclusively.
  Status Commit(Batch& batch, bool frees_space);
  void Apply(std::string_view record);
  void Dump(const Journal::RecordFn& emit);
  Node* Find(Ino ino);
  Result<Node*> FindDir(Ino ino);

  std::shared_mutex mu_;
  std::unordered_map<Ino, Node> nodes_;  // guarded by mu_
  Ino next_ino_ = kRootIno + 1;          // guarded by mu_
  std::unique_ptr<Journal> journal_;     // guarded by mu_
};

}  // namespace tempfs
