// Vfs: the FUSE-free core of a tempfs node.
//
// It joins the namespace (a MetaEngine) and the file data (a LocalStore) into
// filesystem operations that return the errno a local filesystem would. The
// FUSE adapter is a thin layer over it; tests drive it directly.
//
// Inode lifetime: every operation that hands an inode to the kernel (Lookup,
// MakeNode, Link, Create) counts one kernel reference, released by Forget().
// An inode whose last name is removed stays readable until the kernel has
// forgotten it and every open file of it is released; then its data and its
// record are dropped. A restart drops such orphans left by a previous run.
//
// Thread safety: all methods may be called concurrently. Lock order: the
// inode table lock (mu_) is never held while calling the engine or the store.
// A Project's lock (quota.h) is taken before mu_; quota_mu_ is held alone.
#pragma once

#include <sys/statvfs.h>

#include <atomic>
#include <list>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "meta/meta_engine.h"
#include "store/local_store.h"
#include "vfs/fetch.h"
#include "vfs/quota.h"
#include "vfs/remote.h"

namespace tempfs {

// Who asks: the caller's credentials as the kernel reports them.
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Cluster mode: the node's number, and how to reach the others.
struct ClusterOptions {
  uint32_t self = 0;  // 0: a single node, no cluster
  PeerTransport* transport = nullptr;
  // Bound on waiting for a peer's data after it stops sending.
  std::chrono::milliseconds wait_limit{std::chrono::minutes(10)};
};

struct VfsOptions {
  // The kernel caches writes (FUSE writeback cache): it may read through
  // write-only opens and handles O_APPEND itself.
  bool writeback_cache = false;
  ClusterOptions cluster;
};

// Counters, for logs and the admin view.
struct VfsCounters {
  std::atomic<uint64_t> local_opens{0};
  std::atomic<uint64_t> remote_fetches{0};
  std::atomic<uint64_t> bytes_fetched{0};
  std::atomic<uint64_t> fetch_failures{0};
  std::atomic<uint64_t> checksum_failures{0};  // also counted in fetch_failures
  std::atomic<uint64_t> versions_committed{0};
  std::atomic<uint64_t> write_conflicts{0};
  std::atomic<uint64_t> evictions{0};
};

// Sizes of the in-memory tables, as tempfs-admin shows them: after the files
// are gone they must come back down (hash tables keep their buckets otherwise).
struct VfsTables {
  uint64_t kernel_inodes = 0;         // inodes the kernel or open files refer to
  uint64_t kernel_inode_buckets = 0;  // buckets of that table
  uint64_t cluster_entries = 0;       // cluster mode: per-inode cache and ownership state
  uint64_t meta_inodes = 0;           // inodes of the namespace
  uint64_t meta_buckets = 0;          // buckets of the engine's in-memory index (0: none)
};

// Where one file's data is, as tempfs-admin shows it.
struct FileLocation {
  Attr attr;                 // size and times merged from the local data
  bool owned_here = false;   // this node holds the data (always on a single node)
  bool local_current = false;  // this node's store holds the current version
  bool lost = false;         // owned here, but its data file is gone (opens fail with EIO)
  bool pinned = false;
  bool fetching = false;     // a copy is arriving now
  uint64_t fetched_bytes = 0;
};

// What the store holds: the node's own data and copies of other nodes'.
struct StoreUsage {
  uint64_t own_files = 0, own_bytes = 0;
  uint64_t cached_files = 0, cached_bytes = 0;
  uint64_t pinned_files = 0;
  uint64_t total_bytes = 0, free_bytes = 0;  // of the store's filesystem
};

struct DrainProgress {
  uint64_t files_total = 0, files_done = 0;
  uint64_t bytes_total = 0, bytes_done = 0;
};

// An open regular file.
struct FileHandle {
  Ino ino = 0;
  int fd = -1;  // the local copy (or the copy still arriving)
  bool writable = false;
  // Set while the content is still arriving from its owner.
  std::shared_ptr<Fetch> fetch;
  // The kernel may keep pages it cached of this file (they are current).
  bool keep_cache = true;
  // The kernel may read and write the local file directly.
  bool passthrough_ok = true;
  // Set by the FUSE adapter when the kernel got a passthrough backing id for
  // this open (the release request does not say so itself).
  bool uses_backing = false;
  // What the file looked like when opened, to see whether it was written.
  int64_t opened_mtime_ns = 0;
  uint64_t opened_size = 0;
  bool truncated = false;
  // Opened with O_APPEND (writes land at the end whatever their offset).
  bool append = false;
  // Set for files of a project with a capacity: the kernel must send every
  // write to the daemon (no passthrough, direct I/O), which writes it with
  // Write() and may shorten or refuse it.
  std::shared_ptr<Project> quota;
};

class Vfs {
 public:
  Vfs(std::unique_ptr<MetaEngine> meta, std::unique_ptr<LocalStore> store, VfsOptions options);
  // Waits for fetches still running.
  ~Vfs();

