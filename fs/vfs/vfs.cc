#include "vfs/vfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/log.h"
#include "common/memory.h"

#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include <xxhash.h>

namespace tempfs {
namespace {

// The set-ID bits a write or chown takes away: set-group-ID only where it
// means "run as group" (group execute set), not where it marks mandatory locking.
// Any non-directory, as Linux's chown_common does: FIFOs, sockets and device
// nodes lose them too (directories keep theirs: set-group-ID is inheritance there).
uint32_t KilledSetIdBits(uint32_t mode) {
  if (S_ISDIR(mode)) return 0;
  uint32_t bits = mode & S_ISUID;
  if ((mode & S_ISGID) && (mode & S_IXGRP)) bits |= S_ISGID;
  return bits;
}

int64_t TsNs(const timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec; }
timespec NsTs(int64_t ns) { return timespec{ns / 1000000000, ns % 1000000000}; }

}  // namespace

Status ValidateName(std::string_view name) {
  if (name.empty()) return Status::Err(ENOENT);
  if (name.size() > kNameMax) return Status::Err(ENAMETOOLONG);
  if (name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return Status::Err(EINVAL);
  }
  return Status::Ok();
}

Vfs::Vfs(std::unique_ptr<MetaEngine> meta, std::unique_ptr<LocalStore> store, VfsOptions options)
    : meta_(std::move(meta)), store_(std::move(store)), options_(options) {}

Status Vfs::Start() {
  LoadPins();
  auto orphans = meta_->Orphans();
  if (!orphans.ok()) return orphans.status();
  size_t dropped = 0;
  for (Ino ino : *orphans) {
    if (clustered()) {
      // Another node may still have it open: each node drops its own.
      auto a = meta_->GetAttr(ino);
      if (a.ok() && OwnedElsewhere(*a)) continue;
    }
    DropInode(ino, 0);  // no project is counted yet
    dropped++;
  }
  if (dropped > 0) TLOG_INFO("dropped %zu unlinked inodes left by the previous run", dropped);
  if (!clustered()) RemoveStrayData();
  return Status::Ok();
}

void Vfs::RemoveStrayData() {
  // The embedded engine opened without damage, so its namespace is whole: a
  // data file it does not know belongs to a create whose record a crash tore
  // (the journal's last), and no name ever reached it after the restart.
  auto inos = store_->ListData();
  if (!inos.ok()) return;
  size_t removed = 0;
  for (Ino ino : *inos) {
    auto a = meta_->GetAttr(ino);
    if (a.ok() || a.err() != ENOENT) continue;
    Status st = store_->RemoveData(ino);
    if (st.ok()) removed++;
    else TLOG_WARN("stray data file of inode %llu: %s", (unsigned long long)ino, st.ToString().c_str());
  }
  if (removed > 0) TLOG_INFO("removed %zu data files that no inode owns (left by a crash)", removed);
}

size_t Vfs::CollectGarbage() {
  // A lost namespace knows none of the local files: removing them on its
  // word would remove everything. (Each answer below is checked against the
  // namespace id as well; this saves the pass.)
  if (!meta_->Namespace().intact) return 0;
  // Read before the files are listed: numbers handed out meanwhile are below it.
  auto last = meta_->LastIno();
  if (!last.ok()) return 0;
  size_t removed = 0, newer = 0;
  auto inos = store_->ListData();
  if (!inos.ok()) return 0;
  for (Ino ino : *inos) {
    uint64_t seq;
    {
      // Names the kernel still caches do not keep data alive; open files do.
      std::lock_guard lock(mu_);
      auto r = refs_.find(ino);
      if ((r != refs_.end() && r->second.opens > 0) || fetches_.count(ino) != 0) continue;
      seq = OwnSeqLocked(ino);
    }
    auto a = meta_->GetAttr(ino);
    bool gone = !a.ok() && a.err() == ENOENT;
    if (gone && ino > *last) {
      newer++;
      continue;
    }
    bool stale_copy = false, deleted_elsewhere = false;
    if (a.ok() && OwnedElsewhere(*a)) {
      auto lv = store_->LocalVersion(ino);
      stale_copy = lv.ok() && *lv != a->version;
      // Unlinked on its owner, which keeps the record while its own kernel
      // still knows the inode: nobody can open it here again.
      deleted_elsewhere = a->nlink == 0;
    }
    if (!gone && !stale_copy && !deleted_elsewhere) continue;
    std::lock_guard lock(mu_);
    if (RemoveUnusedDataLocked(ino, seq).ok()) {
      removed++;
      if (gone || deleted_elsewhere) ForgetInodeStateLocked(ino);  // nobody opens it here again
    }
  }
  if (removed > 0) TLOG_INFO("removed %zu data files of deleted or changed files", removed);
  if (newer > 0) {
    TLOG_WARN("kept %zu data files numbered above the namespace's last inode %llu: the metadata is older than "
              "this store (restored from an older copy?); they are not deleted",
              newer, (unsigned long long)*last);
  }
  RecountQuotas();
  return removed;
}

void Vfs::AddLookup(const Attr& attr) {
  std::lock_guard lock(mu_);
  InodeRefs& r = refs_[attr.ino];
  r.lookups++;
  // Projects only ever go from none to a quota root: a lookup that read the
  // record before the tagging must not undo it.
  if (attr.project != 0) r.project = attr.project;
}

void Vfs::NameRemoved(const Attr& attr) {
  if (attr.nlink != 0) return;
  bool referenced = false, open = false, shrunk = false;
  {
    std::lock_guard lock(mu_);
    auto it = refs_.find(attr.ino);
    if (it != refs_.end()) {
      it->second.unlinked = true;
      referenced = it->second.lookups != 0 || it->second.opens != 0;
      open = it->second.opens != 0;
      if (!referenced) shrunk = EraseRefLocked(it);
    }
  }
  if (!referenced) {
    DropInode(attr.ino, attr.project);
    if (shrunk) ReleaseFreeMemory();
    return;
  }
  if (!open) UnchargeIfUnused(attr.ino, attr.project);
}

bool Vfs::EraseRefLocked(std::unordered_map<Ino, InodeRefs>::iterator it) {
  refs_.erase(it);
  return ShrinkIfSparse(refs_);
}

void Vfs::ForgetInodeStateLocked(Ino ino) {
  kernel_version_.erase(ino);
  ShrinkIfSparse(kernel_version_);
  if (auto it = lru_pos_.find(ino); it != lru_pos_.end()) {
    lru_.erase(it->second);
    lru_pos_.erase(it);
    ShrinkIfSparse(lru_pos_);
  }
  // Odd: a takeover still runs and reads its count when it ends.
  if (auto it = own_seq_.find(ino); it != own_seq_.end() && it->second % 2 == 0) {
    own_seq_.erase(it);
    ShrinkIfSparse(own_seq_);
  }
}

VfsTables Vfs::Tables() {
  VfsTables t;
  {
    std::lock_guard lock(mu_);
    t.kernel_inodes = refs_.size();
    t.kernel_inode_buckets = refs_.bucket_count();
    t.cluster_entries = kernel_version_.size() + lru_pos_.size() + own_seq_.size() + fetches_.size();
  }
  t.meta_inodes = meta_->InodeCount();
  t.meta_buckets = meta_->IndexBuckets();
  return t;
}

void Vfs::UnchargeIfUnused(Ino ino, Ino project) {
  auto quota = QuotaOf(project);
  if (!quota) return;
  std::lock_guard ql(quota->mu);  // before mu_, as everywhere
  {
    std::lock_guard lock(mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end() || !it->second.unlinked || it->second.opens > 0 || it->second.uncharged) return;
    it->second.uncharged = true;
  }
  quota->Resize(DataSize(ino, -1), 0);
}

void Vfs::Forget(Ino ino, uint64_t count) {
  Ino project = 0;
  bool charged = true, unlinked = false, shrunk = false;
  {
    std::lock_guard lock(mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return;
    InodeRefs& r = it->second;
    r.lookups = count >= r.lookups ? 0 : r.lookups - count;
    if (r.lookups != 0 || r.opens != 0) return;
    unlinked = r.unlinked;
    project = r.project;
    charged = !r.uncharged;
    shrunk = EraseRefLocked(it);
  }
  if (unlinked) DropInode(ino, project, charged);
  if (shrunk) ReleaseFreeMemory();
}

void Vfs::DropInode(Ino ino, Ino project, bool charged) {
  if (!meta_->Namespace().intact) return;  // keep everything while the namespace is lost
  // Data first: a crash in between leaves an orphan record, dropped at the next start.
  Status st;
  if (auto quota = charged ? QuotaOf(project) : nullptr) {
    // Not WithinQuota: a count made now would already leave this inode out.
    std::lock_guard lock(quota->mu);
    uint64_t size = DataSize(ino, -1);
    st = store_->RemoveData(ino);
    if (st.ok()) quota->Resize(size, 0);
  } else {
    st = store_->RemoveData(ino);
  }
  if (st.ok()) st = meta_->Drop(ino);
  if (st.ok()) {
    std::lock_guard lock(mu_);
    ForgetInodeStateLocked(ino);
  }
  if (!st.ok()) TLOG_WARN("drop inode %llu: %s", static_cast<unsigned long long>(ino), st.ToString().c_str());
}

Attr Vfs::MergeData(Attr attr, int fd) {
  bool remote = OwnedElsewhere(attr);
  if (remote && fd < 0) {
    // A local copy of another node's file counts only if it is the current
    // version; otherwise the record is the truth.
    auto lv = store_->LocalVersion(attr.ino);
    if (!lv.ok() || *lv != attr.version) {
      attr.blocks = (attr.size + 511) / 512;
      return attr;
    }
  }
  if (!S_ISREG(attr.mode)) {
    attr.blocks = (attr.size + 511) / 512;
    return attr;
  }
  struct stat st;
  int rc = fd >= 0 ? fstat(fd, &st) : -1;
  if (rc != 0) {
    auto r = store_->StatData(attr.ino);
    if (!r.ok()) return attr;  // never written: the record says it all
    st = *r;
  }
  attr.size = st.st_size;
  attr.blocks = st.st_blocks;
  attr.atime_ns = TsNs(st.st_atim);
  attr.mtime_ns = TsNs(st.st_mtim);
  attr.ctime_ns = std::max(attr.ctime_ns, TsNs(st.st_ctim));
  return attr;
}

Result<Attr> Vfs::Lookup(Ino parent, std::string_view name) {
  if (name.size() > kNameMax) return Status::Err(ENAMETOOLONG);
  auto r = meta_->Lookup(parent, name);
  if (!r.ok()) return r;
  AddLookup(*r);
  return MergeData(*r, -1);
}

Result<Attr> Vfs::GetAttr(Ino ino) {
  auto r = meta_->GetAttr(ino);
  if (!r.ok()) return r;
  return MergeData(*r, -1);
}

Result<Attr> Vfs::SetAttr(Ino ino, const SetAttrRequest& request, int fd, bool kill_suid) {
  auto cur = meta_->GetAttr(ino);
  if (!cur.ok()) return cur;
  SetAttrRequest req = request;
  // Linux drops set-ID bits on truncate by the unprivileged and on any chown
  // of a non-directory, unless the same call sets the mode.
  bool chown = (req.valid & (SetAttrRequest::kUid | SetAttrRequest::kGid)) != 0;
  if ((kill_suid || chown) && !(req.valid & SetAttrRequest::kMode)) {
    if (uint32_t bits = KilledSetIdBits(cur->mode)) {
      req.valid |= SetAttrRequest::kMode;
      req.mode = cur->mode & ~bits;
    }
  }
  bool commit_content = false;
  if (S_ISREG(cur->mode) && clustered() && (req.valid & SetAttrRequest::kSize)) {
    // A truncate is a new version of the content, made from a whole local copy.
    if (OwnedElsewhere(*cur)) {
      auto lv = store_->LocalVersion(ino);
      if (!lv.ok()) return lv.status();
      if (*lv != cur->version) {
        auto f = FetchOf(*cur);
        if (!f.ok()) return f.status();
        Status st = (*f)->WaitDone(options_.cluster.wait_limit);
        if (!st.ok()) return st;
      }
    }
    commit_content = true;
  }
  if (S_ISREG(cur->mode)) {
    if (req.valid & SetAttrRequest::kSize) {
      auto truncate = [&]() -> Status {
        if (fd >= 0 && store_->env()->Ftruncate(fd, static_cast<off_t>(req.size)) == 0) return Status::Ok();
        // Growing a lost file would make zeros of its data: only a
        // truncate to 0 may stand for it.
        auto dfd = OpenLocalData(ino, O_WRONLY | (req.size == 0 ? O_TRUNC : 0), &*cur);
        if (!dfd.ok()) return dfd.status();
        int rc = store_->env()->Ftruncate(*dfd, static_cast<off_t>(req.size));
        Status st = rc == 0 ? Status::Ok() : Status::FromErrno("truncate data");
        store_->env()->Close(*dfd);
        return st;
      };
      Status st;
      if (auto quota = QuotaOf(cur->project)) {
        st = WithinQuota(*quota, ino, fd, [&](uint64_t, uint64_t limit) {
          return req.size > limit ? Status::Err(ENOSPC, "capacity of the volume") : truncate();
        });
      } else {
        st = truncate();
      }
      if (!st.ok()) return st;
    }
    if (req.valid & (SetAttrRequest::kAtime | SetAttrRequest::kMtime)) {
      timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
      if (req.valid & SetAttrRequest::kAtime) times[0] = NsTs(req.atime_ns);
      if (req.valid & SetAttrRequest::kMtime) times[1] = NsTs(req.mtime_ns);
      int rc = fd >= 0 ? futimens(fd, times) : -1;
      Status st = rc == 0 ? Status::Ok() : store_->SetDataTimes(ino, times);
      if (!st.ok() && st.err() != ENOENT) return st;
    }
  } else if (req.valid & SetAttrRequest::kSize) {
    return Status::Err(S_ISDIR(cur->mode) ? EISDIR : EINVAL);
  }
  if (commit_content) {
    req.valid &= ~SetAttrRequest::kSize;
    Status st = CommitContent(ino);
    if (!st.ok()) return st;
    if (req.valid == 0) {
      auto a = meta_->GetAttr(ino);
      if (!a.ok()) return a;
      return MergeData(*a, fd);
    }
  }
  auto r = meta_->SetAttr(ino, req);
  if (!r.ok()) return r;
  return MergeData(*r, fd);
}

Result<Attr> Vfs::MakeNode(const Caller& caller, Ino parent, std::string_view name, uint32_t mode,
                           uint64_t rdev, std::string_view target) {
  Status st = ValidateName(name);
  if (!st.ok()) return st;
  auto dir = meta_->GetAttr(parent);
  if (!dir.ok()) return dir;
  NewNode n;
  n.mode = mode;
  n.uid = caller.uid;
  n.gid = caller.gid;
  n.rdev = rdev;
  n.target.assign(target);
  // BSD group semantics in setgid directories, as local filesystems do.
  if (dir->mode & S_ISGID) {
    n.gid = dir->gid;
    if (S_ISDIR(mode)) n.mode |= S_ISGID;
  }
  auto r = meta_->Create(parent, name, n);
  if (!r.ok()) return r;
  AddLookup(*r);
  if (S_ISREG(mode)) {
    // Its data file is made now, empty, whatever a crash left under that number.
    if (Status cst = store_->CreateData(r->ino); !cst.ok()) {
      Status ust = Unlink(parent, name);  // the kernel never heard of it
      (void)ust;
      Forget(r->ino, 1);
      return cst;
    }
  }
  return *r;
}

Result<Attr> Vfs::Link(Ino ino, Ino new_parent, std::string_view new_name) {
  Status st = ValidateName(new_name);
  if (!st.ok()) return st;
  auto r = meta_->Link(ino, new_parent, new_name);
  if (!r.ok()) return r;
  AddLookup(*r);
  return MergeData(*r, -1);
}

Status Vfs::Unlink(Ino parent, std::string_view name) {
  if (name.size() > kNameMax) return Status::Err(ENAMETOOLONG);
  auto r = meta_->Unlink(parent, name);
  if (!r.ok()) return r.status();
  NameRemoved(*r);
  return Status::Ok();
}

Status Vfs::Rmdir(Ino parent, std::string_view name) {
  if (name.size() > kNameMax) return Status::Err(ENAMETOOLONG);
  auto r = meta_->Rmdir(parent, name);
  if (!r.ok()) return r.status();
  NameRemoved(*r);
  return Status::Ok();
}

Status Vfs::Rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                   unsigned flags) {
  Status st = ValidateName(new_name);
  if (!st.ok()) return st;
  auto r = meta_->Rename(parent, name, new_parent, new_name, flags);
  if (!r.ok()) return r.status();
  if (r->has_value()) NameRemoved(**r);
  return Status::Ok();
}

Result<std::string> Vfs::ReadLink(Ino ino) { return meta_->ReadLink(ino); }

Result<std::vector<DirEntry>> Vfs::ReadDir(Ino ino) { return meta_->ReadDir(ino); }

Result<Vfs::OpenFile> Vfs::Create(const Caller& caller, Ino parent, std::string_view name,
                                  uint32_t mode, int flags) {
  auto a = MakeNode(caller, parent, name, S_IFREG | (mode & 07777), 0);
  if (!a.ok()) return a.status();
  auto h = Open(caller, a->ino, flags | O_TRUNC);
  if (!h.ok()) {
    // Undo the name: a create that failed (say, ENOSPC) leaves nothing behind.
    // The kernel never heard of the inode, so its reference goes too.
    Status st = Unlink(parent, name);
    (void)st;
    Forget(a->ino, 1);
    return h.status();
  }
  return OpenFile{MergeData(*a, (*h)->fd), *h};
}

bool Vfs::KernelCacheCurrent(Ino ino, uint64_t version) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = kernel_version_.try_emplace(ino, version);
  if (inserted) return false;
  bool same = it->second == version;
  it->second = version;
  return same;
}

