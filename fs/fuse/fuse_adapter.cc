#include "fuse/fuse_adapter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iterator>
#include <string_view>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/log.h"

namespace tempfs {
namespace {

FuseAdapter& A(fuse_req_t req) { return *static_cast<FuseAdapter*>(fuse_req_userdata(req)); }
Vfs& V(fuse_req_t req) { return A(req).vfs(); }

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Caller{c->uid, c->gid};
}

struct stat ToStat(const Attr& a) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = a.ino;
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blksize = 4096;
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_atim = timespec{a.atime_ns / 1000000000, a.atime_ns % 1000000000};
  st.st_mtim = timespec{a.mtime_ns / 1000000000, a.mtime_ns % 1000000000};
  st.st_ctim = timespec{a.ctime_ns / 1000000000, a.ctime_ns % 1000000000};
  return st;
}

// Attributes of set-ID files are not cached by the kernel: the daemon may
// drop those bits on an open for write, which the kernel does not see.
double AttrTimeout(fuse_req_t req, const Attr& a) {
  if (S_ISREG(a.mode) && (a.mode & (S_ISUID | S_ISGID))) return 0;
  return A(req).options().attr_timeout;
}

fuse_entry_param ToEntry(fuse_req_t req, const Attr& a) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = a.ino;
  e.generation = a.generation;
  e.attr = ToStat(a);
  e.attr_timeout = AttrTimeout(req, a);
  e.entry_timeout = A(req).options().entry_timeout;
  return e;
}

void ReplyStatus(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ok() ? 0 : st.err()); }

void ReplyWrite(fuse_req_t req, const Result<size_t>& n) {
  if (n.ok()) {
    fuse_reply_write(req, *n);
  } else {
    fuse_reply_err(req, n.err());
  }
}

void ReplyEntry(fuse_req_t req, const Result<Attr>& r) {
  if (!r.ok()) {
    fuse_reply_err(req, r.err());
    return;
  }
  fuse_entry_param e = ToEntry(req, *r);
  if (fuse_reply_entry(req, &e) != 0) {
    // The kernel did not take the reference (the caller was interrupted).
    V(req).Forget(r->ino, 1);
  }
}

void ReplyAttr(fuse_req_t req, const Result<Attr>& r) {
  if (!r.ok()) {
    fuse_reply_err(req, r.err());
    return;
  }
  struct stat st = ToStat(*r);
  fuse_reply_attr(req, &st, AttrTimeout(req, *r));
}

std::string_view Sv(const char* s) { return s == nullptr ? std::string_view() : std::string_view(s); }

// Kernel passthrough: one backing id per inode, shared by its open files and
// released with the last of them.
class BackingIds {
 public:
  // `fd` is the open file's own descriptor of its local copy.
  int Acquire(fuse_req_t req, Ino ino, int fd) {
#ifdef FUSE_CAP_PASSTHROUGH
    struct stat st;
    if (fstat(fd, &st) != 0) return 0;
    std::lock_guard lock(mu_);
    auto it = ids_.find(ino);
    if (it != ids_.end()) {
      // The kernel takes one backing file per inode: an open of a newer local
      // copy (cluster mode) is served by the daemon until the old one closes.
      if (it->second.backing_ino != st.st_ino) return 0;
      it->second.refs++;
      return it->second.id;
    }
    // Registered read-write so that every later open of the inode, whatever
    // its mode, can use the same backing file; the kernel checks the
    // caller's own access mode on the FUSE file.
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    int rw = open(self.c_str(), O_RDWR | O_CLOEXEC);
    if (rw < 0) return 0;
    int id = fuse_passthrough_open(req, rw);
    close(rw);
    if (id <= 0) return 0;
    ids_[ino] = Entry{id, 1, st.st_ino};
    return id;
#else
    return 0;
#endif
  }
  void Release(fuse_req_t req, Ino ino) {
#ifdef FUSE_CAP_PASSTHROUGH
    std::lock_guard lock(mu_);
    auto it = ids_.find(ino);
    if (it == ids_.end() || --it->second.refs > 0) return;
    fuse_passthrough_close(req, it->second.id);
    ids_.erase(it);
#endif
  }

 private:
  struct Entry {
    int id;
    int refs;
    ino_t backing_ino;
  };
  std::mutex mu_;
  std::unordered_map<Ino, Entry> ids_;
};