  // Drops the orphans of a previous run and, on a single node (whose engine
  // refuses damage), the data files no inode owns. Call once before serving.
  Status Start();
  // Cluster mode: removes local data of files deleted elsewhere and stale
  // copies of files that changed elsewhere. Returns how many it removed.
  size_t CollectGarbage();

  Result<Attr> Lookup(Ino parent, std::string_view name);
  void Forget(Ino ino, uint64_t count);
  VfsTables Tables();
  Result<Attr> GetAttr(Ino ino);
  // `fd` is an open backing file of `ino`, or -1. `kill_suid` asks to drop
  // set-ID bits (the kernel asks on truncate by an unprivileged caller).
  Result<Attr> SetAttr(Ino ino, const SetAttrRequest& req, int fd, bool kill_suid = false);
  // mknod, mkdir and symlink (`target` for symlinks): `mode` carries the type.
  Result<Attr> MakeNode(const Caller& caller, Ino parent, std::string_view name, uint32_t mode,
                        uint64_t rdev, std::string_view target = {});
  Result<Attr> Link(Ino ino, Ino new_parent, std::string_view new_name);
  Status Unlink(Ino parent, std::string_view name);
  Status Rmdir(Ino parent, std::string_view name);
  Status Rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                unsigned flags);
  Result<std::string> ReadLink(Ino ino);
  Result<std::vector<DirEntry>> ReadDir(Ino ino);

  struct OpenFile {
    Attr attr;
    FileHandle* handle = nullptr;  // owned by the caller until Release()
  };
  Result<OpenFile> Create(const Caller& caller, Ino parent, std::string_view name, uint32_t mode,
                          int flags);
  // Opening for write by a caller without privilege drops the file's
  // set-user-ID and set-group-ID bits, as a write would on a local disk: with
  // kernel passthrough the writes themselves never reach the daemon.
  // In cluster mode, a file whose data is on another node is fetched; the
  // open returns at once for reading (see WaitReadable), after the whole
  // copy for writing.
  Result<FileHandle*> Open(const Caller& caller, Ino ino, int flags);
  // Waits until bytes [off, off+size) of the handle's file are local.
  Status WaitReadable(FileHandle* h, uint64_t off, uint64_t size);
  // close(2): in cluster mode, a written file becomes a new version owned
  // by this node (close-to-open consistency). ESTALE-caused conflicts are
  // reported as EIO.
  Status Flush(FileHandle* h);
  void Release(FileHandle* h);
  Status Fsync(FileHandle* h, bool datasync);
  // Writes through the daemon (the fallback data path): all of `data` is
  // stored, or the write fails with an errno (ENOSPC on a full store), some
  // of it perhaps stored. Within a project's capacity, a write that does not
  // fit is shortened (ENOSPC with the writeback cache, whose kernel side does
  // not retry the rest), one with no room at all fails with ENOSPC.
  Result<size_t> Write(FileHandle* h, uint64_t off, std::string_view data);
  // fallocate(2); growing a file of a limited project beyond its room: ENOSPC.
  Status Fallocate(FileHandle* h, int mode, uint64_t off, uint64_t len);
  // Cluster mode, for peers: the local content of `ino` at `version`, if
  // this node owns it. Returns an open descriptor and the size.
  Result<std::pair<int, uint64_t>> OpenForPeer(Ino ino, uint64_t version);
  const VfsCounters& counters() const { return counters_; }

  // Admin operations (tempfs-admin, through the control socket).
  Result<FileLocation> Locate(Ino ino);
  // Starts copying the current version of a remote file here. Returns the
  // running copy, or nullptr when this node already holds it.
  Result<std::shared_ptr<Fetch>> Prefetch(Ino ino);
  // Drops this node's copy of another node's file; returns the bytes freed
  // (0 if there was no copy). EPERM for data this node owns (the only
  // copy), EBUSY while the file is open or arriving.
  Result<uint64_t> Evict(Ino ino);
  // Pinned copies are never evicted to make room. Kept across restarts.
  Status Pin(Ino ino, bool pinned);
  Result<StoreUsage> Usage();
  // Drain, receiving side: takes over `ino` at `version` from node `from`
  // (copies it, then records this node as the owner). Returns at once;
  // ESTALE if `from` no longer owns that version.
  Status Adopt(Ino ino, uint64_t version, uint32_t from);
  // Drain, giving side: hands every file this node owns to the other live
  // nodes and waits until each has taken over (or was deleted or rewritten
  // elsewhere), until a pass finds nothing this node owns. Fails with
  // ETIMEDOUT after `stall_limit` without a file done or a byte moved
  // (`bytes_moved`, if given, counts bytes served to peers), ECANCELED when
  // `progress` returns false, EAGAIN if writers here keep making new data.
  Status Drain(const std::function<bool(const DrainProgress&)>& progress, std::chrono::milliseconds stall_limit,
               const std::function<uint64_t()>& bytes_moved = {});
  bool clustered() const { return options_.cluster.self != 0; }