void Vfs::TouchCached(Ino ino) {
  std::lock_guard lock(mu_);
  auto it = lru_pos_.find(ino);
  if (it != lru_pos_.end()) lru_.erase(it->second);
  lru_.push_back(ino);
  lru_pos_[ino] = std::prev(lru_.end());
}

void Vfs::MakeRoom(uint64_t need) {
  constexpr uint64_t kHeadroom = 64ull << 20;
  std::set<Ino> skipped;
  for (;;) {
    auto sv = store_->StatFs();
    if (!sv.ok() || static_cast<uint64_t>(sv->f_bavail) * sv->f_frsize >= need + kHeadroom) return;
    Ino victim = 0;
    uint64_t seq = 0;
    {
      std::lock_guard lock(mu_);
      for (Ino ino : lru_) {
        auto r = refs_.find(ino);
        if ((r != refs_.end() && r->second.opens > 0) || pinned_.count(ino) != 0 || skipped.count(ino) != 0) continue;
        victim = ino;
        seq = OwnSeqLocked(ino);
        break;
      }
    }
    if (victim == 0) return;
    // Only a copy: the owner still has the data. Check, in case this node
    // took the file over since.
    auto a = meta_->GetAttr(victim);
    // Without an answer (Redis down, namespace lost) the copy may be the
    // only one left: keep it.
    if (!a.ok() && a.err() != ENOENT) return;
    std::lock_guard lock(mu_);
    auto it = lru_pos_.find(victim);
    if (it == lru_pos_.end()) continue;  // taken over (or evicted) meanwhile
    lru_.erase(it->second);
    lru_pos_.erase(it);
    if (a.ok() && a->owner == options_.cluster.self) continue;
    if (RemoveUnusedDataLocked(victim, seq).ok()) {
      counters_.evictions++;
      TLOG_INFO("evicted the cached copy of inode %llu to make room", static_cast<unsigned long long>(victim));
    } else {
      skipped.insert(victim);
    }
  }
}

