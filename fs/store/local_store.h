// LocalStore: the node-local directory that holds tempfs file data.
//
// Layout of a store directory:
//   tempfs.lock   flock()ed by the daemon serving the store; holds its pid
//   meta/         the embedded metadata engine's snapshot and journal
//   data/XX/INO   one backing file per regular-file inode (XX: low byte of INO)
//
// Backing paths are derived from inode numbers only, never from names a
// client sent, so no request can reach outside the store.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "meta/types.h"
#include "store/env.h"

namespace tempfs {

class LocalStore {
 public:
  // Opens the store at `root` (which must exist), creating its folders. Data
  // files are reached through `env`, which must outlive the store.
  static Result<std::unique_ptr<LocalStore>> Open(const std::string& root, Env* env = Env::Default());
  ~LocalStore();

  const std::string& root() const { return root_; }
  // What reads and writes of data files go through (the fallback data path).
  Env* env() const { return env_; }
  // Relative to the data folder, e.g. "2a/000000000000012a".
  static std::string DataName(Ino ino);

  // Creates the backing file of `ino` afresh (a file of that number already
  // there is removed first): a new inode never sees bytes it did not write.
  Status CreateData(Ino ino);
  // Opens the backing file; `flags` as for open(2). A missing file is ENOENT
  // unless `flags` has O_CREAT: only the caller knows from the record whether
  // "missing" means "empty" or "lost" (see Vfs::OpenLocalData).
  Result<int> OpenData(Ino ino, int flags);
  Status RemoveData(Ino ino);
  Result<struct stat> StatData(Ino ino);
  Status SetDataTimes(Ino ino, const struct timespec times[2]);
  Result<struct statvfs> StatFs();

  // Cluster mode. A copy of remote content is written to "INO.part" and
  // renamed over the data file when complete. The version of the content a
  // data file holds is kept in its xattr trusted.tempfs.version (0: none).
  // Inode numbers of every data file.
  Result<std::vector<Ino>> ListData();
  Result<int> CreatePart(Ino ino);
  Result<int> OpenPart(Ino ino, int flags);
  Status CommitPart(Ino ino, uint64_t version);
  Status RemovePart(Ino ino);
  Result<uint64_t> LocalVersion(Ino ino);
  Status SetLocalVersion(Ino ino, uint64_t version);

 private:
  LocalStore(std::string root, int data_fd, Env* env) : root_(std::move(root)), data_fd_(data_fd), env_(env) {}
  std::string root_;
  int data_fd_;
  Env* env_;
};

// Holds the store's lock file; a second daemon on the same store is refused.
class StoreLock {
 public:
  // Fails with EBUSY and a message naming the holder's pid if taken.
  static Result<std::unique_ptr<StoreLock>> Acquire(const std::string& store);
  // True if a live process holds the lock of `store`; `pid` gets its pid.
  static bool IsHeld(const std::string& store, pid_t* pid);
  ~StoreLock();

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace tempfs
