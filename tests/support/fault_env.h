// FaultEnv: an Env that breaks on command, for deterministic fault tests of
// everything that keeps durable state through an Env (the journal, the
// snapshot, the data store).
//
// Faults apply to files whose path contains the filter given to each call
// (empty: every file). They are:
//   FailWrite(n, err):  the n-th write from now (1-based) fails with err;
//   ShortWrites(max):   every write stores at most `max` bytes (a legal short
//                       write, which callers must continue);
//   NoSpaceAfter(b):    writes and fallocate fail with ENOSPC once files grew
//                       by `b` more bytes (a disk that fills); rewriting bytes
//                       below a file's size (written or fallocated) needs no
//                       room, as on a real disk (holes count as allocated);
//                       space freed by truncation is not given back (on a
//                       shared disk, other writers take it at once);
//   CorruptWrite(n, i): the n-th write from now has byte i of its buffer
//                       flipped on its way to the file;
//   FailRename(err):    renames whose source matches fail with err (until
//                       Reset), as a crash between two renames would leave it;
//   DropUnsynced():     every file written through this Env since its last
//                       fsync/fdatasync is cut back to its synced length, as a
//                       power loss would (leveldb's FaultInjectionTestEnv).
// Counters and faults are reset by Reset().
//
// Thread safety: all calls may be made concurrently.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "store/env.h"

namespace tempfs::testing {

class FaultEnv final : public EnvWrapper {
 public:
  FaultEnv() : EnvWrapper(Env::Default()) {}

  void FailWrite(int nth, int err, std::string filter = {});
  void ShortWrites(size_t max, std::string filter = {});
  void NoSpaceAfter(uint64_t bytes, std::string filter = {});
  void CorruptWrite(int nth, size_t index, std::string filter = {});
  void FailRename(int err, std::string filter = {});
  // Returns the number of files cut back.
  int DropUnsynced();
  void Reset();
  // Writes that reached a matching file since the last Reset (for assertions).
  int writes() const { return writes_.load(); }

  int OpenAt(int dirfd, const char* path, int flags, mode_t mode) override;
  ssize_t PWrite(int fd, const void* buf, size_t n, off_t off) override;
  int Fallocate(int fd, int mode, off_t off, off_t len) override;
  int Fsync(int fd) override;
  int Fdatasync(int fd) override;
  int RenameAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) override;

 private:
  struct Fault {
    bool on = false;
    std::string filter;
    bool Matches(const std::string& path) const {
      return on && (filter.empty() || path.find(filter) != std::string::npos);
    }
  };
  // Path of an open descriptor (what /proc says it is now).
  static std::string PathOf(int fd);
  void NoteSynced(int fd);

  std::mutex mu_;
  Fault fail_, short_, nospace_, corrupt_;  // guarded by mu_
  int fail_at_ = 0, fail_err_ = 0, corrupt_at_ = 0;
  size_t short_max_ = 0, corrupt_index_ = 0;
  uint64_t nospace_left_ = 0;
  int seen_fail_ = 0, seen_corrupt_ = 0;
  // Synced length of each file written since its last sync, by path.
  std::map<std::string, off_t> unsynced_;  // guarded by mu_
  std::atomic<int> writes_{0};
  Fault rename_;  // guarded by mu_
  int rename_err_ = 0;
};

}  // namespace tempfs::testing
