#include "meta/embedded_meta.h"

#include <sys/stat.h>

#include <climits>
#include <mutex>

#include "common/log.h"
#include "common/memory.h"
#include "meta/codec.h"
#include "meta/redis_meta.h"
#include "store/local_store.h"

namespace tempfs {
namespace {

enum Op : uint8_t {
  kPutInode = 1,
  kDelInode = 2,
  kPutEntry = 3,
  kDelEntry = 4,
  kPutXattr = 5,
  kDelXattr = 6,
  kNextIno = 7,  // inode numbers are never handed out twice, even after drops
};

void PutInodeOp(Encoder& e, const InodeRecord& r) {
  e.U8(kPutInode);
  e.Str(EncodeInodeRecord(r));
}
void PutEntryOp(Encoder& e, Ino parent, std::string_view name, Ino ino, uint32_t type) {
  e.U8(kPutEntry);
  e.U64(parent);
  e.Str(name);
  e.U64(ino);
  e.U32(type);
}
void PutXattrOp(Encoder& e, Ino ino, std::string_view name, std::string_view value) {
  e.U8(kPutXattr);
  e.U64(ino);
  e.Str(name);
  e.Str(value);
}

}  // namespace

// Reads straight from memory (the caller holds the lock); writes go to one
// journal record, applied on commit.
class EmbeddedMeta::Txn final : public MetaTxn {
 public:
  Txn(EmbeddedMeta& m, bool writable) : m_(m), writable_(writable) {}