BackingIds g_backing;

// Directory handles hold a listing taken at offset 0, so that entries that
// stay in the directory are returned exactly once while it changes.
struct DirHandle {
  std::mutex mu;
  std::vector<DirEntry> entries;  // "." and ".." first
};

FileHandle* H(const fuse_file_info* fi) { return reinterpret_cast<FileHandle*>(fi->fh); }

void FillOpen(fuse_req_t req, Ino ino, fuse_file_info* fi, FileHandle* h) {
  fi->fh = reinterpret_cast<uint64_t>(h);
  FuseAdapter& a = A(req);
  // close(2) needs the daemon only where a written file becomes a new
  // cluster version; elsewhere skip the FLUSH round trip (the kernel still
  // flushes when it caches writes).
  fi->noflush = !(a.vfs().clustered() && h->writable);
  if (!h->keep_cache) a.InvalidateAttributes(ino);
  if (a.passthrough_active() && h->passthrough_ok) {
    int id = g_backing.Acquire(req, ino, h->fd);
    if (id > 0) {
#ifdef FUSE_CAP_PASSTHROUGH
      fi->backing_id = id;
#endif
      h->uses_backing = true;
      fi->keep_cache = 0;
      return;
    }
  }
  fi->keep_cache = h->keep_cache;
  // A file of a volume with a capacity: every write must reach the daemon
  // now, not from the page cache later (mmap still works, see OpInit).
  if (h->quota) fi->direct_io = 1;
  // Content still arriving from another node: serve it without filling this
  // mount's page cache with a second copy (the store's filesystem caches the
  // local copy already). On our VMs, memory touched for the first time is
  // expensive: the double copy made a 1 GiB remote read cost 2-5x the CPU.
  if (h->fetch) fi->direct_io = 1;
}

#define GUARD_BEGIN try {
#define GUARD_END                                         \
  }                                                       \
  catch (const std::exception& e) {                       \
    TLOG_ERROR("%s: %s", __func__, e.what());             \
    fuse_reply_err(req, EIO);                             \
  }

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* a = static_cast<FuseAdapter*>(userdata);
  std::string mode;
  bool passthrough = false;
#ifdef FUSE_CAP_PASSTHROUGH
  if (!a->options().passthrough) {
    mode = "fallback (passthrough turned off by option)";
  } else if (!(conn->capable & FUSE_CAP_PASSTHROUGH)) {
    mode = "fallback (kernel offers no passthrough: needs Linux >= 6.9 and CAP_SYS_ADMIN)";
  } else {
    conn->want |= FUSE_CAP_PASSTHROUGH;
    passthrough = true;
    mode = "passthrough";
  }
#else
  mode = "fallback (libfuse " + std::to_string(FUSE_MAJOR_VERSION) + "." +
         std::to_string(FUSE_MINOR_VERSION) + " has no passthrough: needs >= 3.17)";
#endif
  a->set_passthrough_active(passthrough);
  // libfuse's own passthrough example keeps the writeback cache off with
  // passthrough: writes go to the backing file directly anyway.
  bool writeback = !passthrough && a->options().writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE);
  if (writeback) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  a->vfs().set_writeback_cache(writeback);
  // With KILLPRIV_V2 the kernel trusts us with set-ID bits and stops asking
  // for security.capability before every write (it marks inodes S_NOSEC).
  if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV_V2) conn->want |= FUSE_CAP_HANDLE_KILLPRIV_V2;
  // open_by_handle_at of an inode the kernel no longer caches (or of a
  // handle made before a restart): the kernel looks up "." and ".." by inode
  // number and compares the generation itself (ESTALE on a mismatch).
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_READ) conn->want |= FUSE_CAP_SPLICE_READ;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
  // mmap keeps working on files opened with direct I/O (see FillOpen).
  if (conn->capable & FUSE_CAP_DIRECT_IO_ALLOW_MMAP) conn->want |= FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