uint64_t Vfs::OwnSeqLocked(Ino ino) const {
  auto it = own_seq_.find(ino);
  return it == own_seq_.end() ? 0 : it->second;
}

Vfs::OwnershipChange::OwnershipChange(Vfs& vfs, Ino ino) : vfs_(vfs), ino_(ino) {
  std::lock_guard lock(vfs_.mu_);
  vfs_.own_seq_[ino_]++;
}

Vfs::OwnershipChange::~OwnershipChange() {
  std::lock_guard lock(vfs_.mu_);
  vfs_.own_seq_[ino_]++;
}

Status Vfs::RemoveUnusedDataLocked(Ino ino, uint64_t seen_seq) {
  // The owner was checked outside the lock: if this node started or finished
  // taking the file over since, the data may be its own now.
  if (OwnSeqLocked(ino) != seen_seq || seen_seq % 2 != 0) return Status::Err(EBUSY, "this node is taking the file over");
  if (adopting_.count(ino) != 0) return Status::Err(EBUSY, "this node is taking the file over");
  auto r = refs_.find(ino);
  if (r != refs_.end() && r->second.opens > 0) return Status::Err(EBUSY, "the file is open");
  if (fetches_.count(ino) != 0) return Status::Err(EBUSY, "a copy is arriving");
  return store_->RemoveData(ino);
}

