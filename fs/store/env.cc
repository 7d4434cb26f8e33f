#include "store/env.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tempfs {
namespace {

class PosixEnv final : public Env {
 public:
  int OpenAt(int dirfd, const char* path, int flags, mode_t mode) override {
    return openat(dirfd, path, flags, mode);
  }
  ssize_t PRead(int fd, void* buf, size_t n, off_t off) override { return pread(fd, buf, n, off); }
  ssize_t PWrite(int fd, const void* buf, size_t n, off_t off) override { return pwrite(fd, buf, n, off); }
  int Fallocate(int fd, int mode, off_t off, off_t len) override { return fallocate(fd, mode, off, len); }
  int Ftruncate(int fd, off_t len) override { return ftruncate(fd, len); }
  int Fsync(int fd) override { return fsync(fd); }
  int Fdatasync(int fd) override { return fdatasync(fd); }
  int Close(int fd) override { return close(fd); }
  int RenameAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) override {
    return renameat(olddirfd, oldpath, newdirfd, newpath);
  }
  int UnlinkAt(int dirfd, const char* path, int flags) override { return unlinkat(dirfd, path, flags); }
};

}  // namespace

Env* Env::Default() {
  static PosixEnv* env = new PosixEnv;
  return env;
}

int Env::Open(const std::string& path, int flags, mode_t mode) { return OpenAt(AT_FDCWD, path.c_str(), flags, mode); }
int Env::Rename(const std::string& from, const std::string& to) {
  return RenameAt(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str());
}
int Env::Unlink(const std::string& path) { return UnlinkAt(AT_FDCWD, path.c_str(), 0); }

Status WriteFully(Env* env, int fd, std::string_view data, off_t off) {
  while (!data.empty()) {
    ssize_t n = env->PWrite(fd, data.data(), data.size(), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write");
    }
    if (n == 0) return Status::Err(ENOSPC, "write stored nothing");
    data.remove_prefix(static_cast<size_t>(n));
    off += n;
  }
  return Status::Ok();
}

void SyncDir(Env* env, const std::string& dir) {
  int dfd = env->Open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    env->Fsync(dfd);
    env->Close(dfd);
  }
}

Result<std::string> MakeFreshDir(const std::string& base, int max_suffix) {
  std::string dir = base;
  for (int i = 1; mkdir(dir.c_str(), 0700) != 0; i++) {
    if (errno != EEXIST || i > max_suffix) return Status::FromErrno("mkdir " + dir);
    dir = base + "." + std::to_string(i);
  }
  return dir;
}

Result<std::string> ReadWholeFile(Env* env, const std::string& path) {
  int fd = env->Open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + path);
  std::string data;
  char buf[1 << 16];
  off_t off = 0;
  for (;;) {
    ssize_t n = env->PRead(fd, buf, sizeof buf, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::FromErrno("read " + path);
      env->Close(fd);
      return st;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    off += n;
  }
  env->Close(fd);
  return data;
}

}  // namespace tempfs