#endif
  conn->want |= FUSE_CAP_ASYNC_READ | FUSE_CAP_ATOMIC_O_TRUNC;
  if (a->vfs().clustered()) {
    // Other nodes change files behind this kernel's back: let it compare
    // size and mtime when it refreshes attributes.
    conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  } else {
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_AUTO_INVAL_DATA);  // nothing changes behind the kernel
  }
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  if (writeback) mode += ", writeback cache";
  TLOG_INFO("serving in %s mode", mode.c_str());
  if (a->options().on_ready) a->options().on_ready(mode);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  GUARD_BEGIN
  auto r = V(req).Lookup(parent, Sv(name));
  if (!r.ok() && r.err() == ENOENT && A(req).options().negative_timeout > 0) {
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);
    e.entry_timeout = A(req).options().negative_timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  ReplyEntry(req, r);
  GUARD_END
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  V(req).Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; i++) V(req).Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  GUARD_BEGIN
  ReplyAttr(req, V(req).GetAttr(ino));
  GUARD_END
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  GUARD_BEGIN
  SetAttrRequest s;
  int64_t now = NowNs();
  auto ns = [](const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
  if (to_set & FUSE_SET_ATTR_MODE) { s.valid |= SetAttrRequest::kMode; s.mode = attr->st_mode; }
  if (to_set & FUSE_SET_ATTR_UID) { s.valid |= SetAttrRequest::kUid; s.uid = attr->st_uid; }
  if (to_set & FUSE_SET_ATTR_GID) { s.valid |= SetAttrRequest::kGid; s.gid = attr->st_gid; }
  if (to_set & FUSE_SET_ATTR_SIZE) { s.valid |= SetAttrRequest::kSize; s.size = attr->st_size; }
  if (to_set & FUSE_SET_ATTR_ATIME) { s.valid |= SetAttrRequest::kAtime; s.atime_ns = ns(attr->st_atim); }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) { s.valid |= SetAttrRequest::kAtime; s.atime_ns = now; }
  if (to_set & FUSE_SET_ATTR_MTIME) { s.valid |= SetAttrRequest::kMtime; s.mtime_ns = ns(attr->st_mtim); }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) { s.valid |= SetAttrRequest::kMtime; s.mtime_ns = now; }
  if (to_set & FUSE_SET_ATTR_CTIME) { s.valid |= SetAttrRequest::kCtime; s.ctime_ns = ns(attr->st_ctim); }
  int fd = fi != nullptr ? H(fi)->fd : -1;
  bool kill_suid = (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID)) != 0;
  ReplyAttr(req, V(req).SetAttr(ino, s, fd, kill_suid));
  GUARD_END
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  GUARD_BEGIN
  auto r = V(req).ReadLink(ino);
  if (!r.ok()) fuse_reply_err(req, r.err());
  else fuse_reply_readlink(req, r->c_str());
  GUARD_END
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  GUARD_BEGIN
  ReplyEntry(req, V(req).MakeNode(CallerOf(req), parent, Sv(name), mode, rdev));
  GUARD_END
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  GUARD_BEGIN
  ReplyEntry(req, V(req).MakeNode(CallerOf(req), parent, Sv(name), S_IFDIR | (mode & 07777), 0));
  GUARD_END
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  GUARD_BEGIN
  ReplyEntry(req, V(req).MakeNode(CallerOf(req), parent, Sv(name), S_IFLNK | 0777, 0, Sv(link)));
  GUARD_END
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  GUARD_BEGIN
  ReplyEntry(req, V(req).Link(ino, newparent, Sv(newname)));
  GUARD_END
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  GUARD_BEGIN
  ReplyStatus(req, V(req).Unlink(parent, Sv(name)));
  GUARD_END
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  GUARD_BEGIN
  ReplyStatus(req, V(req).Rmdir(parent, Sv(name)));
  GUARD_END
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  GUARD_BEGIN
  ReplyStatus(req, V(req).Rename(parent, Sv(name), newparent, Sv(newname), flags));
  GUARD_END
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  GUARD_BEGIN
  auto r = V(req).Create(CallerOf(req), parent, Sv(name), mode, fi->flags);
  if (!r.ok()) {
    fuse_reply_err(req, r.err());
    return;
  }
  FillOpen(req, r->attr.ino, fi, r->handle);
  fuse_entry_param e = ToEntry(req, r->attr);
  if (fuse_reply_create(req, &e, fi) != 0) {
    if (r->handle->uses_backing) g_backing.Release(req, r->attr.ino);
    V(req).Release(r->handle);
    V(req).Forget(r->attr.ino, 1);
  }
  GUARD_END
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  GUARD_BEGIN
  auto h = V(req).Open(CallerOf(req), ino, fi->flags);
  if (!h.ok()) {
    fuse_reply_err(req, h.err());
    return;
  }
  FillOpen(req, ino, fi, *h);
  if (fuse_reply_open(req, fi) != 0) {
    if ((*h)->uses_backing) g_backing.Release(req, ino);
    V(req).Release(*h);
  }
  GUARD_END
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  FileHandle* h = H(fi);
  // Content still arriving from its owner: wait for the bytes asked for.
  Status st = V(req).WaitReadable(h, static_cast<uint64_t>(off), size);
  if (!st.ok()) {
    TLOG_WARN("read of inode %llu: %s", static_cast<unsigned long long>(ino), st.ToString().c_str());
    fuse_reply_err(req, EIO);
    return;
  }
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = h->fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

