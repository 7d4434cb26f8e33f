// Mount operations of the CSI node plugin: whether the node's tempfs mount
// serves, which mount a descriptor is on, bind-mounting a volume's directory
// onto a target and detaching it again, a dead FUSE mount (ENOTCONN)
// included. Targets are handled by descriptor (see target_dir.h), never by a
// path that could lead through a symlink. Thread-compatible: callers
// serialize operations on the same target.
#pragma once

#include <string>

#include "common/status.h"
#include "daemon/mount_table.h"

namespace tempfs::csi {

// OK if `mnt` is a fuse.tempfs mount (per the mount table) that answers
// statfs; ENOTCONN with the reason otherwise (not mounted, another file
// system, or a dead daemon).
Status CheckTempfsServing(const std::string& mnt);

// The mount that the descriptor `fd` is on (its mount id, read from
// /proc/self/fdinfo, found in the mount table). No call into that file
// system: works on a dead FUSE mount.
Result<MountEntry> MountOf(int fd);

// Whether the file system under `fd` answers: false for a dead FUSE mount
// (ENOTCONN, ECONNABORTED).
bool Answers(int fd);

// Bind-mounts the directory `source` on the directory open as `target_fd`
// (on top of whatever is mounted there), with nosuid,nodev (and ro if
// asked) set before it is attached: the new mount API (open_tree,
// mount_setattr, move_mount), so no path is resolved on the target's side.
// `shown` names the target in errors.
Status BindMountAt(const std::string& source, int target_fd, const std::string& shown, bool readonly);

// Detaches (MNT_DETACH: pods may still hold files in it) the mount whose
// root is open as `fd`.
Status DetachMount(int fd, const std::string& shown);

// Whether `a` and `b` are the same directory (device and inode).
bool SameDirectory(const std::string& a, const std::string& b);

// Whether the mount at `target` is read-only.
bool IsReadOnly(const std::string& target);

// The path as the mount table names it: absolute, "." and ".." resolved, and
// symlinks in its parent directory resolved when the parent can be reached
// (the last component is never followed: it may be a dead mount).
std::string CanonicalPath(const std::string& path);

}  // namespace tempfs::csi
