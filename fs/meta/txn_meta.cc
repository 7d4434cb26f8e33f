#include "meta/txn_meta.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <map>

#include "meta/codec.h"

namespace tempfs {
namespace {

constexpr size_t kXattrValueMax = 64 * 1024;
constexpr uint32_t kLinkMax = 65000;

bool IsDir(const Attr& a) { return S_ISDIR(a.mode); }

// Whether `a` may get a name in directory `dir` without leaving its project
// (quota accounting follows names, as XFS project quotas do): same project,
// or a quota root moving between directories of no project.
bool SameProject(const Attr& a, const Attr& dir) {
  return a.project == dir.project || (a.project == a.ino && dir.project == 0);
}

// The inodes one operation reads and changes: each is loaded once and
// written once at the end, however often the operation touches it.
class Staging {
 public:
  Staging(MetaTxn& t, int64_t now) : t_(t), now_(now) {}
  int64_t now() const { return now_; }
  MetaTxn& txn() { return t_; }

  Result<InodeRecord*> Load(Ino ino) {
    auto it = recs_.find(ino);
    if (it != recs_.end()) return &it->second;
    auto r = t_.GetInode(ino);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Err(ENOENT);
    return &recs_.emplace(ino, std::move(**r)).first->second;
  }
  // A directory that still has a name.
  Result<InodeRecord*> LoadDir(Ino ino) {
    auto r = Load(ino);
    if (!r.ok()) return r;
    if (!IsDir((*r)->attr)) return Status::Err(ENOTDIR);
    if ((*r)->attr.nlink == 0) return Status::Err(ENOENT);
    return r;
  }
  // The inode a name in `dir` refers to; ENOENT if none.
  Result<InodeRecord*> LoadEntry(Ino dir, std::string_view name) {
    auto e = t_.GetEntry(dir, name);
    if (!e.ok()) return e.status();
    if (!e->has_value()) return Status::Err(ENOENT);
    auto r = Load(**e);
    if (!r.ok() && r.err() == ENOENT) return Status::Err(EIO, "name without inode");
    return r;
  }
  InodeRecord& Dirty(InodeRecord* r) {
    dirty_[r->attr.ino] = true;
    return *r;
  }
  InodeRecord& Add(InodeRecord rec) {
    Ino ino = rec.attr.ino;
    dirty_[ino] = true;
    return recs_.insert_or_assign(ino, std::move(rec)).first->second;
  }
  void TouchDir(InodeRecord* dir) {
    Dirty(dir).attr.mtime_ns = now_;
    dir->attr.ctime_ns = now_;
  }
  void Flush() {
    for (auto& [ino, d] : dirty_) t_.PutInode(recs_.at(ino));
  }