Result<std::shared_ptr<Fetch>> Vfs::FetchOf(const Attr& attr) {
  MakeRoom(attr.size);
  std::lock_guard lock(mu_);
  auto it = fetches_.find(attr.ino);
  if (it != fetches_.end() && it->second->attr().version == attr.version) return it->second;
  if (it != fetches_.end()) {
    // An older version is still arriving: the new one must not share its
    // .part file. Readers of the old one keep their descriptors.
    return Status::Err(EAGAIN, "previous version still arriving");
  }
  auto f = std::make_shared<Fetch>(*store_, *options_.cluster.transport, attr, [this](const Fetch& done) {
    Status st = done.result();
    std::string peer = options_.cluster.transport->NodeName(done.attr().owner);
    if (st.ok()) {
      TouchCached(done.attr().ino);
      counters_.bytes_fetched += done.bytes();
      bool adopt = false;
      {
        std::lock_guard l(mu_);
        auto ad = adopting_.find(done.attr().ino);
        adopt = ad != adopting_.end() && ad->second == done.attr().version;
      }
      if (adopt) {
        Status ts = TakeOver(done.attr().ino, done.attr().version);
        TLOG_INFO("took over inode %llu version %llu from node %s: %s",
                  static_cast<unsigned long long>(done.attr().ino),
                  static_cast<unsigned long long>(done.attr().version), peer.c_str(), ts.ToString().c_str());
      }
      TLOG_INFO("fetched inode %llu version %llu (%llu bytes) from node %s in %lld ms",
                static_cast<unsigned long long>(done.attr().ino), static_cast<unsigned long long>(done.attr().version),
                static_cast<unsigned long long>(done.bytes()), peer.c_str(),
                static_cast<long long>(done.elapsed().count()));
    } else {
      {
        std::lock_guard l(mu_);
        adopting_.erase(done.attr().ino);  // the drainer asks again
      }
      counters_.fetch_failures++;
      if (st.err() == EBADMSG) counters_.checksum_failures++;
      TLOG_ERROR("fetch of inode %llu version %llu from node %s failed: %s",
                 static_cast<unsigned long long>(done.attr().ino), static_cast<unsigned long long>(done.attr().version),
                 peer.c_str(), st.ToString().c_str());
    }
    std::lock_guard l(mu_);
    auto cur = fetches_.find(done.attr().ino);
    if (cur != fetches_.end() && cur->second.get() == &done) fetches_.erase(cur);
    fetches_done_.notify_all();
  });
  Status st = f->Start();
  if (!st.ok()) return st;
  counters_.remote_fetches++;
  fetches_[attr.ino] = f;
  return f;
}

