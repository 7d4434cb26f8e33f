// Reading the mount table and naming paths the way it does.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

namespace tempfs {

struct MountEntry {
  std::string mountpoint;
  std::string fstype;  // "fuse.tempfs" for ours
  std::string source;  // "tempfs:<store>" for ours
  std::string root;    // the mounted directory inside the filesystem ("/" unless a bind mount of a part)
  int id = -1;         // the mount's id (as in /proc/PID/fdinfo/FD's mnt_id)
  std::string dev;     // "major:minor" of its superblock: bind mounts of one file system share it
};

// Every mount this process sees, in mount order.
std::vector<MountEntry> AllMounts();

// Absolute, with "." and ".." resolved by text only: a dead FUSE mount
// cannot be stat()ed, so realpath() would fail on it.
std::string LexicalAbsolute(const std::string& path);
// The topmost mount at exactly `abs_path`, if any.
std::optional<MountEntry> FindMount(const std::string& abs_path);
// Whether a failed stat() of a FUSE mount point means its daemon is gone:
// ENOTCONN, or ECONNABORTED when the connection was torn down under a request.
inline bool IsDeadMountErrno(int err) { return err == ENOTCONN || err == ECONNABORTED; }
// The store of a tempfs mount entry ("" if it is not ours).
std::string StoreOf(const MountEntry& m);

}  // namespace tempfs
