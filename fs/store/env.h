// Env: the file-system calls behind tempfs's durable state (the embedded
// engine's snapshot and journal, the data store), gathered behind one
// interface so that tests can give them the faults real disks give: a write
// that fails, a short write, a full disk, corrupted bytes, data lost because
// it was never synced. leveldb's Env is the model.
//
// Every call behaves as the system call it is named after: -1 with errno set
// on failure, so call sites read like the syscalls they replace. Default() is
// the real thing; EnvWrapper forwards every call to another Env and a test
// overrides just the calls it wants to break (tests/support/fault_env.h).
//
// Thread safety: every call may be made concurrently.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace tempfs {

class Env {
 public:
  virtual ~Env() = default;
  // The process-wide real Env; never deleted.
  static Env* Default();

  virtual int OpenAt(int dirfd, const char* path, int flags, mode_t mode = 0) = 0;
  virtual ssize_t PRead(int fd, void* buf, size_t n, off_t off) = 0;
  virtual ssize_t PWrite(int fd, const void* buf, size_t n, off_t off) = 0;
  virtual int Fallocate(int fd, int mode, off_t off, off_t len) = 0;
  virtual int Ftruncate(int fd, off_t len) = 0;
  virtual int Fsync(int fd) = 0;
  virtual int Fdatasync(int fd) = 0;
  virtual int Close(int fd) = 0;
  virtual int RenameAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) = 0;
  virtual int UnlinkAt(int dirfd, const char* path, int flags) = 0;

  int Open(const std::string& path, int flags, mode_t mode = 0);
  int Rename(const std::string& from, const std::string& to);
  int Unlink(const std::string& path);
};

// Forwards every call to `target`, which must outlive the wrapper.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }

  int OpenAt(int dirfd, const char* path, int flags, mode_t mode) override {
    return target_->OpenAt(dirfd, path, flags, mode);
  }
  ssize_t PRead(int fd, void* buf, size_t n, off_t off) override { return target_->PRead(fd, buf, n, off); }
  ssize_t PWrite(int fd, const void* buf, size_t n, off_t off) override {
    return target_->PWrite(fd, buf, n, off);
  }
  int Fallocate(int fd, int mode, off_t off, off_t len) override { return target_->Fallocate(fd, mode, off, len); }
  int Ftruncate(int fd, off_t len) override { return target_->Ftruncate(fd, len); }
  int Fsync(int fd) override { return target_->Fsync(fd); }
  int Fdatasync(int fd) override { return target_->Fdatasync(fd); }
  int Close(int fd) override { return target_->Close(fd); }
  int RenameAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) override {
    return target_->RenameAt(olddirfd, oldpath, newdirfd, newpath);
  }
  int UnlinkAt(int dirfd, const char* path, int flags) override { return target_->UnlinkAt(dirfd, path, flags); }

 private:
  Env* target_;
};

// Writes all of `data` at `off`. A short write is not an error: the rest is
// written by the next call; a call that stores nothing at all is ENOSPC,
// since that is what a file system out of room does.
Status WriteFully(Env* env, int fd, std::string_view data, off_t off);
// Reads `path` whole. A missing file is ENOENT (callers decide what that means).
Result<std::string> ReadWholeFile(Env* env, const std::string& path);
// fsyncs directory `dir`, so that renames and creations in it are durable;
// best effort (a file system that cannot sync a directory is left alone).
void SyncDir(Env* env, const std::string& dir);
// Makes a new directory (mode 0700) named `base`, or `base.1`, `base.2`, ...
// up to `base.<max_suffix>` when those exist; returns the name it made.
Result<std::string> MakeFreshDir(const std::string& base, int max_suffix);

}  // namespace tempfs
