// The Vfs's capacity limits (see quota.h): projects, their usage, and the
// operations that check it.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <unordered_set>
#include <vector>

#include "common/log.h"
#include "vfs/vfs.h"

namespace tempfs {

Result<uint64_t> ParseCapacity(std::string_view value) {
  if (value.empty() || value.size() > 20) return Status::Err(EINVAL, "capacity: decimal bytes expected");
  uint64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return Status::Err(EINVAL, "capacity: decimal bytes expected");
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return Status::Err(EINVAL, "capacity: too large");
    v = v * 10 + d;
  }
  return v;
}

std::shared_ptr<Project> Vfs::QuotaOf(Ino project) {
  if (project == 0) return nullptr;
  std::lock_guard lock(quota_mu_);
  auto it = projects_.find(project);
  if (it != projects_.end()) return it->second;
  std::shared_ptr<Project> p;
  auto value = meta_->GetXattr(project, kCapacityXattr);
  auto capacity = value.ok() ? ParseCapacity(*value) : Result<uint64_t>(value.status());
  if (capacity.ok()) {
    p = ProjectObjectLocked(project);
    std::lock_guard pl(p->mu);
    p->capacity = *capacity;
  }
  projects_[project] = p;
  return p;
}

std::shared_ptr<Project> Vfs::ProjectObjectLocked(Ino root) {
  // Files opened while the limit was lifted or before still hold the old
  // object: a limit set again must count with them, not beside them.
  if (auto it = lifted_.find(root); it != lifted_.end()) {
    auto old = it->second.lock();
    lifted_.erase(it);
    if (old) {
      std::lock_guard pl(old->mu);
      old->counted = false;
      return old;
    }
  }
  return std::make_shared<Project>(root);
}

void Vfs::LiftProjectLocked(Ino root) {
  auto it = projects_.find(root);
  if (it == projects_.end()) return;
  if (it->second) lifted_[root] = it->second;
  projects_.erase(it);
}

uint64_t Vfs::DataSize(Ino ino, int fd) {
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0) return static_cast<uint64_t>(st.st_size);
  auto r = store_->StatData(ino);
  return r.ok() ? static_cast<uint64_t>(r->st_size) : 0;
}

Status Vfs::WalkTree(Ino top, const std::function<Status(const Attr&)>& visit) {
  std::vector<Ino> dirs = {top};
  auto a = meta_->GetAttr(top);
  if (!a.ok()) return a.status();
  TEMPFS_RETURN_IF_ERROR(visit(*a));
  while (!dirs.empty()) {
    Ino dir = dirs.back();
    dirs.pop_back();
    auto list = meta_->ReadDir(dir);
    if (!list.ok() && list.err() == ENOENT) continue;  // removed meanwhile
    if (!list.ok()) return list.status();
    for (const DirEntry& e : *list) {
      auto c = meta_->GetAttr(e.ino);
      if (!c.ok() && c.err() == ENOENT) continue;
      if (!c.ok()) return c.status();
      TEMPFS_RETURN_IF_ERROR(visit(*c));
      if (S_ISDIR(c->mode)) dirs.push_back(e.ino);
    }
  }
  return Status::Ok();
}

Status Vfs::CountUsage(Project& p) {
  if (p.counted) return Status::Ok();
  std::unordered_set<Ino> seen;  // hard links count once
  uint64_t usage = 0;
  TEMPFS_RETURN_IF_ERROR(WalkTree(p.root, [&](const Attr& a) {
    if (S_ISREG(a.mode) && seen.insert(a.ino).second) usage += QuotaCharge(MergeData(a, -1).size);
    return Status::Ok();
  }));
  // Files without names that are still open keep their space.
  std::vector<Ino> unlinked;
  {
    std::lock_guard lock(mu_);
    for (const auto& [ino, r] : refs_) {
      if (r.unlinked && !r.uncharged && r.project == p.root && !seen.count(ino)) unlinked.push_back(ino);
    }
  }
  for (Ino ino : unlinked) usage += QuotaCharge(DataSize(ino, -1));
  p.usage = usage;
  p.counted = true;
  return Status::Ok();
}

Status Vfs::WithinQuota(Project& p, Ino ino, int fd, const std::function<Status(uint64_t, uint64_t)>& change) {
  std::lock_guard lock(p.mu);
  TEMPFS_RETURN_IF_ERROR(CountUsage(p));
  uint64_t before = DataSize(ino, fd);
  uint64_t room = p.capacity > p.usage ? p.capacity - p.usage : 0;
  Status st = change(before, QuotaLimit(before, room));
  uint64_t after = DataSize(ino, fd);
  p.Resize(before, after);
  return st;
}

Result<size_t> Vfs::Write(FileHandle* h, uint64_t off, std::string_view data) {
  size_t done = 0;
  auto write = [&](uint64_t size, uint64_t limit) -> Status {
    uint64_t at = h->append ? size : off;
    size_t n = data.size();
    if (at + n > limit) n = at < limit ? static_cast<size_t>(limit - at) : 0;
    if (n == 0 && !data.empty()) return Status::Err(ENOSPC, "capacity of the volume");
    // All of it or an errno: the kernel's writeback takes a short count as
    // done and drops the rest. A full store is ENOSPC, never a short count.
    TEMPFS_RETURN_IF_ERROR(WriteFully(store_->env(), h->fd, data.substr(0, n), static_cast<off_t>(off)));
    done = n;
    // Without the writeback cache the kernel hands a short count to the
    // application, which writes the rest (and gets ENOSPC); with it, the part
    // beyond the capacity must be refused here.
    if (n < data.size() && options_.writeback_cache) return Status::Err(ENOSPC, "capacity of the volume");
    return Status::Ok();
  };
  Status st = h->quota ? WithinQuota(*h->quota, h->ino, h->fd, write) : write(0, UINT64_MAX);
  if (!st.ok()) return st;
  return done;
}