Result<std::shared_ptr<Fetch>> Vfs::FetchCurrent(const Attr& attr) {
  Result<std::shared_ptr<Fetch>> f = Status::Err(EAGAIN);
  // A previous version's copy may still be finishing: wait for it, bounded.
  for (int i = 0; i < 100 && !f.ok() && f.err() == EAGAIN; i++) {
    f = FetchOf(attr);
    if (!f.ok() && f.err() == EAGAIN) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f;
}

Vfs::~Vfs() {
  std::unique_lock lock(mu_);
  fetches_done_.wait_for(lock, std::chrono::seconds(30), [&] { return fetches_.empty(); });
}

Result<FileHandle*> Vfs::Open(const Caller& caller, Ino ino, int flags) {
  // Counted open from the start: evictions and garbage collection leave the
  // data of open files alone, so nothing removes the local copy between the
  // checks below and the open of the data file.
  bool reopened_unlinked = false;
  {
    std::lock_guard lock(mu_);
    InodeRefs& r = refs_[ino];
    r.opens++;
    // Opened again after its last name went (through /proc/PID/fd): its
    // space counts again.
    reopened_unlinked = r.uncharged;
    r.uncharged = false;
  }
  struct Pending {
    Vfs* vfs;
    Ino ino;
    bool done = false;
    ~Pending() {
      if (!done) vfs->DropOpenRef(ino);
    }
  } pending{this, ino};
  bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  Attr attr;
  bool need_attr = (writes && caller.uid != 0) || clustered();
  if (!need_attr) {
    // The project as the inode was last looked up (renames never change it).
    std::lock_guard lock(mu_);
    auto it = refs_.find(ino);
    if (it != refs_.end() && it->second.lookups > 0) attr.project = it->second.project;
    else need_attr = true;
  }
  if (need_attr) {
    auto a = meta_->GetAttr(ino);
    if (!a.ok()) return a.status();
    attr = *a;
  }
  if (writes && caller.uid != 0) {
    if (uint32_t bits = KilledSetIdBits(attr.mode)) {
      SetAttrRequest req;
      req.valid = SetAttrRequest::kMode;
      req.mode = attr.mode & ~bits;
      auto r = meta_->SetAttr(ino, req);
      if (!r.ok()) return r.status();
    }
  }
  if (options_.writeback_cache) {
    // The kernel may read to fill pages of a write-only file, and it places
    // appends itself.
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  auto h = std::make_unique<FileHandle>();
  h->ino = ino;
  h->writable = writes;
  h->truncated = (flags & O_TRUNC) != 0;
  h->append = (flags & O_APPEND) != 0;
  h->quota = QuotaOf(attr.project);
  if (h->quota) h->passthrough_ok = false;
  if (h->quota && reopened_unlinked) {
    std::lock_guard ql(h->quota->mu);
    h->quota->Resize(0, DataSize(ino, -1));
  }
  bool remote = OwnedElsewhere(attr);
  if (remote) {
    auto lv = store_->LocalVersion(ino);
    if (!lv.ok()) return lv.status();
    if (*lv != attr.version && !h->truncated) {
      auto f = FetchCurrent(attr);
      if (!f.ok()) return f.status();
      if (writes) {
        // Writers change the local copy: it must be whole first.
        Status st = (*f)->WaitDone(options_.cluster.wait_limit);
        if (!st.ok()) return st;
      } else {
        auto fd = (*f)->OpenForRead();
        if (!fd.ok()) return fd.status();
        h->fd = *fd;
        h->fetch = *f;
        h->passthrough_ok = false;
      }
    } else if (*lv != attr.version) {
      // O_TRUNC: the old content does not matter; start from an empty file
      // that stands for the version it will replace.
      auto fd = store_->OpenData(ino, O_WRONLY | O_TRUNC | O_CREAT);
      if (!fd.ok()) return fd.status();
      close(*fd);
      Status st = store_->SetLocalVersion(ino, attr.version);
      if (!st.ok()) return st;
    } else {
      counters_.local_opens++;
      TouchCached(ino);
    }
  } else {
    counters_.local_opens++;
  }
  if (h->fd < 0) {
    auto open_data = [&]() -> Status {
      auto fd = OpenLocalData(ino, flags, need_attr ? &attr : nullptr);
      if (!fd.ok()) return fd.status();
      h->fd = *fd;
      return Status::Ok();
    };
    // O_TRUNC frees the project's room.
    Status st = h->quota && h->truncated ? WithinQuota(*h->quota, ino, -1, [&](uint64_t, uint64_t) { return open_data(); })
                                         : open_data();
    if (!st.ok()) return st;
  }
  struct stat st;
  if (fstat(h->fd, &st) == 0) {
    h->opened_mtime_ns = TsNs(st.st_mtim);
    h->opened_size = st.st_size;
  }
  if (clustered()) h->keep_cache = KernelCacheCurrent(ino, attr.version);
  pending.done = true;
  return h.release();
}

Status Vfs::WaitReadable(FileHandle* h, uint64_t off, uint64_t size) {
  if (!h->fetch) return Status::Ok();
  return h->fetch->WaitFor(std::min(off + size, h->fetch->attr().size), options_.cluster.wait_limit);
}

Status Vfs::CommitContent(Ino ino) {
  auto base = store_->LocalVersion(ino);
  if (!base.ok()) return base.status();
  auto fd = OpenLocalData(ino, O_RDONLY, nullptr);
  if (!fd.ok()) return fd.status();
  XXH64_state_t* x = XXH64_createState();
  XXH64_reset(x, 0);
  std::vector<char> buf(1 << 20);
  uint64_t size = 0;
  Status st;
  for (;;) {
    ssize_t n = read(*fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = Status::FromErrno("read for checksum");
      break;
    }
    if (n == 0) break;
    XXH64_update(x, buf.data(), n);
    size += n;
  }
  uint64_t sum = XXH64_digest(x);
  XXH64_freeState(x);
  close(*fd);
  if (!st.ok()) return st;
  SetAttrRequest req;
  req.valid = SetAttrRequest::kContent | SetAttrRequest::kSize;
  req.size = size;
  req.owner = options_.cluster.self;
  req.checksum = sum;
  req.base_version = *base;
  OwnershipChange change(*this, ino);
  auto r = meta_->SetAttr(ino, req);
  if (!r.ok()) {
    if (r.err() == ESTALE) {
      counters_.write_conflicts++;
      TLOG_WARN("inode %llu: another node wrote version %s first; this node's changes were not published",
                static_cast<unsigned long long>(ino), "newer");
      return Status::Err(EIO, "write conflict");
    }
    return r.status();
  }
  st = store_->SetLocalVersion(ino, r->version);
  if (!st.ok()) return st;
  counters_.versions_committed++;
  std::lock_guard lock(mu_);
  kernel_version_[ino] = r->version;
  // This node's own data now: never evict it.
  if (auto it = lru_pos_.find(ino); it != lru_pos_.end()) {
    lru_.erase(it->second);
    lru_pos_.erase(it);
  }
  return Status::Ok();
}

Status Vfs::Flush(FileHandle* h) {
  if (!clustered() || !h->writable) return Status::Ok();
  struct stat st;
  if (fstat(h->fd, &st) != 0) return Status::FromErrno("stat");
  if (!h->truncated && TsNs(st.st_mtim) == h->opened_mtime_ns &&
      static_cast<uint64_t>(st.st_size) == h->opened_size) {
    return Status::Ok();  // not written through this handle
  }
  Status cs = CommitContent(h->ino);
  if (cs.ok()) {
    h->opened_mtime_ns = TsNs(st.st_mtim);
    h->opened_size = st.st_size;
    h->truncated = false;
  }
  return cs;
}

void Vfs::Release(FileHandle* h) {
  Ino ino = h->ino;
  struct stat st;
  // One node: close() skips the daemon (no FLUSH), so the size of a file
  // written through this handle is recorded here.
  if (!clustered() && h->writable && fstat(h->fd, &st) == 0 &&
      (h->truncated || TsNs(st.st_mtim) != h->opened_mtime_ns || static_cast<uint64_t>(st.st_size) != h->opened_size)) {
    RecordSize(ino, static_cast<uint64_t>(st.st_size));
  }
  close(h->fd);
  delete h;
  DropOpenRef(ino);
}

void Vfs::DropOpenRef(Ino ino) {
  Ino project = 0;
  bool charged = true, unused = false, shrunk = false;
  {
    std::lock_guard lock(mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return;
    InodeRefs& r = it->second;
    if (r.opens > 0) r.opens--;
    if (r.opens != 0 || !r.unlinked) return;
    project = r.project;
    // Still known to the kernel: only its space goes now.
    unused = r.lookups != 0;
    if (!unused) {
      charged = !r.uncharged;
      shrunk = EraseRefLocked(it);
    }
  }
  if (unused) return UnchargeIfUnused(ino, project);
  DropInode(ino, project, charged);
  if (shrunk) ReleaseFreeMemory();
}

Status Vfs::Fsync(FileHandle* h, bool datasync) {
  if (h != nullptr && (datasync ? fdatasync(h->fd) : fsync(h->fd)) != 0) return Status::FromErrno("fsync");
  return meta_->Sync();
}

Result<std::pair<int, uint64_t>> Vfs::OpenForPeer(Ino ino, uint64_t version) {
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  if (a->owner != options_.cluster.self || a->version != version) return Status::Err(ESTALE, "not the owner of that version");
  // The only copy: a missing one is lost, never an empty stream to the peer.
  auto fd = OpenLocalData(ino, O_RDONLY, &*a);
  if (!fd.ok()) return fd.status();
  auto lv = store_->LocalVersion(ino);
  if (!lv.ok() || *lv != version) {
    close(*fd);
    return lv.ok() ? Status::Err(ESTALE, "local copy is another version") : lv.status();
  }
  return std::make_pair(*fd, a->size);
}

Result<std::string> Vfs::GetXattr(Ino ino, std::string_view name) { return meta_->GetXattr(ino, name); }
Result<std::vector<std::string>> Vfs::ListXattr(Ino ino) { return meta_->ListXattr(ino); }
Status Vfs::SetXattr(Ino ino, std::string_view name, std::string_view value, int flags) {
  if (name != kCapacityXattr) return meta_->SetXattr(ino, name, value, flags);
  auto capacity = ParseCapacity(value);
  if (!capacity.ok()) return capacity.status();
  if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
    auto old = meta_->GetXattr(ino, name);
    if ((flags & XATTR_CREATE) && old.ok()) return Status::Err(EEXIST);
    if ((flags & XATTR_REPLACE) && !old.ok()) return old.status();
  }
  return MakeQuotaRoot(ino, *capacity);
}

Status Vfs::RemoveXattr(Ino ino, std::string_view name) {
  Status st = meta_->RemoveXattr(ino, name);
  if (st.ok() && name == kCapacityXattr) {
    std::lock_guard lock(quota_mu_);
    LiftProjectLocked(ino);
    projects_[ino] = nullptr;
  }
  return st;
}

Result<struct statvfs> Vfs::StatFs(Ino ino) {
  auto r = store_->StatFs();
  if (!r.ok()) return r;
  if (Status st = LimitStatFs(ino, &*r); !st.ok()) return st;
  r->f_namemax = kNameMax;
  uint64_t used = meta_->InodeCount();
  // Inodes are limited by the engine's memory, not the store: report plenty.
  r->f_files = std::max<uint64_t>(r->f_files, used + r->f_ffree);
  return r;
}

// ---- Admin operations ----

Result<FileLocation> Vfs::Locate(Ino ino) {
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  FileLocation loc;
  loc.attr = MergeData(*a, -1);
  bool remote = OwnedElsewhere(*a);
  loc.owned_here = !remote;
  if (S_ISREG(a->mode)) {
    auto lv = store_->LocalVersion(ino);
    loc.local_current = !remote || (lv.ok() && *lv == a->version && store_->StatData(ino).ok());
    if (!remote && RecordSaysData(*a)) {
      auto data = store_->StatData(ino);
      loc.lost = !data.ok() && data.err() == ENOENT;
      loc.local_current = !loc.lost;
    }
  }
  std::lock_guard lock(mu_);
  loc.pinned = pinned_.count(ino) != 0;
  if (auto it = fetches_.find(ino); it != fetches_.end()) {
    loc.fetching = true;
    loc.fetched_bytes = it->second->bytes();
  }
  return loc;
}

Result<std::shared_ptr<Fetch>> Vfs::Prefetch(Ino ino) {
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  if (!S_ISREG(a->mode)) return Status::Err(EINVAL, "not a regular file");
  bool remote = OwnedElsewhere(*a);
  if (!remote) return std::shared_ptr<Fetch>();
  auto lv = store_->LocalVersion(ino);
  if (!lv.ok()) return lv.status();
  if (*lv == a->version && store_->StatData(ino).ok()) {
    TouchCached(ino);
    return std::shared_ptr<Fetch>();
  }
  return FetchCurrent(*a);
}

Result<uint64_t> Vfs::Evict(Ino ino) {
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    seq = OwnSeqLocked(ino);
  }
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  if (!S_ISREG(a->mode)) return Status::Err(EINVAL, "not a regular file");
  bool remote = OwnedElsewhere(*a);
  if (!remote) return Status::Err(EPERM, "this node owns the data (the only copy)");
  auto st = store_->StatData(ino);
  if (!st.ok()) return uint64_t{0};
  std::lock_guard lock(mu_);
  Status rs = RemoveUnusedDataLocked(ino, seq);
  if (!rs.ok()) return rs;
  if (auto it = lru_pos_.find(ino); it != lru_pos_.end()) {
    lru_.erase(it->second);
    lru_pos_.erase(it);
  }
  counters_.evictions++;
  return static_cast<uint64_t>(st->st_blocks) * 512;
}

Status Vfs::Pin(Ino ino, bool pinned) {
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  if (!S_ISREG(a->mode)) return Status::Err(EINVAL, "not a regular file");
  {
    std::lock_guard lock(mu_);
    if (pinned ? !pinned_.insert(ino).second : pinned_.erase(ino) == 0) return Status::Ok();
  }
  SavePins();
  return Status::Ok();
}

void Vfs::SavePins() {
  std::lock_guard save(pins_save_mu_);  // one writer of pins.tmp at a time
  std::string text;
  {
    std::lock_guard lock(mu_);
    for (Ino ino : pinned_) text += std::to_string(ino) + "\n";
  }
  std::string path = store_->root() + "/pins", tmp = path + ".tmp";
  FILE* f = fopen(tmp.c_str(), "we");
  bool ok = f != nullptr && fwrite(text.data(), 1, text.size(), f) == text.size();
  if (f != nullptr && fclose(f) != 0) ok = false;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) TLOG_WARN("cannot save %s: %s", path.c_str(), strerror(errno));
}