// Every write goes through the Vfs, which stores all of it or reports an
// errno: replying a short count (what fuse_buf_copy gives when the store
// fills) would make the kernel's writeback drop the rest in silence.
void OpWriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  GUARD_BEGIN
  const fuse_buf& first = in->buf[0];
  if (in->count == 1 && in->idx == 0 && in->off == 0 && !(first.flags & FUSE_BUF_IS_FD)) {
    ReplyWrite(req, V(req).Write(H(fi), static_cast<uint64_t>(off),
                                 std::string_view(static_cast<const char*>(first.mem), first.size)));
    return;
  }
  // Spliced from the kernel: copied to memory first.
  std::vector<char> data(fuse_buf_size(in));
  fuse_bufvec mem = FUSE_BUFVEC_INIT(data.size());
  mem.buf[0].mem = data.data();
  ssize_t got = fuse_buf_copy(&mem, in, static_cast<fuse_buf_copy_flags>(0));
  if (got < 0 || static_cast<size_t>(got) != data.size()) {
    fuse_reply_err(req, got < 0 ? static_cast<int>(-got) : EIO);
    return;
  }
  ReplyWrite(req,
             V(req).Write(H(fi), static_cast<uint64_t>(off), std::string_view(data.data(), static_cast<size_t>(got))));
  GUARD_END
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  GUARD_BEGIN
  // Writes reach the local file as they come; in cluster mode close() is
  // where a written file becomes a new version for the other nodes.
  ReplyStatus(req, V(req).Flush(H(fi)));
  GUARD_END
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // The kernel drops its reference to the backing file when the last open
  // that uses it goes; a missed release would pin deleted files' space.
  if (H(fi)->uses_backing) g_backing.Release(req, ino);
  V(req).Release(H(fi));
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  GUARD_BEGIN
  ReplyStatus(req, V(req).Fsync(H(fi), datasync != 0));
  GUARD_END
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  GUARD_BEGIN
  auto a = V(req).GetAttr(ino);
  if (!a.ok()) {
    fuse_reply_err(req, a.err());
    return;
  }
  if (!S_ISDIR(a->mode)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  auto* h = new DirHandle();
  fi->fh = reinterpret_cast<uint64_t>(h);
  if (fuse_reply_open(req, fi) != 0) delete h;
  GUARD_END
}