 private:
  MetaTxn& t_;
  int64_t now_;
  std::map<Ino, InodeRecord> recs_;
  std::map<Ino, bool> dirty_;
};

// The kernel's lookups for file handles (FUSE export): "." is the inode
// itself, of any type, as long as it has a name; ".." the directory that
// names directory `ino` (the root for the root).
Status LookupExport(Staging& s, Ino ino, bool parent, Attr& out) {
  auto r = parent ? s.LoadDir(ino) : s.Load(ino);
  if (!r.ok()) return r.status();
  if ((*r)->attr.nlink == 0) return Status::Err(ENOENT);  // unlinked: its handles are stale
  if (parent) {
    Ino up = (*r)->parent != 0 ? (*r)->parent : kRootIno;
    r = s.LoadDir(up);
    if (!r.ok()) return r.status();
  }
  out = (*r)->attr;
  return Status::Ok();
}

}  // namespace

// What handles of inodes made before generations existed carried.
constexpr uint64_t kOldGeneration = 1;

std::string EncodeInodeRecord(const InodeRecord& r) {
  Encoder e;
  const Attr& a = r.attr;
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
  e.U32(a.owner);
  e.U64(a.checksum);
  e.U64(r.parent);
  e.Str(r.target);
  e.U64(a.project);     // records written before projects existed end here
  e.U64(a.generation);  // last: records written before generations existed end here
  return std::move(e.buffer());
}

bool DecodeInodeRecord(std::string_view data, InodeRecord* r) {
  Decoder d(data);
  Attr& a = r->attr;
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
  a.owner = d.U32();
  a.checksum = d.U64();
  r->parent = d.U64();
  r->target.assign(d.Str());
  a.project = d.empty() ? 0 : d.U64();
  a.generation = d.empty() ? kOldGeneration : d.U64();
  // The kernel's root inode has generation 0 and marks an inode whose
  // generation changes as bad: the root's must stay 0 whatever was stored.
  if (a.ino == kRootIno) a.generation = 0;
  return !d.failed();
}

Status TxnMeta::EnsureRoot() {
  return Transact(TxnKind::kWrite, [&](MetaTxn& t) -> Status {
    auto root = t.GetInode(kRootIno);
    if (!root.ok()) return root.status();
    if (root->has_value()) return Status::Ok();
    InodeRecord r;
    r.attr.ino = kRootIno;
    r.attr.mode = S_IFDIR | 0755;
    r.attr.nlink = 2;
    r.attr.size = 4096;
    r.attr.atime_ns = r.attr.mtime_ns = r.attr.ctime_ns = NowNs();
    t.PutInode(r);
    return Status::Ok();
  });
}

Result<Attr> TxnMeta::Lookup(Ino parent, std::string_view name) {
  return TransactFor<Attr>(TxnKind::kRead, [&](MetaTxn& t, Attr& out) -> Status {
    Staging s(t, 0);
    if (name == "." || name == "..") return LookupExport(s, parent, name == "..", out);
    auto p = s.LoadDir(parent);
    if (!p.ok()) return p.status();
    auto c = s.LoadEntry(parent, name);
    if (!c.ok()) return c.status();
    out = (*c)->attr;
    return Status::Ok();
  });
}

Result<Attr> TxnMeta::GetAttr(Ino ino) {
  return TransactFor<Attr>(TxnKind::kRead, [&](MetaTxn& t, Attr& out) -> Status {
    auto r = t.GetInode(ino);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Err(ENOENT);
    out = (*r)->attr;
    return Status::Ok();
  });
}

Result<Attr> TxnMeta::Create(Ino parent, std::string_view name, const NewNode& node) {
  return TransactFor<Attr>(TxnKind::kWrite, [&](MetaTxn& t, Attr& out) -> Status {
    Staging s(t, NowNs());
    auto p = s.LoadDir(parent);
    if (!p.ok()) return p.status();
    auto e = t.GetEntry(parent, name);
    if (!e.ok()) return e.status();
    if (e->has_value()) return Status::Err(EEXIST);
    auto ino = t.NewIno();
    if (!ino.ok()) return ino.status();
    InodeRecord r;
    Attr& a = r.attr;
    a.ino = *ino;
    a.mode = node.mode;
    a.uid = node.uid;
    a.gid = node.gid;
    a.rdev = node.rdev;
    a.nlink = S_ISDIR(node.mode) ? 2 : 1;
    a.size = S_ISDIR(node.mode) ? 4096 : S_ISLNK(node.mode) ? node.target.size() : 0;
    a.atime_ns = a.mtime_ns = a.ctime_ns = s.now();
    a.project = (*p)->attr.project;
    a.generation = NewGeneration();
    if (S_ISDIR(node.mode)) r.parent = parent;
    r.target = node.target;
    out = s.Add(std::move(r)).attr;
    s.TouchDir(*p);
    if (S_ISDIR(node.mode)) (*p)->attr.nlink++;
    t.PutEntry(parent, name, out.ino, node.mode & S_IFMT);
    s.Flush();
    return Status::Ok();
  });
}

Result<Attr> TxnMeta::Link(Ino ino, Ino new_parent, std::string_view new_name) {
  return TransactFor<Attr>(TxnKind::kWrite, [&](MetaTxn& t, Attr& out) -> Status {
    Staging s(t, NowNs());
    auto n = s.Load(ino);
    if (!n.ok()) return n.status();
    if (IsDir((*n)->attr)) return Status::Err(EPERM);
    if ((*n)->attr.nlink == 0) return Status::Err(ENOENT);  // as linkat(2) on an unlinked file
    auto p = s.LoadDir(new_parent);
    if (!p.ok()) return p.status();
    auto e = t.GetEntry(new_parent, new_name);
    if (!e.ok()) return e.status();
    if (e->has_value()) return Status::Err(EEXIST);
    if ((*n)->attr.nlink >= kLinkMax) return Status::Err(EMLINK);
    if (!SameProject((*n)->attr, (*p)->attr)) return Status::Err(EXDEV);
    Attr& a = s.Dirty(*n).attr;
    a.nlink++;
    a.ctime_ns = s.now();
    s.TouchDir(*p);
    t.PutEntry(new_parent, new_name, ino, a.mode & S_IFMT);
    s.Flush();
    out = a;
    return Status::Ok();
  });
}

Result<Attr> TxnMeta::Unlink(Ino parent, std::string_view name) {
  return TransactFor<Attr>(TxnKind::kFree, [&](MetaTxn& t, Attr& out) -> Status {
    Staging s(t, NowNs());
    auto p = s.LoadDir(parent);
    if (!p.ok()) return p.status();
    auto c = s.LoadEntry(parent, name);
    if (!c.ok()) return c.status();
    if (IsDir((*c)->attr)) return Status::Err(EISDIR);
    Attr& a = s.Dirty(*c).attr;
    if (a.nlink > 0) a.nlink--;
    a.ctime_ns = s.now();
    s.TouchDir(*p);
    t.DelEntry(parent, name);
    s.Flush();
    out = a;
    return Status::Ok();
  });
}

Result<Attr> TxnMeta::Rmdir(Ino parent, std::string_view name) {
  return TransactFor<Attr>(TxnKind::kFree, [&](MetaTxn& t, Attr& out) -> Status {
    Staging s(t, NowNs());
    auto p = s.LoadDir(parent);
    if (!p.ok()) return p.status();
    auto c = s.LoadEntry(parent, name);
    if (!c.ok()) return c.status();
    if (!IsDir((*c)->attr)) return Status::Err(ENOTDIR);
    auto has = t.HasEntries((*c)->attr.ino);
    if (!has.ok()) return has.status();
    if (*has) return Status::Err(ENOTEMPTY);
    Attr& a = s.Dirty(*c).attr;
    a.nlink = 0;
    a.ctime_ns = s.now();
    s.TouchDir(*p);
    (*p)->attr.nlink--;
    t.DelEntry(parent, name);
    s.Flush();
    out = a;
    return Status::Ok();
  });
}

Result<std::optional<Attr>> TxnMeta::Rename(Ino parent, std::string_view name, Ino new_parent,
                                             std::string_view new_name, unsigned flags) {
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange)) {
    return Status::Err(EINVAL);
  }
  return TransactFor<std::optional<Attr>>(TxnKind::kFree, [&](MetaTxn& t, std::optional<Attr>& out) -> Status {
    out.reset();
    Staging s(t, NowNs());
    auto pr = s.LoadDir(parent);
    if (!pr.ok()) return pr.status();
    auto qr = s.LoadDir(new_parent);
    if (!qr.ok()) return qr.status();
    InodeRecord* p = *pr;
    InodeRecord* q = *qr;
    auto sr = s.LoadEntry(parent, name);
    if (!sr.ok()) return sr.status();
    InodeRecord* src = *sr;
    InodeRecord* dst = nullptr;
    auto dr = s.LoadEntry(new_parent, new_name);
    if (dr.ok()) dst = *dr;
    else if (dr.err() != ENOENT) return dr.status();
    if ((flags & kRenameExchange) && dst == nullptr) return Status::Err(ENOENT);
    if (dst != nullptr && (flags & kRenameNoReplace)) return Status::Err(EEXIST);
    if (dst == src) return Status::Ok();  // two names of one inode: POSIX says do nothing
    if (!SameProject(src->attr, q->attr)) return Status::Err(EXDEV);
    if ((flags & kRenameExchange) && !SameProject(dst->attr, p->attr)) return Status::Err(EXDEV);

    // A directory may not move below itself.
    auto below = [&](Ino dir, Ino top) -> Result<bool> {
      for (Ino cur = dir; cur != 0 && cur != kRootIno;) {
        if (cur == top) return true;
        auto n = s.Load(cur);
        if (!n.ok()) return n.status();
        cur = (*n)->parent;
      }
      return false;
    };
    if (IsDir(src->attr)) {
      auto b = below(new_parent, src->attr.ino);
      if (!b.ok()) return b.status();
      if (*b) return Status::Err(EINVAL);
    }
    if ((flags & kRenameExchange) && IsDir(dst->attr)) {
      auto b = below(parent, dst->attr.ino);
      if (!b.ok()) return b.status();
      if (*b) return Status::Err(EINVAL);
    }
    if (dst != nullptr && !(flags & kRenameExchange)) {
      if (IsDir(src->attr) && !IsDir(dst->attr)) return Status::Err(ENOTDIR);
      if (!IsDir(src->attr) && IsDir(dst->attr)) return Status::Err(EISDIR);
      if (IsDir(dst->attr)) {
        auto has = t.HasEntries(dst->attr.ino);
        if (!has.ok()) return has.status();
        if (*has) return Status::Err(ENOTEMPTY);
      }
    }

    s.TouchDir(p);
    s.TouchDir(q);
    s.Dirty(src).attr.ctime_ns = s.now();
    if (IsDir(src->attr)) src->parent = new_parent;
    if (flags & kRenameExchange) {
      s.Dirty(dst).attr.ctime_ns = s.now();
      if (IsDir(dst->attr)) dst->parent = parent;
      t.PutEntry(parent, name, dst->attr.ino, dst->attr.mode & S_IFMT);
      t.PutEntry(new_parent, new_name, src->attr.ino, src->attr.mode & S_IFMT);
      if (p != q && IsDir(src->attr) != IsDir(dst->attr)) {
        int dir_moves_to_q = IsDir(src->attr) ? 1 : -1;
        p->attr.nlink -= dir_moves_to_q;
        q->attr.nlink += dir_moves_to_q;
      }
    } else {
      if (dst != nullptr) {
        Attr& v = s.Dirty(dst).attr;
        v.ctime_ns = s.now();
        if (IsDir(v)) {
          v.nlink = 0;
          q->attr.nlink--;
        } else if (v.nlink > 0) {
          v.nlink--;
        }
        out = v;
      }
      t.DelEntry(parent, name);
      t.PutEntry(new_parent, new_name, src->attr.ino, src->attr.mode & S_IFMT);
      if (p != q && IsDir(src->attr)) {
        p->attr.nlink--;
        q->attr.nlink++;
      }
    }
    s.Flush();
    return Status::Ok();
  });
}

