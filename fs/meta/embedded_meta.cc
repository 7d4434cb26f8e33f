#include "meta/embedded_meta.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <map>
#include <mutex>

#include "meta/codec.h"

namespace tempfs {
namespace {

enum Op : uint8_t {
  kPutInode = 1,
  kDelInode = 2,
  kPutDentry = 3,
  kDelDentry = 4,
  kPutXattr = 5,
  kDelXattr = 6,
};

constexpr size_t kXattrValueMax = 64 * 1024;

bool IsDir(const Attr& a) { return S_ISDIR(a.mode); }

void EncodeInode(Encoder& e, const Attr& a, std::string_view target) {
  e.U8(kPutInode);
  e.U64(a.ino);
  e.U32(a.mode);
  e.U32(a.uid);
  e.U32(a.gid);
  e.U32(a.nlink);
  e.U64(a.size);
  e.U64(a.rdev);
  e.I64(a.atime_ns);
  e.I64(a.mtime_ns);
  e.I64(a.ctime_ns);
  e.U64(a.version);
  e.Str(target);
}

}  // namespace

// The changes of one operation: attributes staged by inode (each written
// once, whatever touched it), then name and xattr changes in order.
class EmbeddedMeta::Batch {
 public:
  explicit Batch(int64_t now) : now_(now) {}
  int64_t now() const { return now_; }

  Attr& Stage(const Node& n) {
    auto it = staged_.try_emplace(n.attr.ino, n.attr, n.target).first;
    return it->second.first;
  }
  Attr& StageNew(const Attr& a, std::string target) {
    return staged_.try_emplace(a.ino, a, std::move(target)).first->second.first;
  }
  // Marks a directory's content as changed now.
  void TouchDir(const Node& dir) {
    Attr& a = Stage(dir);
    a.mtime_ns = a.ctime_ns = now_;
  }
  void PutDentry(Ino parent, std::string_view name, Ino ino) {
    rest_.U8(kPutDentry);
    rest_.U64(parent);
    rest_.Str(name);
    rest_.U64(ino);
  }
  void DelDentry(Ino parent, std::string_view name) {
    rest_.U8(kDelDentry);
    rest_.U64(parent);
    rest_.Str(name);
  }
  void PutXattr(Ino ino, std::string_view name, std::string_view value) {
    rest_.U8(kPutXattr);
    rest_.U64(ino);
    rest_.Str(name);
    rest_.Str(value);
  }
  void DelXattr(Ino ino, std::string_view name) {
    rest_.U8(kDelXattr);
    rest_.U64(ino);
    rest_.Str(name);
  }
  void DelInode(Ino ino) {
    rest_.U8(kDelInode);
    rest_.U64(ino);
  }
  std::string Finish() {
    Encoder e;
    for (auto& [ino, st] : staged_) EncodeInode(e, st.first, st.second);
    e.buffer() += rest_.buffer();
    return std::move(e.buffer());
  }

