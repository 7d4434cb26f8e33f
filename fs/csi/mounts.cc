#include "csi/mounts.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "daemon/mount_table.h"

namespace tempfs::csi {
namespace {

// Stacked mounts on one path are rare; this bounds a loop that should end
// after one or two rounds.
constexpr int kMaxStackedMounts = 32;

}  // namespace

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

TargetState InspectTarget(const std::string& target) {
  struct stat st {};
  bool mounted = FindMount(target).has_value();
  if (stat(target.c_str(), &st) != 0) {
    if (IsDeadMountErrno(errno)) return TargetState::kDead;
    return mounted ? TargetState::kDead : TargetState::kMissing;
  }
  return mounted ? TargetState::kMounted : TargetState::kUnmounted;
}

Status BindMount(const std::string& source, const std::string& target, bool readonly) {
  if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return Status::FromErrno("bind-mounting " + source + " on " + target);
  }
  // A bind remount changes the flags of this mount only; noexec is kept as
  // the source has it.
  struct statvfs sv {};
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV;
  if (statvfs(source.c_str(), &sv) == 0 && (sv.f_flag & ST_NOEXEC)) flags |= MS_NOEXEC;
  if (readonly) flags |= MS_RDONLY;
  if (mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0) {
    Status st = Status::FromErrno("setting flags of the bind mount on " + target);
    umount2(target.c_str(), MNT_DETACH);
    return st;
  }
  return Status::Ok();
}

Status UnmountAll(const std::string& target) {
  for (int i = 0; i < kMaxStackedMounts; i++) {
    if (!FindMount(target)) return Status::Ok();
    if (umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) continue;
    int err = errno;
    if (err == EINVAL && !FindMount(target)) return Status::Ok();  // raced with another unmount
    if (umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return Status::FromErrno("unmounting " + target + " (after " + std::strerror(err) + ")");
    }
  }
  if (FindMount(target)) return Status::Err(EBUSY, "more than 32 mounts stacked on " + target);
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