Result<Attr> TxnMeta::SetAttr(Ino ino, const SetAttrRequest& req) {
  Attr out;
  bool frees = (req.valid & (SetAttrRequest::kSize | SetAttrRequest::kContent)) != 0;
  Status st = Transact(frees ? TxnKind::kFree : TxnKind::kWrite, [&](MetaTxn& t) -> Status {
    Staging s(t, NowNs());
    auto n = s.Load(ino);
    if (!n.ok()) return n.status();
    Attr& a = s.Dirty(*n).attr;
    if ((req.valid & (SetAttrRequest::kContent | SetAttrRequest::kOwner)) && a.version != req.base_version) {
      return Status::Err(ESTALE, "content changed by another writer");
    }
    if (req.valid == SetAttrRequest::kOwner) {
      a.owner = req.owner;
      s.Flush();
      out = a;
      return Status::Ok();
    }
    if (req.valid & SetAttrRequest::kMode) a.mode = (a.mode & S_IFMT) | (req.mode & 07777);
    if (req.valid & SetAttrRequest::kUid) a.uid = req.uid;
    if (req.valid & SetAttrRequest::kGid) a.gid = req.gid;
    if (req.valid & SetAttrRequest::kSize) {
      if (a.size != req.size && !(req.valid & SetAttrRequest::kContent)) a.version++;
      a.size = req.size;
    }
    if (req.valid & SetAttrRequest::kContent) {
      a.version++;
      a.owner = req.owner;
      a.checksum = req.checksum;
    }
    if (req.valid & SetAttrRequest::kAtime) a.atime_ns = req.atime_ns;
    if (req.valid & SetAttrRequest::kMtime) a.mtime_ns = req.mtime_ns;
    if (req.valid & SetAttrRequest::kProject) a.project = req.project;
    if (req.valid & SetAttrRequest::kCtime) a.ctime_ns = req.ctime_ns;
    else if (req.valid & ~SetAttrRequest::kProject) a.ctime_ns = s.now();
    s.Flush();
    out = a;
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<std::string> TxnMeta::ReadLink(Ino ino) {
  return TransactFor<std::string>(TxnKind::kRead, [&](MetaTxn& t, std::string& out) -> Status {
    auto r = t.GetInode(ino);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Err(ENOENT);
    if (!S_ISLNK((*r)->attr.mode)) return Status::Err(EINVAL);
    out = (*r)->target;
    return Status::Ok();
  });
}

Result<std::vector<DirEntry>> TxnMeta::ReadDir(Ino dir) {
  return TransactFor<std::vector<DirEntry>>(TxnKind::kRead, [&](MetaTxn& t, std::vector<DirEntry>& out) -> Status {
    auto r = t.GetInode(dir);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Err(ENOENT);
    if (!IsDir((*r)->attr)) return Status::Err(ENOTDIR);
    auto list = t.ListEntries(dir);
    if (!list.ok()) return list.status();
    out = std::move(*list);
    return Status::Ok();
  });
}

Result<std::string> TxnMeta::GetXattr(Ino ino, std::string_view name) {
  return TransactFor<std::string>(TxnKind::kRead, [&](MetaTxn& t, std::string& out) -> Status {
    auto r = t.GetInode(ino);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Err(ENOENT);
    auto v = t.GetXattr(ino, name);
    if (!v.ok()) return v.status();
    if (!v->has_value()) return Status::Err(ENODATA);
    out = std::move(**v);
    return Status::Ok();
  });
}

Result<std::vector<std::string>> TxnMeta::ListXattr(Ino ino) {
  return TransactFor<std::vector<std::string>>(TxnKind::kRead, [&](MetaTxn& t, std::vector<std::string>& out) -> Status {
    auto r = t.GetInode(ino);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Err(ENOENT);
    auto v = t.ListXattrs(ino);
    if (!v.ok()) return v.status();
    out = std::move(*v);
    return Status::Ok();
  });
}

Status TxnMeta::SetXattr(Ino ino, std::string_view name, std::string_view value, int flags) {
  if (name.empty() || name.size() > XATTR_NAME_MAX) return Status::Err(name.empty() ? EINVAL : ERANGE);
  if (value.size() > kXattrValueMax) return Status::Err(E2BIG);
  return Transact(TxnKind::kWrite, [&](MetaTxn& t) -> Status {
    Staging s(t, NowNs());
    auto n = s.Load(ino);
    if (!n.ok()) return n.status();
    auto v = t.GetXattr(ino, name);
    if (!v.ok()) return v.status();
    if ((flags & XATTR_CREATE) && v->has_value()) return Status::Err(EEXIST);
    if ((flags & XATTR_REPLACE) && !v->has_value()) return Status::Err(ENODATA);
    s.Dirty(*n).attr.ctime_ns = s.now();
    t.PutXattr(ino, name, value);
    s.Flush();
    return Status::Ok();
  });
}

Status TxnMeta::RemoveXattr(Ino ino, std::string_view name) {
  return Transact(TxnKind::kFree, [&](MetaTxn& t) -> Status {
    Staging s(t, NowNs());
    auto n = s.Load(ino);
    if (!n.ok()) return n.status();
    auto v = t.GetXattr(ino, name);
    if (!v.ok()) return v.status();
    if (!v->has_value()) return Status::Err(ENODATA);
    s.Dirty(*n).attr.ctime_ns = s.now();
    t.DelXattr(ino, name);
    s.Flush();
    return Status::Ok();
  });
}

Status TxnMeta::Drop(Ino ino) {
  return Transact(TxnKind::kFree, [&](MetaTxn& t) -> Status {
    auto r = t.GetInode(ino);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Ok();
    if ((*r)->attr.nlink != 0) return Status::Err(EBUSY, "inode still has names");
    t.DelInode(ino);
    return Status::Ok();
  });
}

}  // namespace tempfs
