// Mount operations of the CSI node plugin: whether the node's tempfs mount
// serves, what is at a publish target, bind-mounting a volume's directory
// onto a target, and taking every mount off a target, a dead FUSE mount
// (ENOTCONN) included. Paths are absolute. Thread-compatible: callers
// serialize operations on the same target.
#pragma once

#include <string>

#include "common/status.h"

namespace tempfs::csi {

// OK if `mnt` is a fuse.tempfs mount (per the mount table) that answers
// statfs; ENOTCONN with the reason otherwise (not mounted, another file
// system, or a dead daemon).
Status CheckTempfsServing(const std::string& mnt);

enum class TargetState {
  kMissing,    // nothing at the path
  kUnmounted,  // exists, nothing mounted on it
  kMounted,    // a mount that answers
  kDead,       // a mount whose file system does not answer (ENOTCONN)
};
TargetState InspectTarget(const std::string& target);

// Bind-mounts the directory `source` on the directory `target`, on top of
// whatever is mounted there, then sets nosuid,nodev (and ro if asked) on the
// new mount only.
Status BindMount(const std::string& source, const std::string& target, bool readonly);

// Unmounts everything stacked on `target` (lazily, MNT_DETACH, when a plain
// unmount fails: busy or dead). OK when nothing is mounted there.
Status UnmountAll(const std::string& target);

// Whether `a` and `b` are the same directory (device and inode).
bool SameDirectory(const std::string& a, const std::string& b);

// Whether the mount at `target` is read-only.
bool IsReadOnly(const std::string& target);

// The path as the mount table names it: absolute, "." and ".." resolved, and
// symlinks in its parent directory resolved when the parent can be reached
// (the last component is never followed: it may be a dead mount).
std::string CanonicalPath(const std::string& path);

}  // namespace tempfs::csi