Status Vfs::Fallocate(FileHandle* h, int mode, uint64_t off, uint64_t len) {
  auto allocate = [&](uint64_t size, uint64_t limit) -> Status {
    // Modes that only free or move space within the file never need room.
    bool grows = !(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE));
    uint64_t end = (mode & FALLOC_FL_INSERT_RANGE) ? size + len : off + len;
    if (grows && end > limit) return Status::Err(ENOSPC, "capacity of the volume");
    // Space kept past the end of the file is not in its size, which is what
    // the volume's usage counts: refused under a limit.
    if (h->quota && grows && (mode & FALLOC_FL_KEEP_SIZE) && off + len > size) {
      return Status::Err(EOPNOTSUPP, "FALLOC_FL_KEEP_SIZE past the end of a file under a capacity limit");
    }
    if (store_->env()->Fallocate(h->fd, mode, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
      return Status::FromErrno();
    }
    return Status::Ok();
  };
  return h->quota ? WithinQuota(*h->quota, h->ino, h->fd, allocate) : allocate(0, UINT64_MAX);
}

Status Vfs::MakeQuotaRoot(Ino ino, uint64_t capacity) {
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  if (!S_ISDIR(a->mode)) return Status::Err(ENOTDIR, "only directories carry a capacity");
  if (a->project != 0 && a->project != ino) return Status::Err(EBUSY, "inside another quota root");
  if (a->project == 0) {
    // Checked whole first, then tagged top down: what is created meanwhile
    // in a tagged directory inherits the project.
    TEMPFS_RETURN_IF_ERROR(WalkTree(ino, [&](const Attr& c) {
      return c.project == 0 ? Status::Ok() : Status::Err(EBUSY, "contains another quota root");
    }));
    SetAttrRequest req;
    req.valid = SetAttrRequest::kProject;
    req.project = ino;
    TEMPFS_RETURN_IF_ERROR(WalkTree(ino, [&](const Attr& c) -> Status {
      if (c.project == ino) return Status::Ok();
      auto r = meta_->SetAttr(c.ino, req);
      if (!r.ok() && r.err() != ENOENT) return r.status();
      std::lock_guard lock(mu_);
      if (auto it = refs_.find(c.ino); it != refs_.end()) it->second.project = ino;
      return Status::Ok();
    }));
  }
  TEMPFS_RETURN_IF_ERROR(meta_->SetXattr(ino, kCapacityXattr, std::to_string(capacity), 0));
  std::shared_ptr<Project> p;
  {
    std::lock_guard lock(quota_mu_);
    auto& slot = projects_[ino];
    if (!slot) slot = ProjectObjectLocked(ino);
    p = slot;
  }
  std::lock_guard lock(p->mu);
  p->capacity = capacity;
  TLOG_INFO("quota root %llu: capacity %llu bytes", static_cast<unsigned long long>(ino),
            static_cast<unsigned long long>(capacity));
  return Status::Ok();
}

Status Vfs::LimitStatFs(Ino ino, struct statvfs* sv) {
  auto a = meta_->GetAttr(ino);
  if (!a.ok()) return a.status();
  auto p = QuotaOf(a->project);
  if (!p) return Status::Ok();
  std::lock_guard lock(p->mu);
  TEMPFS_RETURN_IF_ERROR(CountUsage(*p));
  uint64_t unit = sv->f_frsize != 0 ? sv->f_frsize : sv->f_bsize;
  if (unit == 0) return Status::Ok();
  uint64_t room = p->capacity > p->usage ? p->capacity - p->usage : 0;
  sv->f_blocks = p->capacity / unit;
  sv->f_bfree = std::min<uint64_t>(sv->f_bfree, room / unit);
  sv->f_bavail = std::min<uint64_t>(sv->f_bavail, room / unit);
  return Status::Ok();
}

Result<uint64_t> Vfs::QuotaUsage(Ino root) {
  auto p = QuotaOf(root);
  if (!p) return Status::Err(ENODATA, "no capacity");
  std::lock_guard lock(p->mu);
  TEMPFS_RETURN_IF_ERROR(CountUsage(*p));
  return p->usage;
}

void Vfs::RecountQuotas() {
  std::vector<std::shared_ptr<Project>> all;
  {
    std::lock_guard lock(quota_mu_);
    for (auto it = projects_.begin(); it != projects_.end();) {
      if (it->second) all.push_back(it->second);
      // Roots without a limit are looked up again: another node may set one.
      it = it->second ? std::next(it) : projects_.erase(it);
    }
  }
  for (auto& p : all) {
    auto value = meta_->GetXattr(p->root, kCapacityXattr);
    auto capacity = value.ok() ? ParseCapacity(*value) : Result<uint64_t>(value.status());
    if (!capacity.ok()) {
      // Limit lifted (or root gone) elsewhere: open files keep the old one.
      std::lock_guard lock(quota_mu_);
      if (auto it = projects_.find(p->root); it != projects_.end() && it->second == p) LiftProjectLocked(p->root);
      continue;
    }
    std::lock_guard lock(p->mu);
    p->capacity = *capacity;
    p->counted = false;
  }
}

}  // namespace tempfs
