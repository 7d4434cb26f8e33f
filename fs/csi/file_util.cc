#include "csi/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <sstream>

namespace tempfs::csi {
namespace {

int RemoveEntry(const char* path, const struct stat*, int type, struct FTW*) {
  int rc = (type == FTW_DP || type == FTW_D) ? rmdir(path) : unlink(path);
  if (rc != 0 && errno != ENOENT) return errno;
  return 0;
}

}  // namespace

Status MakeDir(const std::string& path, mode_t mode, bool* created) {
  *created = false;
  if (mkdir(path.c_str(), mode) == 0) {
    *created = true;
    return Status::Ok();
  }
  if (errno != EEXIST) return Status::FromErrno("mkdir " + path);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno("stat " + path);
  if (!S_ISDIR(st.st_mode)) return Status::Err(ENOTDIR, path + " exists and is not a directory");
  return Status::Ok();
}

Status MakeDirs(const std::string& path, mode_t mode) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (prefix.empty()) continue;
    bool created;
    TEMPFS_RETURN_IF_ERROR(MakeDir(prefix, mode, &created));
  }
  return Status::Ok();
}

Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno("lstat " + path);
  }
  int rc = nftw(path.c_str(), RemoveEntry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (rc > 0) return Status::Err(rc, "removing " + path);
  if (rc < 0 && errno != ENOENT) return Status::FromErrno("walking " + path);
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Status::FromErrno("create " + tmp);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status st = Status::FromErrno("write " + tmp);
      close(fd);
      unlink(tmp.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    Status st = Status::FromErrno("sync " + tmp);
    unlink(tmp.c_str());
    return st;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::FromErrno("rename " + tmp + " to " + path);
    unlink(tmp.c_str());
    return st;
  }
  return Status::Ok();
}

Result<std::string> ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno("open " + path);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = Status::FromErrno("read " + path);
      close(fd);
      return st;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1 << 20)) {
      close(fd);
      return Status::Err(EFBIG, path + " is too large for a state file");
    }
  }
  close(fd);
  return out;
}

Result<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return Status::FromErrno("opendir " + path);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
    errno = 0;
  }
  int err = errno;
  closedir(d);
  if (err != 0) return Status::Err(err, "readdir " + path);
  return names;
}

std::string FormatKeyValues(const std::map<std::string, std::string>& kv) {
  std::string out;
  for (const auto& [k, v] : kv) out += k + "=" + v + "\n";
  return out;
}

std::map<std::string, std::string> ParseKeyValues(const std::string& text) {
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

std::string PathHash(const std::string& path) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(XXH64(path.data(), path.size(), 0)));
  return buf;
}

}  // namespace tempfs::csi