void Vfs::LoadPins() {
  FILE* f = fopen((store_->root() + "/pins").c_str(), "re");
  if (f == nullptr) return;
  unsigned long long ino;
  std::lock_guard lock(mu_);
  while (fscanf(f, "%llu", &ino) == 1) pinned_.insert(ino);
  fclose(f);
}

Result<StoreUsage> Vfs::Usage() {
  StoreUsage u;
  auto sv = store_->StatFs();
  if (!sv.ok()) return sv.status();
  u.total_bytes = static_cast<uint64_t>(sv->f_blocks) * sv->f_frsize;
  u.free_bytes = static_cast<uint64_t>(sv->f_bavail) * sv->f_frsize;
  auto inos = store_->ListData();
  if (!inos.ok()) return inos.status();
  for (Ino ino : *inos) {
    auto st = store_->StatData(ino);
    if (!st.ok()) continue;  // removed meanwhile
    uint64_t bytes = static_cast<uint64_t>(st->st_blocks) * 512;
    bool own = true;
    if (clustered()) {
      auto a = meta_->GetAttr(ino);
      // Without an answer (a fenced node) the data is kept: count it as its own.
      own = a.ok() ? !OwnedElsewhere(*a) : a.err() != ENOENT;
    }
    (own ? u.own_files : u.cached_files)++;
    (own ? u.own_bytes : u.cached_bytes) += bytes;
  }
  std::lock_guard lock(mu_);
  u.pinned_files = pinned_.size();
  return u;
}