 private:
  int64_t now_;
  std::map<Ino, std::pair<Attr, std::string>> staged_;
  Encoder rest_;
};

Result<std::unique_ptr<EmbeddedMeta>> EmbeddedMeta::Open(const std::string& dir) {
  std::unique_ptr<EmbeddedMeta> m(new EmbeddedMeta());
  auto j = Journal::Open(dir, [&](std::string_view rec) { m->Apply(rec); });
  if (!j.ok()) return j.status();
  m->journal_ = std::move(*j);
  for (auto& [ino, n] : m->nodes_) m->next_ino_ = std::max(m->next_ino_, ino + 1);
  std::unique_lock lock(m->mu_);
  if (m->Find(kRootIno) == nullptr) {
    Batch b(NowNs());
    Attr root;
    root.ino = kRootIno;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.size = 4096;
    root.atime_ns = root.mtime_ns = root.ctime_ns = b.now();
    b.StageNew(root, "");
    Status st = m->Commit(b, false);
    if (!st.ok()) return st;
  }
  // Start from a fresh snapshot so that the next start replays little.
  Status st = m->journal_->Compact([&](const Journal::RecordFn& emit) { m->Dump(emit); });
  if (!st.ok()) return st;
  return m;
}

void EmbeddedMeta::Apply(std::string_view record) {
  Decoder d(record);
  while (!d.empty() && !d.failed()) {
    switch (d.U8()) {
      case kPutInode: {
        Attr a;
        a.ino = d.U64();
        a.mode = d.U32();
        a.uid = d.U32();
        a.gid = d.U32();
        a.nlink = d.U32();
        a.size = d.U64();
        a.rdev = d.U64();
        a.atime_ns = d.I64();
        a.mtime_ns = d.I64();
        a.ctime_ns = d.I64();
        a.version = d.U64();
        std::string_view target = d.Str();
        if (d.failed()) return;
        Node& n = nodes_[a.ino];
        n.attr = a;
        n.target.assign(target);
        if (a.ino >= next_ino_) next_ino_ = a.ino + 1;
        break;
      }
      case kDelInode:
        nodes_.erase(d.U64());
        break;
      case kPutDentry: {
        Ino parent = d.U64();
        std::string_view name = d.Str();
        Ino ino = d.U64();
        if (d.failed()) return;
        Node* p = Find(parent);
        if (p == nullptr) break;
        p->children.insert_or_assign(std::string(name), ino);
        if (Node* c = Find(ino); c != nullptr && IsDir(c->attr)) c->parent = parent;
        break;
      }
      case kDelDentry: {
        Ino parent = d.U64();
        std::string_view name = d.Str();
        if (d.failed()) return;
        if (Node* p = Find(parent); p != nullptr) {
          auto it = p->children.find(name);
          if (it != p->children.end()) p->children.erase(it);
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
      default:
        return;  // unknown op: the record is from a newer version or damaged
    }
  }
}

void EmbeddedMeta::Dump(const Journal::RecordFn& emit) {
  Encoder e;
  auto flush = [&](bool force) {
    if (e.size() > 0 && (force || e.size() > (256u << 10))) {
      emit(e.buffer());
      e.buffer().clear();
    }
  };
  for (auto& [ino, n] : nodes_) {
    EncodeInode(e, n.attr, n.target);
    for (auto& [k, v] : n.xattrs) {
      e.U8(kPutXattr);
      e.U64(ino);
      e.Str(k);
      e.Str(v);
    }
    flush(false);
  }
  flush(true);  // every inode before any name, so replay can link directories to parents
  for (auto& [ino, n] : nodes_) {
    for (auto& [name, child] : n.children) {
      e.U8(kPutDentry);
      e.U64(ino);
      e.Str(name);
      e.U64(child);
    }
    flush(false);
  }
  flush(true);
}

Status EmbeddedMeta::Commit(Batch& batch, bool frees_space) {
  std::string rec = batch.Finish();
  Status st = journal_->Append(rec, frees_space);
  if (!st.ok()) return st;
  Apply(rec);
  if (journal_->NeedsCompaction()) {
    Status cst = journal_->Compact([this](const Journal::RecordFn& emit) { Dump(emit); });
    (void)cst;  // the journal still holds everything; compaction is retried later
  }
  return Status::Ok();
}

EmbeddedMeta::Node* EmbeddedMeta::Find(Ino ino) {
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? nullptr : &it->second;
}

Result<EmbeddedMeta::Node*> EmbeddedMeta::FindDir(Ino ino) {
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  if (!IsDir(n->attr)) return Status::Err(ENOTDIR);
  if (n->attr.nlink == 0) return Status::Err(ENOENT);  // removed, still open
  return n;
}

Result<Attr> EmbeddedMeta::Lookup(Ino parent, std::string_view name) {
  std::shared_lock lock(mu_);
  auto p = FindDir(parent);
  if (!p.ok()) return p.status();
  auto it = (*p)->children.find(name);
  if (it == (*p)->children.end()) return Status::Err(ENOENT);
  Node* c = Find(it->second);
  if (c == nullptr) return Status::Err(EIO, "dangling name");
  return c->attr;
}

Result<Attr> EmbeddedMeta::GetAttr(Ino ino) {
  std::shared_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  return n->attr;
}

Result<Attr> EmbeddedMeta::Create(Ino parent, std::string_view name, const NewNode& node) {
  std::unique_lock lock(mu_);
  auto p = FindDir(parent);
  if (!p.ok()) return p.status();
  if ((*p)->children.count(name) != 0) return Status::Err(EEXIST);
  Batch b(NowNs());
  Attr a;
  a.ino = next_ino_;
  a.mode = node.mode;
  a.uid = node.uid;
  a.gid = node.gid;
  a.rdev = node.rdev;
  a.nlink = S_ISDIR(node.mode) ? 2 : 1;
  a.size = S_ISDIR(node.mode) ? 4096 : S_ISLNK(node.mode) ? node.target.size() : 0;
  a.atime_ns = a.mtime_ns = a.ctime_ns = b.now();
  b.StageNew(a, node.target);
  b.TouchDir(**p);
  if (S_ISDIR(node.mode)) b.Stage(**p).nlink++;
  b.PutDentry(parent, name, a.ino);
  Status st = Commit(b, false);
  if (!st.ok()) return st;
  return Find(a.ino)->attr;
}

Result<Attr> EmbeddedMeta::Link(Ino ino, Ino new_parent, std::string_view new_name) {
  std::unique_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  if (IsDir(n->attr)) return Status::Err(EPERM);
  auto p = FindDir(new_parent);
  if (!p.ok()) return p.status();
  if ((*p)->children.count(new_name) != 0) return Status::Err(EEXIST);
  if (n->attr.nlink >= 65000) return Status::Err(EMLINK);
  Batch b(NowNs());
  Attr& a = b.Stage(*n);
  a.nlink++;
  a.ctime_ns = b.now();
  b.TouchDir(**p);
  b.PutDentry(new_parent, new_name, ino);
  Status st = Commit(b, false);
  if (!st.ok()) return st;
  return n->attr;
}

Result<Attr> EmbeddedMeta::Unlink(Ino parent, std::string_view name) {
  std::unique_lock lock(mu_);
  auto p = FindDir(parent);
  if (!p.ok()) return p.status();
  auto it = (*p)->children.find(name);
  if (it == (*p)->children.end()) return Status::Err(ENOENT);
  Node* c = Find(it->second);
  if (c == nullptr) return Status::Err(EIO, "dangling name");
  if (IsDir(c->attr)) return Status::Err(EISDIR);
  Batch b(NowNs());
  Attr& a = b.Stage(*c);
  if (a.nlink > 0) a.nlink--;
  a.ctime_ns = b.now();
  b.TouchDir(**p);
  b.DelDentry(parent, name);
  Status st = Commit(b, true);
  if (!st.ok()) return st;
  return c->attr;
}

Result<Attr> EmbeddedMeta::Rmdir(Ino parent, std::string_view name) {
  std::unique_lock lock(mu_);
  auto p = FindDir(parent);
  if (!p.ok()) return p.status();
  auto it = (*p)->children.find(name);
  if (it == (*p)->children.end()) return Status::Err(ENOENT);
  Node* c = Find(it->second);
  if (c == nullptr) return Status::Err(EIO, "dangling name");
  if (!IsDir(c->attr)) return Status::Err(ENOTDIR);
  if (!c->children.empty()) return Status::Err(ENOTEMPTY);
  Batch b(NowNs());
  Attr& a = b.Stage(*c);
  a.nlink = 0;
  a.ctime_ns = b.now();
  b.TouchDir(**p);
  b.Stage(**p).nlink--;
  b.DelDentry(parent, name);
  Status st = Commit(b, true);
  if (!st.ok()) return st;
  return c->attr;
}

Result<std::optional<Attr>> EmbeddedMeta::Rename(Ino parent, std::string_view name, Ino new_parent,
                                                 std::string_view new_name, unsigned flags) {
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange)) {
    return Status::Err(EINVAL);
  }
  std::unique_lock lock(mu_);
  auto pr = FindDir(parent);
  if (!pr.ok()) return pr.status();
  auto qr = FindDir(new_parent);
  if (!qr.ok()) return qr.status();
  Node* p = *pr;
  Node* q = *qr;
  auto sit = p->children.find(name);
  if (sit == p->children.end()) return Status::Err(ENOENT);
  Node* s = Find(sit->second);
  auto dit = q->children.find(new_name);
  Node* d = dit == q->children.end() ? nullptr : Find(dit->second);
  if (s == nullptr || (dit != q->children.end() && d == nullptr)) return Status::Err(EIO, "dangling name");
  if ((flags & kRenameExchange) && d == nullptr) return Status::Err(ENOENT);
  if (d == s) return std::optional<Attr>();  // two names of one inode: POSIX says do nothing
  if (d != nullptr && (flags & kRenameNoReplace)) return Status::Err(EEXIST);

  // A directory may not move below itself.
  auto below = [&](Ino dir, Ino top) {
    for (Ino cur = dir; cur != 0 && cur != kRootIno;) {
      if (cur == top) return true;
      Node* n = Find(cur);
      cur = n == nullptr ? 0 : n->parent;
    }
    return false;
  };
  if (IsDir(s->attr) && below(new_parent, s->attr.ino)) return Status::Err(EINVAL);
  if ((flags & kRenameExchange) && IsDir(d->attr) && below(parent, d->attr.ino)) return Status::Err(EINVAL);
  if (d != nullptr && !(flags & kRenameExchange)) {
    if (IsDir(s->attr) && !IsDir(d->attr)) return Status::Err(ENOTDIR);
    if (!IsDir(s->attr) && IsDir(d->attr)) return Status::Err(EISDIR);
    if (IsDir(d->attr) && !d->children.empty()) return Status::Err(ENOTEMPTY);
  }

  Batch b(NowNs());
  b.TouchDir(*p);
  b.TouchDir(*q);
  b.Stage(*s).ctime_ns = b.now();
  std::optional<Ino> victim;
  if (flags & kRenameExchange) {
    b.Stage(*d).ctime_ns = b.now();
    b.PutDentry(parent, name, d->attr.ino);
    b.PutDentry(new_parent, new_name, s->attr.ino);
    if (p != q && IsDir(s->attr) != IsDir(d->attr)) {
      int dir_moves_to_q = IsDir(s->attr) ? 1 : -1;
      b.Stage(*p).nlink -= dir_moves_to_q;
      b.Stage(*q).nlink += dir_moves_to_q;
    }
  } else {
    if (d != nullptr) {
      Attr& v = b.Stage(*d);
      v.ctime_ns = b.now();
      if (IsDir(v)) {
        v.nlink = 0;
        b.Stage(*q).nlink--;
      } else if (v.nlink > 0) {
        v.nlink--;
      }
      victim = v.ino;
    }
    b.DelDentry(parent, name);
    b.PutDentry(new_parent, new_name, s->attr.ino);
    if (p != q && IsDir(s->attr)) {
      b.Stage(*p).nlink--;
      b.Stage(*q).nlink++;
    }
  }
  Status st = Commit(b, d != nullptr);
  if (!st.ok()) return st;
  if (victim) return std::optional<Attr>(Find(*victim)->attr);
  return std::optional<Attr>();
}

Result<Attr> EmbeddedMeta::SetAttr(Ino ino, const SetAttrRequest& req) {
  std::unique_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  Batch b(NowNs());
  Attr& a = b.Stage(*n);
  if (req.valid & SetAttrRequest::kMode) a.mode = (a.mode & S_IFMT) | (req.mode & 07777);
  if (req.valid & SetAttrRequest::kUid) a.uid = req.uid;
  if (req.valid & SetAttrRequest::kGid) a.gid = req.gid;
  if (req.valid & SetAttrRequest::kSize) {
    if (a.size != req.size) a.version++;
    a.size = req.size;
  }
  if (req.valid & SetAttrRequest::kAtime) a.atime_ns = req.atime_ns;
  if (req.valid & SetAttrRequest::kMtime) a.mtime_ns = req.mtime_ns;
  a.ctime_ns = (req.valid & SetAttrRequest::kCtime) ? req.ctime_ns : b.now();
  Status st = Commit(b, (req.valid & SetAttrRequest::kSize) != 0);
  if (!st.ok()) return st;
  return n->attr;
}

Result<std::string> EmbeddedMeta::ReadLink(Ino ino) {
  std::shared_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  if (!S_ISLNK(n->attr.mode)) return Status::Err(EINVAL);
  return n->target;
}

Result<std::vector<DirEntry>> EmbeddedMeta::ReadDir(Ino dir) {
  std::shared_lock lock(mu_);
  Node* n = Find(dir);
  if (n == nullptr) return Status::Err(ENOENT);
  if (!IsDir(n->attr)) return Status::Err(ENOTDIR);
  std::vector<DirEntry> out;
  out.reserve(n->children.size());
  for (auto& [name, ino] : n->children) {
    Node* c = Find(ino);
    out.push_back(DirEntry{name, ino, c == nullptr ? 0u : c->attr.mode});
  }
  return out;
}

Result<std::string> EmbeddedMeta::GetXattr(Ino ino, std::string_view name) {
  std::shared_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  auto it = n->xattrs.find(name);
  if (it == n->xattrs.end()) return Status::Err(ENODATA);
  return it->second;
}

Result<std::vector<std::string>> EmbeddedMeta::ListXattr(Ino ino) {
  std::shared_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  std::vector<std::string> out;
  for (auto& [k, v] : n->xattrs) out.push_back(k);
  return out;
}

Status EmbeddedMeta::SetXattr(Ino ino, std::string_view name, std::string_view value, int flags) {
  if (name.empty() || name.size() > XATTR_NAME_MAX) return Status::Err(name.empty() ? EINVAL : ERANGE);
  if (value.size() > kXattrValueMax) return Status::Err(E2BIG);
  std::unique_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  bool exists = n->xattrs.find(name) != n->xattrs.end();
  if ((flags & XATTR_CREATE) && exists) return Status::Err(EEXIST);
  if ((flags & XATTR_REPLACE) && !exists) return Status::Err(ENODATA);
  Batch b(NowNs());
  b.Stage(*n).ctime_ns = b.now();
  b.PutXattr(ino, name, value);
  return Commit(b, false);
}

Status EmbeddedMeta::RemoveXattr(Ino ino, std::string_view name) {
  std::unique_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Err(ENOENT);
  if (n->xattrs.find(name) == n->xattrs.end()) return Status::Err(ENODATA);
  Batch b(NowNs());
  b.Stage(*n).ctime_ns = b.now();
  b.DelXattr(ino, name);
  return Commit(b, true);
}

Status EmbeddedMeta::Drop(Ino ino) {
  std::unique_lock lock(mu_);
  Node* n = Find(ino);
  if (n == nullptr) return Status::Ok();
  if (n->attr.nlink != 0) return Status::Err(EBUSY, "inode still has names");
  Batch b(NowNs());
  b.DelInode(ino);
  return Commit(b, true);
}

Result<std::vector<Ino>> EmbeddedMeta::Orphans() {
  std::shared_lock lock(mu_);
  std::vector<Ino> out;
  for (auto& [ino, n] : nodes_) {
    if (n.attr.nlink == 0) out.push_back(ino);
  }
  return out;
}

uint64_t EmbeddedMeta::InodeCount() {
  std::shared_lock lock(mu_);
  return nodes_.size();
}

Status EmbeddedMeta::Sync() {
  std::shared_lock lock(mu_);  // fdatasync may run beside appends
  return journal_->Sync();
}

Result<std::unique_ptr<MetaEngine>> OpenMetaEngine(const std::string& uri, const std::string& store_dir) {
  if (uri.empty() || uri == "embedded") {
    auto m = EmbeddedMeta::Open(store_dir + "/meta");
    if (!m.ok()) return m.status();
    return std::unique_ptr<MetaEngine>(std::move(*m));
  }
  return Status::Err(EINVAL, "unknown metadata engine '" + uri + "' (supported: embedded)");
}

}  // namespace tempfs