// Shared by readdir and readdirplus.
void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  GUARD_BEGIN
  auto* h = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buf(size);
  size_t used = 0;
  // The reply is sent only after the handle is unlocked: once the kernel has
  // it, a releasedir may free the handle at once.
  std::unique_lock lock(h->mu);
  if (off == 0 || h->entries.empty()) {
    auto list = V(req).ReadDir(ino);
    if (!list.ok()) {
      lock.unlock();
      fuse_reply_err(req, list.err());
      return;
    }
    h->entries.clear();
    h->entries.push_back(DirEntry{".", ino, S_IFDIR});
    // readdir(3) hides entries with d_ino 0; the kernel resolves ".." itself.
    h->entries.push_back(DirEntry{"..", kRootIno, S_IFDIR});
    for (auto& e : *list) h->entries.push_back(std::move(e));
  }
  for (size_t i = static_cast<size_t>(off); i < h->entries.size(); i++) {
    const DirEntry& de = h->entries[i];
    size_t n;
    if (plus && i >= 2) {
      auto a = V(req).Lookup(ino, de.name);
      if (!a.ok()) continue;  // gone since the listing was taken
      fuse_entry_param e = ToEntry(req, *a);
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, de.name.c_str(), &e, i + 1);
      if (n > size - used) {
        V(req).Forget(a->ino, 1);
        break;
      }
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof st);
      st.st_ino = de.ino;
      st.st_mode = de.mode;
      if (plus) {
        // "." and "..": the kernel takes no reference for these.
        fuse_entry_param e;
        std::memset(&e, 0, sizeof e);
        e.attr = st;
        n = fuse_add_direntry_plus(req, buf.data() + used, size - used, de.name.c_str(), &e, i + 1);
      } else {
        n = fuse_add_direntry(req, buf.data() + used, size - used, de.name.c_str(), &st, i + 1);
      }
      if (n > size - used) break;
    }
    used += n;
  }
  lock.unlock();
  fuse_reply_buf(req, buf.data(), used);
  GUARD_END
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDir(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDir(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  ReplyStatus(req, V(req).meta().Sync());
}

void OpStatfs(fuse_req_t req, fuse_ino_t ino) {
  // `ino` is the inode statfs(2) was called on (in a pod: its volume).
  auto r = V(req).StatFs(ino);
  if (!r.ok()) fuse_reply_err(req, r.err());
  else fuse_reply_statfs(req, &*r);
}

bool XattrNameAllowed(std::string_view name) {
  // POSIX ACLs (system.*) are not supported: the kernel enforces mode bits.
  return name.substr(0, 5) == "user." || name.substr(0, 8) == "trusted." || name.substr(0, 9) == "security.";
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  GUARD_BEGIN
  if (!XattrNameAllowed(Sv(name))) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  ReplyStatus(req, V(req).SetXattr(ino, Sv(name), std::string_view(value, size), flags));
  GUARD_END
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  GUARD_BEGIN
  if (!XattrNameAllowed(Sv(name))) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  auto r = V(req).GetXattr(ino, Sv(name));
  if (!r.ok()) fuse_reply_err(req, r.err());
  else if (size == 0) fuse_reply_xattr(req, r->size());
  else if (r->size() > size) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, r->data(), r->size());
  GUARD_END
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  GUARD_BEGIN
  auto r = V(req).ListXattr(ino);
  if (!r.ok()) {
    fuse_reply_err(req, r.err());
    return;
  }
  std::string all;
  for (auto& n : *r) {
    all += n;
    all.push_back('\0');
  }
  if (size == 0) fuse_reply_xattr(req, all.size());
  else if (all.size() > size) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, all.data(), all.size());
  GUARD_END
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  GUARD_BEGIN
  if (!XattrNameAllowed(Sv(name))) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  ReplyStatus(req, V(req).RemoveXattr(ino, Sv(name)));
  GUARD_END
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  GUARD_BEGIN
  if (offset < 0 || length <= 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  ReplyStatus(req, V(req).Fallocate(H(fi), mode, static_cast<uint64_t>(offset), static_cast<uint64_t>(length)));
  GUARD_END
}

void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  off_t r = lseek(H(fi)->fd, off, whence);
  if (r < 0) fuse_reply_err(req, errno);
  else fuse_reply_lseek(req, r);
}

// Operation names, as the latency metric labels them.
constexpr const char* kOpNames[] = {
    "lookup", "forget", "forget_multi", "getattr", "setattr", "readlink", "mknod", "mkdir",
    "symlink", "link", "unlink", "rmdir", "rename", "create", "open", "read", "write_buf", "flush",
    "release", "fsync", "opendir", "readdir", "readdirplus", "releasedir", "fsyncdir", "statfs",
    "setxattr", "getxattr", "listxattr", "removexattr", "fallocate", "lseek"};

constexpr size_t OpIndex(std::string_view name) {
  for (size_t i = 0; i < std::size(kOpNames); i++) {
    if (name == kOpNames[i]) return i;
  }
  throw "unknown operation";  // a compile-time error where used in a constant expression
}