Status Vfs::TakeOver(Ino ino, uint64_t version) {
  SetAttrRequest req;
  req.valid = SetAttrRequest::kOwner;
  req.owner = options_.cluster.self;
  req.base_version = version;
  OwnershipChange change(*this, ino);
  auto r = meta_->SetAttr(ino, req);
  if (!r.ok()) return r.status();
  std::lock_guard lock(mu_);
  adopting_.erase(ino);
  // This node's own data now: never evict it.
  if (auto it = lru_pos_.find(ino); it != lru_pos_.end()) {
    lru_.erase(it->second);
    lru_pos_.erase(it);
  }
  return Status::Ok();
}

Status Vfs::Adopt(Ino ino, uint64_t version, uint32_t from) {
  if (!clustered()) return Status::Err(EINVAL, "not in cluster mode");
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  if (!S_ISREG(a->mode) || a->owner != from || a->version != version) {
    return Status::Err(ESTALE, "the asking node does not own that version");
  }
  {
    // From here until the take-over, nothing evicts the copy.
    std::lock_guard lock(mu_);
    adopting_[ino] = version;
  }
  auto lv = store_->LocalVersion(ino);
  if (lv.ok() && *lv == version && store_->StatData(ino).ok()) {
    Status st = TakeOver(ino, version);
    std::lock_guard lock(mu_);
    adopting_.erase(ino);
    return st;
  }
  // The copy's end takes it over (see FetchOf); a copy that ended before
  // adopting_ was set is taken over when the drainer asks again.
  auto f = Prefetch(ino);
  if (!f.ok()) {
    std::lock_guard lock(mu_);
    adopting_.erase(ino);
    return f.status();
  }
  return Status::Ok();
}

