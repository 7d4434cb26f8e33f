#include "store/local_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tempfs {

Result<std::unique_ptr<LocalStore>> LocalStore::Open(const std::string& root, Env* env) {
  struct stat st;
  if (stat(root.c_str(), &st) != 0) return Status::FromErrno("store " + root);
  if (!S_ISDIR(st.st_mode)) return Status::Err(ENOTDIR, "store " + root);
  std::string data = root + "/data";
  if (mkdir(data.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + data);
  int fd = open(data.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + data);
  for (int i = 0; i < 256; i++) {
    char sub[3];
    snprintf(sub, sizeof sub, "%02x", i);
    if (mkdirat(fd, sub, 0700) != 0 && errno != EEXIST) {
      Status s = Status::FromErrno("mkdir " + data + "/" + sub);
      close(fd);
      return s;
    }
  }
  return std::unique_ptr<LocalStore>(new LocalStore(root, fd, env));
}

LocalStore::~LocalStore() { close(data_fd_); }

std::string LocalStore::DataName(Ino ino) {
  char buf[32];
  snprintf(buf, sizeof buf, "%02x/%016llx", static_cast<unsigned>(ino & 0xff),
           static_cast<unsigned long long>(ino));
  return buf;
}

Status LocalStore::CreateData(Ino ino) {
  // A new file, not an emptied one: a stale file of that number may carry
  // xattrs (a cluster version) or be open elsewhere; none of it may show.
  if (Status st = RemoveData(ino); !st.ok()) return st;
  int fd = env_->OpenAt(data_fd_, DataName(ino).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("create data");
  env_->Close(fd);
  return Status::Ok();
}

Result<int> LocalStore::OpenData(Ino ino, int flags) {
  flags &= ~(O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECTORY);
  int fd = env_->OpenAt(data_fd_, DataName(ino).c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open data");
  return fd;
}

Status LocalStore::RemoveData(Ino ino) {
  if (env_->UnlinkAt(data_fd_, DataName(ino).c_str(), 0) != 0 && errno != ENOENT) {
    return Status::FromErrno("remove data");
  }
  return Status::Ok();
}

Result<struct stat> LocalStore::StatData(Ino ino) {
  struct stat st;
  if (fstatat(data_fd_, DataName(ino).c_str(), &st, 0) != 0) return Status::FromErrno("stat data");
  return st;
}

Status LocalStore::SetDataTimes(Ino ino, const struct timespec times[2]) {
  if (utimensat(data_fd_, DataName(ino).c_str(), times, 0) != 0) return Status::FromErrno("utimens data");
  return Status::Ok();
}

Result<struct statvfs> LocalStore::StatFs() {
  struct statvfs sv;
  if (fstatvfs(data_fd_, &sv) != 0) return Status::FromErrno("statvfs");
  return sv;
}

namespace {
constexpr char kVersionXattr[] = "trusted.tempfs.version";
}

Result<std::vector<Ino>> LocalStore::ListData() {
  std::vector<Ino> out;
  for (int i = 0; i < 256; i++) {
    char sub[3];
    snprintf(sub, sizeof sub, "%02x", i);
    int fd = env_->OpenAt(data_fd_, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;
    DIR* d = fdopendir(fd);
    if (d == nullptr) {
      env_->Close(fd);
      continue;
    }
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n.size() != 16) continue;  // skips ".", "..", and "*.part"
      char* end = nullptr;
      unsigned long long v = strtoull(e->d_name, &end, 16);
      if (*end == '\0') out.push_back(v);
    }
    closedir(d);
  }
  return out;
}

Result<int> LocalStore::CreatePart(Ino ino) {
  int fd = env_->OpenAt(data_fd_, (DataName(ino) + ".part").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("create part");
  return fd;
}

Result<int> LocalStore::OpenPart(Ino ino, int flags) {
  int fd = env_->OpenAt(data_fd_, (DataName(ino) + ".part").c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open part");
  return fd;
}

Status LocalStore::CommitPart(Ino ino, uint64_t version) {
  std::string part = DataName(ino) + ".part";
  std::string v = std::to_string(version);
  int fd = env_->OpenAt(data_fd_, part.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open part");
  int rc = fsetxattr(fd, kVersionXattr, v.data(), v.size(), 0);
  Status st = rc == 0 ? Status::Ok() : Status::FromErrno("set version of part");
  env_->Close(fd);
  if (!st.ok()) return st;
  if (env_->RenameAt(data_fd_, part.c_str(), data_fd_, DataName(ino).c_str()) != 0) {
    return Status::FromErrno("rename part");
  }
  return Status::Ok();
}

Status LocalStore::RemovePart(Ino ino) {
  if (env_->UnlinkAt(data_fd_, (DataName(ino) + ".part").c_str(), 0) != 0 && errno != ENOENT) {
    return Status::FromErrno("remove part");
  }
  return Status::Ok();
}

Result<uint64_t> LocalStore::LocalVersion(Ino ino) {
  int fd = env_->OpenAt(data_fd_, DataName(ino).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return uint64_t{0};
    return Status::FromErrno("open data");
  }
  char buf[32];
  ssize_t n = fgetxattr(fd, kVersionXattr, buf, sizeof buf - 1);
  int err = errno;
  env_->Close(fd);
  if (n < 0) {
    if (err == ENODATA) return uint64_t{0};
    return Status::Err(err, "read version");
  }
  buf[n] = '\0';
  return static_cast<uint64_t>(strtoull(buf, nullptr, 10));
}

Status LocalStore::SetLocalVersion(Ino ino, uint64_t version) {
  std::string v = std::to_string(version);
  int fd = env_->OpenAt(data_fd_, DataName(ino).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open data");
  int rc = fsetxattr(fd, kVersionXattr, v.data(), v.size(), 0);
  Status st = rc == 0 ? Status::Ok() : Status::FromErrno("set version");
  env_->Close(fd);
  return st;
}

Result<std::unique_ptr<StoreLock>> StoreLock::Acquire(const std::string& store) {
  std::string path = store + "/tempfs.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open " + path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (err == EWOULDBLOCK) {
      std::string pid = n > 0 ? std::string(buf, strnlen(buf, n)) : "?";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return Status::Err(EBUSY, "store " + store + " is already served by tempfs (pid " + pid + ")");
    }
    return Status::Err(err, "lock " + path);
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    Status st = Status::FromErrno("write " + path);
    close(fd);
    return st;
  }
  return std::unique_ptr<StoreLock>(new StoreLock(fd));
}

bool StoreLock::IsHeld(const std::string& store, pid_t* pid) {
  std::string path = store + "/tempfs.lock";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  if (held && pid != nullptr) {
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    *pid = n > 0 ? atoi(buf) : 0;
  }
  close(fd);
  return held;
}

StoreLock::~StoreLock() { close(fd_); }

}  // namespace tempfs
