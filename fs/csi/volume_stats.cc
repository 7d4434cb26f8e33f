#include "csi/volume_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace tempfs::csi {
namespace {

using Clock = std::chrono::steady_clock;

// Each level holds a descriptor and a stack frame.
constexpr int kMaxDepth = 256;

struct Walk {
  const WalkLimits& limits;
  Clock::time_point deadline;
  VolumeUsageStats* out;
  dev_t dev;

  bool OverBudget() {
    if (out->used_inodes >= limits.max_entries || Clock::now() >= deadline) {
      out->truncated = true;
      return true;
    }
    return false;
  }

  // Counts the entries of the open directory `dfd` (closed here), depth
  // first, without following symlinks or leaving the file system.
  void Dir(int dfd, int depth) {
    DIR* d = fdopendir(dfd);
    if (d == nullptr) {
      close(dfd);
      return;
    }
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (OverBudget()) break;
      struct stat st {};
      if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (st.st_dev != dev) continue;
      out->used_inodes++;
      out->used_bytes += static_cast<int64_t>(st.st_blocks) * 512;
      if (S_ISDIR(st.st_mode)) {
        if (depth >= kMaxDepth) {
          out->truncated = true;
          continue;
        }
        int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) Dir(sub, depth + 1);
      }
    }
    closedir(d);
  }
};

}  // namespace

Result<VolumeUsageStats> MeasureVolume(const std::string& dir, const WalkLimits& limits) {
  VolumeUsageStats out;
  struct statvfs sv {};
  if (statvfs(dir.c_str(), &sv) != 0) return Status::FromErrno("statvfs " + dir);
  const int64_t frsize = sv.f_frsize ? static_cast<int64_t>(sv.f_frsize) : static_cast<int64_t>(sv.f_bsize);
  out.fs_total_bytes = static_cast<int64_t>(sv.f_blocks) * frsize;
  out.fs_available_bytes = static_cast<int64_t>(sv.f_bavail) * frsize;
  out.fs_total_inodes = static_cast<int64_t>(sv.f_files);
  out.fs_free_inodes = static_cast<int64_t>(sv.f_ffree);

  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + dir);
  struct stat root {};
  if (fstat(fd, &root) != 0) {
    Status st = Status::FromErrno("fstat " + dir);
    close(fd);
    return st;
  }
  out.used_inodes = 1;
  out.used_bytes = static_cast<int64_t>(root.st_blocks) * 512;
  Walk walk{limits, Clock::now() + limits.max_time, &out, root.st_dev};
  walk.Dir(fd, 0);
  return out;
}

}  // namespace tempfs::csi
