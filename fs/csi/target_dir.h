// Publish targets: the directories, beneath kubelet's directory, on which
// the plugin mounts volumes for pods.
//
// A target is named by kubelet, but the directories on the way to it can be
// changed by others (a pod with a hostPath volume, a careless operator), so
// the plugin trusts only kubelet's directory itself (--kubelet-dir, as the
// operator configured it, symlinks in it allowed) and reaches everything
// beneath it without following a symlink: a target or a parent that is a
// symlink is refused with EINVAL, never mounted over, never removed. Callers
// then work on the returned descriptors, not on the path, so a directory
// renamed or replaced after the check is not the one they touch.
//
// Thread-safe (no state beyond the configured path).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/status.h"
#include "csi/unique_fd.h"

namespace tempfs::csi {

class KubeletDir {
 public:
  explicit KubeletDir(std::string path);

  const std::string& path() const { return path_; }

  // The canonical name of `target` (the key of its publication record and
  // how the mount table names it): absolute, repeated '/' and "." dropped,
  // kubelet's directory as its real path. EINVAL naming `field` when the
  // path is malformed, has a ".." component, or is not strictly beneath
  // kubelet's directory. Text only: nothing is opened but kubelet's
  // directory, to resolve its own name.
  Result<std::string> Confine(std::string_view field, const std::string& target) const;

  // An O_PATH descriptor of the parent directory of `target` (a result of
  // Confine), every component opened without following symlinks. Missing
  // directories are created with `mode` when `create`, else ENOENT. EINVAL
  // when a component is a symlink or not a directory.
  Result<UniqueFd> OpenParent(const std::string& target, bool create, mode_t mode) const;

 private:
  Result<std::string> RealPath() const;

  std::string path_;  // as configured, lexically absolute
};

// The last component of a path.
std::string BaseName(const std::string& path);

// An O_PATH descriptor of the directory `name` in `parent`, not followed if
// it is a symlink: ENOENT if missing, EINVAL (naming `shown`) if it is a
// symlink or not a directory. A mount on it is entered: the descriptor is
// the root of the topmost mount there. Makes no call into that mount's file
// system, so it works on a dead FUSE mount.
Result<UniqueFd> OpenTargetAt(int parent, const std::string& name, const std::string& shown);

}  // namespace tempfs::csi