  Result<std::optional<InodeRecord>> GetInode(Ino ino) override {
    Node* n = m_.Find(ino);
    if (n == nullptr) return std::optional<InodeRecord>();
    return std::optional<InodeRecord>(n->rec);
  }
  Result<std::optional<Ino>> GetEntry(Ino parent, std::string_view name) override {
    Node* n = m_.Find(parent);
    if (n == nullptr) return std::optional<Ino>();
    auto it = n->children.find(name);
    if (it == n->children.end()) return std::optional<Ino>();
    return std::optional<Ino>(it->second.ino);
  }
  Result<std::vector<DirEntry>> ListEntries(Ino dir) override {
    std::vector<DirEntry> out;
    if (Node* n = m_.Find(dir); n != nullptr) {
      out.reserve(n->children.size());
      for (auto& [name, c] : n->children) out.push_back(DirEntry{name, c.ino, c.type});
    }
    return out;
  }
  Result<bool> HasEntries(Ino dir) override {
    Node* n = m_.Find(dir);
    return n != nullptr && !n->children.empty();
  }
  Result<std::optional<std::string>> GetXattr(Ino ino, std::string_view name) override {
    Node* n = m_.Find(ino);
    if (n == nullptr) return std::optional<std::string>();
    auto it = n->xattrs.find(name);
    if (it == n->xattrs.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Result<std::vector<std::string>> ListXattrs(Ino ino) override {
    std::vector<std::string> out;
    if (Node* n = m_.Find(ino); n != nullptr) {
      for (auto& [k, v] : n->xattrs) out.push_back(k);
    }
    return out;
  }
  Result<Ino> NewIno() override {
    if (!writable_) return Status::Err(EROFS, "read transaction");
    Ino ino = m_.next_ino_++;
    e_.U8(kNextIno);
    e_.U64(m_.next_ino_);
    return ino;
  }
  void PutInode(const InodeRecord& rec) override { PutInodeOp(e_, rec); }
  void DelInode(Ino ino) override {
    e_.U8(kDelInode);
    e_.U64(ino);
  }
  void PutEntry(Ino parent, std::string_view name, Ino ino, uint32_t mode) override {
    PutEntryOp(e_, parent, name, ino, mode & S_IFMT);
  }
  void DelEntry(Ino parent, std::string_view name) override {
    e_.U8(kDelEntry);
    e_.U64(parent);
    e_.Str(name);
  }
  void PutXattr(Ino ino, std::string_view name, std::string_view value) override {
    PutXattrOp(e_, ino, name, value);
  }
  void DelXattr(Ino ino, std::string_view name) override {
    e_.U8(kDelXattr);
    e_.U64(ino);
    e_.Str(name);
  }

  std::string& record() { return e_.buffer(); }

 private:
  EmbeddedMeta& m_;
  bool writable_;
  Encoder e_;
};

Result<std::unique_ptr<EmbeddedMeta>> EmbeddedMeta::Open(const std::string& dir, Env* env,
                                                         const EmbeddedOptions& options, ReplayReport* report) {
  std::unique_ptr<EmbeddedMeta> m(new EmbeddedMeta());
  m->recovering_ = options.mode == JournalOptions::Mode::kRecover;
  JournalOptions jo;
  jo.mode = options.mode;
  jo.store_has_data = options.store_has_data;
  auto j = Journal::Open(dir, [&](std::string_view rec) { m->Apply(rec); }, env, jo, report);
  if (!j.ok()) return j.status();
  m->journal_ = std::move(*j);
  // Numbers of data files already in the store are never handed out again.
  m->next_ino_ = std::max(m->next_ino_, options.min_next_ino);
  if (options.mode != JournalOptions::Mode::kServe) return m;
  Status st = m->EnsureRoot();
  if (!st.ok()) return st;
  // Start from a fresh snapshot so that the next start replays little. A
  // failed compaction changes nothing (the journal still holds everything),
  // and a store that filled up must still mount so that it can be emptied:
  // then the journal is kept as it is, for a later compaction.
  std::unique_lock lock(m->mu_);
  st = m->journal_->Compact([&](const Journal::RecordFn& emit) { m->Dump(emit); });
  if (!st.ok() && st.err() != ENOSPC && st.err() != EDQUOT) return st;
  if (!st.ok()) {
    TLOG_WARN("metadata: no room to compact at start (%s); keeping the journal, compacting later",
              st.ToString().c_str());
  }
  return m;
}

Status EmbeddedMeta::Commit() {
  std::unique_lock lock(mu_);
  return journal_->Compact([this](const Journal::RecordFn& emit) { Dump(emit); });
}

Status EmbeddedMeta::Transact(TxnKind kind, const std::function<Status(MetaTxn&)>& body) {
  if (kind == TxnKind::kRead) {
    std::shared_lock lock(mu_);
    Txn t(*this, false);
    return body(t);
  }
  std::unique_lock lock(mu_);
  Txn t(*this, true);
  Status st = body(t);
  if (!st.ok() || t.record().empty()) return st;
  // Room to log the removal of every name, this change's included, stays
  // allocated whatever fills the rest of the store.
  journal_->SetReserve(Journal::kReserve + (entries_ + 1) * kRemovalCost + name_bytes_ + NAME_MAX);
  st = journal_->Append(t.record(), kind == TxnKind::kFree);
  if (st.err() == ENOSPC && journal_->CompactionMayMakeRoom()) {
    // The journal may fill most of a store whose files were removed since:
    // compacting gives that space back, then the change gets its turn.
    Status cst = journal_->Compact([this](const Journal::RecordFn& emit) { Dump(emit); });
    if (cst.ok()) st = journal_->Append(t.record(), kind == TxnKind::kFree);
  }
  if (!st.ok()) return st;
  Apply(t.record());
  if (journal_->NeedsCompaction()) {
    // On failure the journal still holds everything; compaction is retried later.
    Status cst = journal_->Compact([this](const Journal::RecordFn& emit) { Dump(emit); });
    if (!cst.ok()) TLOG_WARN("metadata: compaction failed, retried later: %s", cst.ToString().c_str());
  }
  return Status::Ok();
}

void EmbeddedMeta::Apply(std::string_view record) {
  Decoder d(record);
  while (!d.empty() && !d.failed()) {
    switch (d.U8()) {
      case kPutInode: {
        InodeRecord r;
        if (!DecodeInodeRecord(d.Str(), &r) || d.failed()) return;
        Ino ino = r.attr.ino;
        nodes_[ino].rec = std::move(r);
        if (ino >= next_ino_) next_ino_ = ino + 1;
        break;
      }
      case kDelInode:
        nodes_.erase(d.U64());
        ShrinkIfSparse(nodes_);  // after rm -rf of a large tree
        break;
      case kPutEntry: {
        Ino parent = d.U64();
        std::string_view name = d.Str();
        Ino ino = d.U64();
        uint32_t type = d.U32();
        if (d.failed()) return;
        Node* p = Find(parent);
        if (p == nullptr && recovering_) {
          // Recovery: the parent's record may come later or be lost; keep the
          // name under a placeholder (mode 0) that RepairTree makes whole.
          p = &nodes_[parent];
          p->rec.attr.ino = parent;
        }
        if (p != nullptr) {
          auto [it, added] = p->children.insert_or_assign(std::string(name), Child{ino, type});
          if (added) {
            entries_++;
            name_bytes_ += name.size();
          }
        }
        break;
      }
      case kDelEntry: {
        Ino parent = d.U64();
        std::string_view name = d.Str();
        if (d.failed()) return;
        if (Node* p = Find(parent); p != nullptr) {
          auto it = p->children.find(name);
          if (it != p->children.end()) {
            p->children.erase(it);
            entries_ = entries_ > 0 ? entries_ - 1 : 0;
            name_bytes_ = name_bytes_ > name.size() ? name_bytes_ - name.size() : 0;
          }
        }
        break;
      }
      case kPutXattr: {
        Ino ino = d.U64();
        std::string_view name = d.Str();
        std::string_view value = d.Str();
        if (d.failed()) return;
        if (Node* n = Find(ino); n != nullptr) n->xattrs.insert_or_assign(std::string(name), std::string(value));
        break;
      }
      case kDelXattr: {
        Ino ino = d.U64();
        std::string_view name = d.Str();
        if (d.failed()) return;
        if (Node* n = Find(ino); n != nullptr) {
          auto it = n->xattrs.find(name);
          if (it != n->xattrs.end()) n->xattrs.erase(it);
        }
        break;
      }
      case kNextIno: {
        Ino next = d.U64();
        if (d.failed()) return;
        next_ino_ = std::max(next_ino_, next);
        break;
      }
      default:
        return;  // unknown op: the record is from a newer version or damaged
    }
  }
}

void EmbeddedMeta::Dump(const Journal::RecordFn& emit) {
  Encoder e;
  e.U8(kNextIno);
  e.U64(next_ino_);
  auto flush = [&](bool force) {
    if (e.size() > 0 && (force || e.size() > (256u << 10))) {
      emit(e.buffer());
      e.buffer().clear();
    }
  };
  for (auto& [ino, n] : nodes_) {
    PutInodeOp(e, n.rec);
    for (auto& [k, v] : n.xattrs) PutXattrOp(e, ino, k, v);
    flush(false);
  }
  flush(true);  // every inode before any name
  for (auto& [ino, n] : nodes_) {
    for (auto& [name, c] : n.children) PutEntryOp(e, ino, name, c.ino, c.type);
    flush(false);
  }
  flush(true);
}

EmbeddedMeta::Node* EmbeddedMeta::Find(Ino ino) {
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? nullptr : &it->second;
}

Result<std::vector<Ino>> EmbeddedMeta::Orphans() {
  std::shared_lock lock(mu_);
  std::vector<Ino> out;
  for (auto& [ino, n] : nodes_) {
    if (n.rec.attr.nlink == 0) out.push_back(ino);
  }
  return out;
}

uint64_t EmbeddedMeta::InodeCount() {
  std::shared_lock lock(mu_);
  return nodes_.size();
}

Result<Ino> EmbeddedMeta::LastIno() {
  std::shared_lock lock(mu_);
  return next_ino_ - 1;
}

uint64_t EmbeddedMeta::IndexBuckets() {
  std::shared_lock lock(mu_);
  return nodes_.bucket_count();
}

Status EmbeddedMeta::Sync() {
  std::shared_lock lock(mu_);  // fdatasync may run beside appends
  return journal_->Sync();
}

Result<std::vector<Ino>> DataFilesOf(const std::string& store_dir) {
  auto store = LocalStore::Open(store_dir);
  if (!store.ok()) return store.status();
  return (*store)->ListData();
}

std::string DamageMessage(const Status& st, const std::string& store_dir) {
  return "metadata damaged: " + st.message() + "; run `tempfs fsck " + store_dir +
         "` to recover what can be read";
}

Result<std::unique_ptr<MetaEngine>> OpenMetaEngine(const std::string& uri, const std::string& store_dir,
                                                   const MetaOpenOptions& options) {
  if (uri.empty() || uri == "embedded") {
    EmbeddedOptions eo;
    if (auto data = DataFilesOf(store_dir); data.ok()) {
      eo.store_has_data = !data->empty();
      for (Ino ino : *data) eo.min_next_ino = std::max(eo.min_next_ino, ino + 1);
    } else {
      return data.status();
    }
    auto m = EmbeddedMeta::Open(store_dir + "/meta", Env::Default(), eo);
    if (!m.ok() && m.err() == EUCLEAN) return Status::Err(EUCLEAN, DamageMessage(m.status(), store_dir));
    if (!m.ok()) return m.status();
    return std::unique_ptr<MetaEngine>(std::move(*m));
  }
  if (uri.rfind("redis://", 0) == 0) {
    auto m = RedisMeta::Open(uri, std::chrono::seconds(5), store_dir, options);
    if (!m.ok()) return m.status();
    return std::unique_ptr<MetaEngine>(std::move(*m));
  }
  return Status::Err(EINVAL, "unknown metadata engine '" + uri + "' (supported: embedded, redis://HOST:PORT[/DB])");
}

}  // namespace tempfs