Status Vfs::Drain(const std::function<bool(const DrainProgress&)>& progress, std::chrono::milliseconds stall_limit,
                  const std::function<uint64_t()>& bytes_moved) {
  if (!clustered()) return Status::Err(EINVAL, "not in cluster mode: there is no other node to take the data");
  // Files written here while a pass runs are owned here again: passes go on
  // until one finds nothing, a few at most.
  DrainProgress p;
  for (int pass = 0; pass < 3; pass++) {
    bool nothing_owned = false;
    TEMPFS_RETURN_IF_ERROR(DrainPass(progress, stall_limit, bytes_moved, p, &nothing_owned));
    if (nothing_owned) return Status::Ok();
  }
  return Status::Err(EAGAIN, "files are still being written on this node; stop the writers and drain again");
}

Status Vfs::DrainPass(const std::function<bool(const DrainProgress&)>& progress, std::chrono::milliseconds stall_limit,
                      const std::function<uint64_t()>& bytes_moved, DrainProgress& p, bool* nothing_owned) {
  auto live = options_.cluster.transport->LiveNodes();
  if (!live.ok()) return live.status();
  std::vector<uint32_t> targets;
  for (uint32_t n : *live) {
    if (n != options_.cluster.self) targets.push_back(n);
  }
  if (targets.empty()) return Status::Err(EHOSTUNREACH, "no other live node to take the data");
  // What this node owns: its data files whose record names it the owner.
  struct Item {
    Attr attr;
    size_t target = 0;
    bool asked = false;
    std::chrono::steady_clock::time_point asked_at;
  };
  std::vector<Item> todo;
  auto inos = store_->ListData();
  if (!inos.ok()) return inos.status();
  for (Ino ino : *inos) {
    auto a = meta_->GetAttr(ino);
    if (!a.ok() || !S_ISREG(a->mode) || a->owner != options_.cluster.self) continue;
    Item it;
    it.attr = *a;
    it.target = todo.size() % targets.size();
    todo.push_back(it);
    p.bytes_total += a->size;
  }
  p.files_total += todo.size();
  *nothing_owned = todo.empty();
  if (!progress(p)) return Status::Err(ECANCELED, "drain cancelled");
  constexpr size_t kInFlight = 4;
  auto last_progress = std::chrono::steady_clock::now(), last_report = last_progress;
  uint64_t moved = bytes_moved ? bytes_moved() : 0;
  size_t next = 0;
  std::vector<Item> flying;
  while (next < todo.size() || !flying.empty()) {
    while (flying.size() < kInFlight && next < todo.size()) flying.push_back(todo[next++]);
    for (auto it = flying.begin(); it != flying.end();) {
      auto a = meta_->GetAttr(it->attr.ino);
      bool gone = !a.ok() && a.err() == ENOENT;
      if (!a.ok() && !gone) return a.status();
      if (gone || a->owner != options_.cluster.self) {
        // Taken over (or deleted, or rewritten on another node): done.
        p.files_done++;
        p.bytes_done += it->attr.size;
        last_progress = std::chrono::steady_clock::now();
        it = flying.erase(it);
        if (!progress(p)) return Status::Err(ECANCELED, "drain cancelled");
        continue;
      }
      if (a->version != it->attr.version) {
        p.bytes_total = p.bytes_total - it->attr.size + a->size;
        it->attr = *a;
        it->asked = false;  // rewritten here meanwhile: hand over the new version
      }
      // Ask, and ask again when the copy seems lost (the node restarted, or
      // its copy ended before it noted the request).
      auto now = std::chrono::steady_clock::now();
      if (!it->asked || now - it->asked_at > std::chrono::seconds(5)) {
        Status st = options_.cluster.transport->Adopt(targets[it->target], it->attr.ino, it->attr.version);
        it->asked_at = now;
        it->asked = st.ok();
        if (!st.ok()) {
          TLOG_WARN("drain: node %s cannot take inode %llu: %s",
                    options_.cluster.transport->NodeName(targets[it->target]).c_str(),
                    static_cast<unsigned long long>(it->attr.ino), st.ToString().c_str());
          it->target = (it->target + 1) % targets.size();
        }
      }
      ++it;
    }
    if (flying.empty()) continue;
    // A sign of life for the caller while big files are being copied.
    if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(1)) {
      last_report = std::chrono::steady_clock::now();
      if (!progress(p)) return Status::Err(ECANCELED, "drain cancelled");
    }
    // Bytes on their way to the other nodes count as progress too: one big
    // file may take longer than the stall limit.
    if (bytes_moved) {
      uint64_t now_moved = bytes_moved();
      if (now_moved != moved) {
        moved = now_moved;
        last_progress = std::chrono::steady_clock::now();
      }
    }
    if (std::chrono::steady_clock::now() - last_progress > stall_limit) {
      return Status::Err(ETIMEDOUT, "drain made no progress for " + std::to_string(stall_limit.count() / 1000) +
                                        " s (" + std::to_string(p.files_total - p.files_done) + " files left)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::Ok();
}

}  // namespace tempfs