  Result<std::string> GetXattr(Ino ino, std::string_view name);
  Result<std::vector<std::string>> ListXattr(Ino ino);
  // Setting kCapacityXattr (see quota.h) makes a directory a quota root and
  // tags its subtree: EINVAL for a malformed value, ENOTDIR for a
  // non-directory, EBUSY inside another root or above one. Removing it lifts
  // the limit; the directory stays a root.
  Status SetXattr(Ino ino, std::string_view name, std::string_view value, int flags);
  Status RemoveXattr(Ino ino, std::string_view name);
  // The store's space, or, for an inode of a limited project, the project's
  // capacity and what is left of it (what `df` shows in a pod).
  Result<struct statvfs> StatFs(Ino ino = kRootIno);
  // Bytes counted against the quota root `root` (ENODATA: no limit there).
  Result<uint64_t> QuotaUsage(Ino root);
  // Counts every limited project again at its next use and rereads its
  // capacity (cluster mode: other nodes change files behind this one).
  void RecountQuotas();

  // Set once, when the kernel's INIT settles whether it caches writes.
  void set_writeback_cache(bool on) { options_.writeback_cache = on; }

  MetaEngine& meta() { return *meta_; }
  LocalStore& store() { return *store_; }

 private:
  struct InodeRefs {
    uint64_t lookups = 0;
    uint32_t opens = 0;
    bool unlinked = false;
    Ino project = 0;  // as last seen: saves a metadata read per open
    // Unlinked and not open: its space no longer counts against its project
    // (the kernel may hold the inode a while longer before forgetting it).
    bool uncharged = false;
  };
  void AddLookup(const Attr& attr);
  // Erases a refs_ entry; returns whether the table shrank (then the caller
  // returns free memory, with no lock held, once the inode is dropped).
  bool EraseRefLocked(std::unordered_map<Ino, InodeRefs>::iterator it);
  // Forgets the cache and ownership state of an inode that is gone.
  void ForgetInodeStateLocked(Ino ino);
  // Called when `attr` lost a name: drops it if nothing refers to it anymore.
  void NameRemoved(const Attr& attr);
  // Requires the entry erased from refs_ already. `project`: its project;
  // `charged`: whether its space still counts there.
  void DropInode(Ino ino, Ino project, bool charged = true);
  // Single node: removes the data files that no inode owns.
  void RemoveStrayData();
  // An unlinked inode that nothing has open: its project gets the space back
  // now, not when the kernel gets round to forgetting the inode.
  void UnchargeIfUnused(Ino ino, Ino project);
  // The limited project `project` (null: none, or no capacity).
  std::shared_ptr<Project> QuotaOf(Ino project);
  // Size of the local data of `ino` (open as `fd`, or -1); 0 if none.
  uint64_t DataSize(Ino ino, int fd);
  // Under the project's lock, with its usage counted: runs `change(size,
  // limit)`, where `limit` is the size the file may grow to, then charges
  // the size the file ends with.
  Status WithinQuota(Project& p, Ino ino, int fd, const std::function<Status(uint64_t, uint64_t)>& change);
  // Requires p.mu held.
  Status CountUsage(Project& p);
  // Visits `top` and everything below it, each directory before it is listed.
  Status WalkTree(Ino top, const std::function<Status(const Attr&)>& visit);
  Status MakeQuotaRoot(Ino ino, uint64_t capacity);
  // statfs of an inode of a limited project: its capacity and room.
  Status LimitStatFs(Ino ino, struct statvfs* sv);
  // Regular files: size and times come from the backing file.
  Attr MergeData(Attr attr, int fd);
  // Cluster mode: the running fetch of `attr`'s content, started if need be.
  Result<std::shared_ptr<Fetch>> FetchOf(const Attr& attr);
  // FetchOf, waiting (bounded) while a previous version's copy finishes.
  Result<std::shared_ptr<Fetch>> FetchCurrent(const Attr& attr);
  // Cluster mode: another node holds the data of `attr`.
  bool OwnedElsewhere(const Attr& attr) const {
    return clustered() && attr.owner != 0 && attr.owner != options_.cluster.self;
  }
  // Cluster mode: makes the local content of `ino` a new version owned here.
  Status CommitContent(Ino ino);
  // Opens the data file of `ino` (`known`: its record, if the caller has it).
  // A missing one is made, empty, only where that loses nothing: the record
  // says the file is empty, or `flags` has O_TRUNC. Otherwise the data is
  // lost: EIO (see vfs_lost.cc).
  Result<int> OpenLocalData(Ino ino, int flags, const Attr* known);
  // Whether the record says the file holds data.
  bool RecordSaysData(const Attr& a) const;
  // EIO for a file whose data file is gone; logs it once per inode.
  Status LostData(const Attr& a);
  // One node: records the data file's size when the file turned empty or
  // non-empty, so that a lost data file is told from an empty one.
  void RecordSize(Ino ino, uint64_t size);
  // Whether the kernel's cached pages of `ino` are still `version`'s.
  bool KernelCacheCurrent(Ino ino, uint64_t version);
  // Cluster mode: copies of other nodes' files, least recently used first.
  void TouchCached(Ino ino);
  // Drops cached copies (never this node's own data, never open files)
  // until `need` bytes are free in the store, or nothing is left to drop.
  void MakeRoom(uint64_t need);
  // Undoes one open's count (Release, or an Open that failed); drops the
  // inode if that was the last reference to an unlinked one.
  void DropOpenRef(Ino ino);
  // Removes the local data of `ino` unless it is open, arriving, or this
  // node started or finished taking it over since `seen_seq` (its
  // OwnSeqLocked() when the caller checked the owner). Requires mu_ held, so
  // that an Open cannot slip in between the check and the removal.
  Status RemoveUnusedDataLocked(Ino ino, uint64_t seen_seq);
  // Changes of ownership to this node, per inode: odd while one runs.
  uint64_t OwnSeqLocked(Ino ino) const;
  class OwnershipChange {
   public:
    OwnershipChange(Vfs& vfs, Ino ino);
    ~OwnershipChange();