// Runs an operation, timing it when metrics are on. The adapter is taken
// before the call: the reply frees the request.
template <size_t Op, auto Fn, typename F = decltype(Fn)>
struct Timed;
template <size_t Op, auto Fn, typename... Args>
struct Timed<Op, Fn, void (*)(fuse_req_t, Args...)> {
  static void Call(fuse_req_t req, Args... args) {
    Histogram* h = A(req).op_latency(Op);
    if (h == nullptr) return Fn(req, args...);
    auto t0 = std::chrono::steady_clock::now();
    Fn(req, args...);
    h->Observe(std::chrono::steady_clock::now() - t0);
  }
};

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = OpInit;
  ops.lookup = Timed<OpIndex("lookup"), OpLookup>::Call;
  ops.forget = Timed<OpIndex("forget"), OpForget>::Call;
  ops.forget_multi = Timed<OpIndex("forget_multi"), OpForgetMulti>::Call;
  ops.getattr = Timed<OpIndex("getattr"), OpGetattr>::Call;
  ops.setattr = Timed<OpIndex("setattr"), OpSetattr>::Call;
  ops.readlink = Timed<OpIndex("readlink"), OpReadlink>::Call;
  ops.mknod = Timed<OpIndex("mknod"), OpMknod>::Call;
  ops.mkdir = Timed<OpIndex("mkdir"), OpMkdir>::Call;
  ops.symlink = Timed<OpIndex("symlink"), OpSymlink>::Call;
  ops.link = Timed<OpIndex("link"), OpLink>::Call;
  ops.unlink = Timed<OpIndex("unlink"), OpUnlink>::Call;
  ops.rmdir = Timed<OpIndex("rmdir"), OpRmdir>::Call;
  ops.rename = Timed<OpIndex("rename"), OpRename>::Call;
  ops.create = Timed<OpIndex("create"), OpCreate>::Call;
  ops.open = Timed<OpIndex("open"), OpOpen>::Call;
  ops.read = Timed<OpIndex("read"), OpRead>::Call;
  ops.write_buf = Timed<OpIndex("write_buf"), OpWriteBuf>::Call;
  ops.flush = Timed<OpIndex("flush"), OpFlush>::Call;
  ops.release = Timed<OpIndex("release"), OpRelease>::Call;
  ops.fsync = Timed<OpIndex("fsync"), OpFsync>::Call;
  ops.opendir = Timed<OpIndex("opendir"), OpOpendir>::Call;
  ops.readdir = Timed<OpIndex("readdir"), OpReaddir>::Call;
  ops.readdirplus = Timed<OpIndex("readdirplus"), OpReaddirplus>::Call;
  ops.releasedir = Timed<OpIndex("releasedir"), OpReleasedir>::Call;
  ops.fsyncdir = Timed<OpIndex("fsyncdir"), OpFsyncdir>::Call;
  ops.statfs = Timed<OpIndex("statfs"), OpStatfs>::Call;
  ops.setxattr = Timed<OpIndex("setxattr"), OpSetxattr>::Call;
  ops.getxattr = Timed<OpIndex("getxattr"), OpGetxattr>::Call;
  ops.listxattr = Timed<OpIndex("listxattr"), OpListxattr>::Call;
  ops.removexattr = Timed<OpIndex("removexattr"), OpRemovexattr>::Call;
  ops.fallocate = Timed<OpIndex("fallocate"), OpFallocate>::Call;
  ops.lseek = Timed<OpIndex("lseek"), OpLseek>::Call;
  return ops;
}

}  // namespace

FuseAdapter::FuseAdapter(Vfs& vfs, FuseAdapterOptions options) : vfs_(vfs), options_(std::move(options)) {
  if (options_.metrics == nullptr) return;
  for (const char* name : kOpNames) {
    op_latency_.push_back(&options_.metrics->AddHistogram(
        "tempfs_fuse_op_seconds", "Time the daemon took to serve FUSE requests, by operation", {{"op", name}}));
  }
}

void FuseAdapter::InvalidateAttributes(Ino ino) {
  // Attributes only (offset < 0): safe from inside a request. Pages go
  // because the open does not ask to keep them.
  if (session_ != nullptr) fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
}

const fuse_lowlevel_ops& FuseAdapter::Ops() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return ops;
}

bool LibfuseHasPassthrough() {
#ifdef FUSE_CAP_PASSTHROUGH
  return true;
#else
  return false;
#endif
}

}  // namespace tempfs
