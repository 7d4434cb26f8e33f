#include "support/fault_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

namespace tempfs::testing {

std::string FaultEnv::PathOf(int fd) {
  char buf[4096];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

void FaultEnv::FailWrite(int nth, int err, std::string filter) {
  std::lock_guard lock(mu_);
  fail_ = {true, std::move(filter)};
  fail_at_ = nth;
  fail_err_ = err;
  seen_fail_ = 0;
}

void FaultEnv::ShortWrites(size_t max, std::string filter) {
  std::lock_guard lock(mu_);
  short_ = {true, std::move(filter)};
  short_max_ = max;
}

void FaultEnv::NoSpaceAfter(uint64_t bytes, std::string filter) {
  std::lock_guard lock(mu_);
  nospace_ = {true, std::move(filter)};
  nospace_left_ = bytes;
}

void FaultEnv::CorruptWrite(int nth, size_t index, std::string filter) {
  std::lock_guard lock(mu_);
  corrupt_ = {true, std::move(filter)};
  corrupt_at_ = nth;
  corrupt_index_ = index;
  seen_corrupt_ = 0;
}

void FaultEnv::FailRename(int err, std::string filter) {
  std::lock_guard lock(mu_);
  rename_ = {true, std::move(filter)};
  rename_err_ = err;
}

int FaultEnv::RenameAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) {
  {
    std::lock_guard lock(mu_);
    if (rename_.Matches(oldpath)) {
      errno = rename_err_;
      return -1;
    }
  }
  return EnvWrapper::RenameAt(olddirfd, oldpath, newdirfd, newpath);
}

void FaultEnv::Reset() {
  std::lock_guard lock(mu_);
  rename_ = Fault{};
  fail_ = short_ = nospace_ = corrupt_ = Fault{};
  unsynced_.clear();
  writes_ = 0;
}

int FaultEnv::OpenAt(int dirfd, const char* path, int flags, mode_t mode) {
  int fd = EnvWrapper::OpenAt(dirfd, path, flags, mode);
  if (fd >= 0 && (flags & O_TRUNC)) {
    // Emptied now, not synced: a power loss may give the old length back,
    // but never more than this test cares about; count it as unsynced at 0.
    std::lock_guard lock(mu_);
    unsynced_.emplace(PathOf(fd), 0);
  }
  return fd;
}

ssize_t FaultEnv::PWrite(int fd, const void* buf, size_t n, off_t off) {
  std::string path = PathOf(fd);
  std::vector<char> copy;
  {
    std::lock_guard lock(mu_);
    writes_++;
    if (fail_.Matches(path) && ++seen_fail_ == fail_at_) {
      fail_.on = false;
      errno = fail_err_;
      return -1;
    }
    if (nospace_.Matches(path)) {
      // Bytes below the file's size are already allocated (written or
      // fallocated): overwriting them needs no room. Only growth does.
      struct stat st;
      uint64_t size = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
      uint64_t at = static_cast<uint64_t>(off);
      size_t inside = at < size ? static_cast<size_t>(std::min<uint64_t>(n, size - at)) : 0;
      uint64_t grow = n - inside;
      if (grow > nospace_left_) {
        if (inside == 0 && nospace_left_ == 0) {
          errno = ENOSPC;
          return -1;
        }
        // The disk takes what fits, as a real one does: a short write.
        n = inside + static_cast<size_t>(nospace_left_);
        grow = nospace_left_;
      }
      nospace_left_ -= grow;
    }
    if (short_.Matches(path) && n > short_max_) n = short_max_;
    if (corrupt_.Matches(path) && ++seen_corrupt_ == corrupt_at_) {
      corrupt_.on = false;
      if (corrupt_index_ < n) {
        copy.assign(static_cast<const char*>(buf), static_cast<const char*>(buf) + n);
        copy[corrupt_index_] ^= 0x01;
        buf = copy.data();
      }
    }
    if (!unsynced_.count(path)) {
      struct stat st;
      off_t synced = fstat(fd, &st) == 0 ? st.st_size : 0;
      unsynced_.emplace(path, synced);
    }
  }
  return EnvWrapper::PWrite(fd, buf, n, off);
}

int FaultEnv::Fallocate(int fd, int mode, off_t off, off_t len) {
  std::string path = PathOf(fd);
  {
    std::lock_guard lock(mu_);
    if (nospace_.Matches(path)) {
      struct stat st;
      off_t size = fstat(fd, &st) == 0 ? st.st_size : 0;
      uint64_t grow = off + len > size ? static_cast<uint64_t>(off + len - size) : 0;
      if (grow > nospace_left_) {
        errno = ENOSPC;
        return -1;
      }
      nospace_left_ -= grow;
    }
  }
  return EnvWrapper::Fallocate(fd, mode, off, len);
}

void FaultEnv::NoteSynced(int fd) {
  std::lock_guard lock(mu_);
  unsynced_.erase(PathOf(fd));
}

int FaultEnv::Fsync(int fd) {
  int rc = EnvWrapper::Fsync(fd);
  if (rc == 0) NoteSynced(fd);
  return rc;
}

int FaultEnv::Fdatasync(int fd) {
  int rc = EnvWrapper::Fdatasync(fd);
  if (rc == 0) NoteSynced(fd);
  return rc;
}

int FaultEnv::DropUnsynced() {
  std::map<std::string, off_t> cut;
  {
    std::lock_guard lock(mu_);
    cut.swap(unsynced_);
  }
  int n = 0;
  for (auto& [path, len] : cut) {
    if (truncate(path.c_str(), len) == 0) n++;
  }
  return n;
}

}  // namespace tempfs::testing