   private:
    Vfs& vfs_;
    Ino ino_;
  };
  // Drain: records this node as the owner of `version` of `ino`.
  Status TakeOver(Ino ino, uint64_t version);
  void SavePins();
  // A root's Project: the one of a lifted limit if files still hold it, else
  // a new one. Requires quota_mu_.
  std::shared_ptr<Project> ProjectObjectLocked(Ino root);
  // Forgets a root's limit, keeping its object for ProjectObjectLocked.
  void LiftProjectLocked(Ino root);
  // One pass of Drain over what this node owns now; `nothing_owned` tells
  // whether it found nothing to hand over.
  Status DrainPass(const std::function<bool(const DrainProgress&)>& progress, std::chrono::milliseconds stall_limit,
                   const std::function<uint64_t()>& bytes_moved, DrainProgress& p, bool* nothing_owned);
  void LoadPins();

  std::unique_ptr<MetaEngine> meta_;
  std::unique_ptr<LocalStore> store_;
  VfsOptions options_;
  std::mutex mu_;
  std::unordered_map<Ino, InodeRefs> refs_;  // guarded by mu_
  std::unordered_map<Ino, std::shared_ptr<Fetch>> fetches_;  // guarded by mu_
  std::unordered_map<Ino, uint64_t> kernel_version_;  // guarded by mu_
  std::list<Ino> lru_;                                 // guarded by mu_
  std::unordered_map<Ino, std::list<Ino>::iterator> lru_pos_;  // guarded by mu_
  std::set<Ino> pinned_;                                        // guarded by mu_
  std::set<Ino> lost_reported_;                                 // guarded by mu_
  std::mutex pins_save_mu_;                                     // taken before mu_, by SavePins
  std::unordered_map<Ino, uint64_t> adopting_;                  // guarded by mu_: ino -> version
  std::unordered_map<Ino, uint64_t> own_seq_;                   // guarded by mu_ (see OwnSeqLocked)
  std::condition_variable fetches_done_;
  std::mutex quota_mu_;  // taken before a Project's own lock, never after
  std::unordered_map<Ino, std::shared_ptr<Project>> projects_;  // guarded by quota_mu_; null: no limit
  // Projects whose limit was lifted, as long as open files still use them.
  std::unordered_map<Ino, std::weak_ptr<Project>> lifted_;  // guarded by quota_mu_
  VfsCounters counters_;
};

// Checks a single path component: ENAMETOOLONG, EINVAL, ...
Status ValidateName(std::string_view name);

}  // namespace tempfs
