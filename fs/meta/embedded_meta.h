// EmbeddedMeta: the single-node metadata engine. The namespace is held in
// memory and every transaction's writes are logged to a Journal under the
// store before they are applied, so the log, not memory, is the copy that
// counts.
//
// Opening checks the files (journal.h says how damage is told from a crash)
// and refuses damage with EUCLEAN; fsck then opens the engine in recovery
// mode, repairs the tree (RepairTree, AdoptData) and writes it out (Commit).
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

struct EmbeddedOptions {
  // kServe: refuse damage, then serve. kCheck: refuse damage, write nothing.
  // kRecover: load what is readable (see `report`), for RepairTree and Commit.
  JournalOptions::Mode mode = JournalOptions::Mode::kServe;
  // The store's data folder holds files: missing metadata is damage.
  bool store_has_data = false;
  // New inode numbers start at or above this one (data files use those below).
  Ino min_next_ino = 0;
};

// What RepairTree changed (or, on an engine opened in kCheck mode, would change).
struct TreeRepair {
  uint64_t names_removed = 0;  // names of inodes that are gone, or extra names of directories
  uint64_t names_fixed = 0;    // names whose file type was wrong
  uint64_t linked = 0;         // inodes no name reached, now named in /lost+found
  uint64_t nlinks_fixed = 0;
  uint64_t dirs_rebuilt = 0;   // directories whose record was lost but whose names were read
  bool root_made = false;
  bool changed() const {
    return names_removed + names_fixed + linked + nlinks_fixed + dirs_rebuilt > 0 || root_made;
  }
};

class EmbeddedMeta final : public TxnMeta {
 public:
  // Opens (or creates) the engine kept in `dir`; its files are reached
  // through `env`, which must outlive the engine. `report` gets what a
  // kRecover open read and lost.
  static Result<std::unique_ptr<EmbeddedMeta>> Open(const std::string& dir, Env* env = Env::Default(),
                                                    const EmbeddedOptions& options = {},
                                                    ReplayReport* report = nullptr);

  // Recovery (fsck), on an engine no one else uses. Repairs the tree in
  // memory: names of missing inodes removed, inodes that no name reaches
  // (with links left) named "#INO" in /lost+found, link counts recounted.
  TreeRepair RepairTree();
  // Names a data file that no inode owns: a new regular file /lost+found/#INO
  // of `size` bytes. EEXIST if `ino` is an inode.
  Status AdoptData(Ino ino, uint64_t size);
  // Whether `ino` is a regular file (for data files fsck finds).
  bool IsRegularFile(Ino ino);
  // Writes the repaired namespace as a fresh snapshot and journal.
  Status Commit();

  Result<std::vector<Ino>> Orphans() override;
  uint64_t InodeCount() override;
  Result<Ino> LastIno() override;
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
  // Repair steps (embedded_repair.cc); the caller holds mu_.
  Ino LostAndFound();
  void NameInLostAndFound(Ino ino);
  void Reach(Ino from, std::unordered_map<Ino, Ino>& parent_of, TreeRepair& r);

  std::shared_mutex mu_;
  std::unordered_map<Ino, Node> nodes_;  // guarded by mu_
  Ino next_ino_ = kRootIno + 1;          // guarded by mu_
  // Names in the namespace and their bytes: what removing them all would log.
  uint64_t entries_ = 0, name_bytes_ = 0;  // guarded by mu_
  // Journal bytes an unlink logs besides the name (its records, framed).
  static constexpr uint64_t kRemovalCost = 384;
  std::unique_ptr<Journal> journal_;     // guarded by mu_
  bool recovering_ = false;              // opened in kRecover mode
};

}  // namespace tempfs
