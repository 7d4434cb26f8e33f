#include "csi/target_dir.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <vector>

#include "csi/names.h"
#include "daemon/mount_table.h"

namespace tempfs::csi {
namespace {

std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string part(path.substr(pos, slash - pos));
    if (!part.empty() && part != ".") out.push_back(part);
    pos = slash + 1;
  }
  return out;
}

// openat2() of one component, never through a symlink (glibc has no wrapper).
int OpenNoSymlinks(int dir, const std::string& name, uint64_t flags) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
  int fd;
  do {
    fd = static_cast<int>(syscall(SYS_openat2, dir, name.c_str(), &how, sizeof how));
  } while (fd < 0 && errno == EAGAIN);
  return fd;
}

Status Refused(const std::string& path, int err) {
  if (err == ELOOP) return Status::Err(EINVAL, path + " is a symlink: a target is never reached through one");
  if (err == ENOTDIR) return Status::Err(EINVAL, path + " is not a directory");
  return Status::Err(err, "opening " + path);
}

}  // namespace

KubeletDir::KubeletDir(std::string path) : path_(LexicalAbsolute(path)) {}

Result<std::string> KubeletDir::RealPath() const {
  char buf[PATH_MAX];
  if (realpath(path_.c_str(), buf) == nullptr) return Status::FromErrno("kubelet's directory " + path_);
  return std::string(buf);
}

Result<std::string> KubeletDir::Confine(std::string_view field, const std::string& target) const {
  TEMPFS_RETURN_IF_ERROR(CheckTargetPath(field, target));
  std::string normal;
  for (const std::string& part : Components(target)) {
    if (part == "..") return Status::Err(EINVAL, std::string(field) + " " + target + ": must not contain \"..\"");
    normal += "/" + part;
  }
  auto real = RealPath();
  if (!real.ok()) return real.status();
  // Kubelet names targets by its own root directory, which may be the
  // configured name or (when that is a symlink) the real one.
  for (const std::string& root : {path_, *real}) {
    const std::string prefix = root == "/" ? "/" : root + "/";
    if (normal.size() > prefix.size() && normal.compare(0, prefix.size(), prefix) == 0) {
      return (*real == "/" ? "" : *real) + normal.substr(prefix.size() - 1);
    }
  }
  return Status::Err(EINVAL, std::string(field) + " " + target + ": must be beneath kubelet's directory " + path_ +
                                 " (--kubelet-dir)");
}

Result<UniqueFd> KubeletDir::OpenParent(const std::string& target, bool create, mode_t mode) const {
  auto real = RealPath();
  if (!real.ok()) return real.status();
  const std::string root = *real == "/" ? "" : *real;
  if (target.size() <= root.size() + 1 || target.compare(0, root.size() + 1, root + "/") != 0) {
    return Status::Err(EINVAL, target + " is not beneath kubelet's directory " + path_);
  }
  UniqueFd dir(open(real->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return Status::FromErrno("opening kubelet's directory " + *real);
  std::vector<std::string> parts = Components(target.substr(root.size()));
  parts.pop_back();  // the target itself
  std::string walked = root;
  for (const std::string& part : parts) {
    walked += "/" + part;
    int fd = OpenNoSymlinks(dir.get(), part, O_PATH | O_DIRECTORY);
    if (fd < 0 && errno == ENOENT && create) {
      if (mkdirat(dir.get(), part.c_str(), mode) != 0 && errno != EEXIST) {
        return Status::FromErrno("mkdir " + walked);
      }
      fd = OpenNoSymlinks(dir.get(), part, O_PATH | O_DIRECTORY);
    }
    if (fd < 0) return Refused(walked, errno);
    dir = UniqueFd(fd);
  }
  return dir;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<UniqueFd> OpenTargetAt(int parent, const std::string& name, const std::string& shown) {
  int fd = OpenNoSymlinks(parent, name, O_PATH | O_DIRECTORY);
  if (fd < 0) return Refused(shown, errno);
  return UniqueFd(fd);
}

}  // namespace tempfs::csi
