#include "csi/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "csi/unique_fd.h"
#include "daemon/mount_table.h"

namespace tempfs::csi {

Status CheckTempfsServing(const std::string& mnt) {
  auto entry = FindMount(mnt);
  if (!entry) return Status::Err(ENOTCONN, "nothing is mounted at " + mnt);
  if (StoreOf(*entry).empty()) {
    return Status::Err(ENOTCONN, mnt + " is a " + entry->fstype + " mount, not tempfs");
  }
  struct statfs sf {};
  if (statfs(mnt.c_str(), &sf) != 0) {
    int err = errno;
    return Status::Err(ENOTCONN, "tempfs at " + mnt + " does not answer (" + std::strerror(err) + ")");
  }
  return Status::Ok();
}

Result<MountEntry> MountOf(int fd) {
  const std::string info = "/proc/self/fdinfo/" + std::to_string(fd);
  std::ifstream in(info);
  if (!in) return Status::FromErrno("reading " + info);
  std::string line;
  int id = -1;
  while (std::getline(in, line)) {
    if (line.rfind("mnt_id:", 0) == 0) id = std::atoi(line.c_str() + 7);
  }
  if (id < 0) return Status::Err(EIO, info + " has no mnt_id");
  for (MountEntry& m : AllMounts()) {
    if (m.id == id) return std::move(m);
  }
  return Status::Err(ENOENT, "mount " + std::to_string(id) + " is not in this process's mount table");
}

bool Answers(int fd) {
  struct statfs sf {};
  return fstatfs(fd, &sf) == 0 || !IsDeadMountErrno(errno);
}

Status BindMountAt(const std::string& source, int target_fd, const std::string& shown, bool readonly) {
  // A detached copy of the source's mount, flags set while no one sees it;
  // nosuid, nodev and noexec of the source are kept by the copy.
  UniqueFd tree(open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
  if (!tree.valid()) return Status::FromErrno("open_tree " + source);
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (readonly ? MOUNT_ATTR_RDONLY : 0);
  if (mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    return Status::FromErrno("setting flags of the bind mount for " + shown);
  }
  if (move_mount(tree.get(), "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return Status::FromErrno("bind-mounting " + source + " on " + shown);
  }
  return Status::Ok();
}

Status DetachMount(int fd, const std::string& shown) {
  // The magic link names the descriptor's own mount root, so this detaches
  // exactly the mount that was checked. Lazily: the descriptor itself keeps
  // the mount busy.
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  if (umount2(self.c_str(), MNT_DETACH) != 0) return Status::FromErrno("unmounting " + shown);
  return Status::Ok();
}

bool SameDirectory(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (stat(a.c_str(), &sa) != 0 || stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool IsReadOnly(const std::string& target) {
  struct statvfs sv {};
  return statvfs(target.c_str(), &sv) == 0 && (sv.f_flag & ST_RDONLY);
}

std::string CanonicalPath(const std::string& path) {
  std::string abs = LexicalAbsolute(path);
  if (abs == "/") return abs;
  size_t slash = abs.rfind('/');
  std::string parent = slash == 0 ? "/" : abs.substr(0, slash);
  char buf[PATH_MAX];
  if (realpath(parent.c_str(), buf) == nullptr) return abs;
  std::string real = buf;
  return (real == "/" ? "" : real) + abs.substr(slash);
}

}  // namespace tempfs::csi
