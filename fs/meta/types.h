// Plain data types of the namespace, shared by every metadata engine.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace tempfs {

using Ino = uint64_t;
constexpr Ino kRootIno = 1;
constexpr size_t kNameMax = 255;

// Times are nanoseconds since the epoch.
struct Attr {
  Ino ino = 0;
  uint32_t mode = 0;  // file type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;  // regular files: size recorded at the last close (the data is the truth locally)
  uint64_t rdev = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t version = 0;   // bumped when a file's content changes (cluster mode checks it)
  uint32_t owner = 0;     // cluster mode: number of the node that holds the data (0: none yet)
  uint64_t checksum = 0;  // cluster mode: xxHash64 of the content of `version`
  // The quota root (a directory with a capacity) whose usage this inode counts
  // in; 0: none. A root carries its own number, so children simply inherit
  // their parent's project.
  Ino project = 0;
  // Random at creation and never changed: file handles (name_to_handle_at,
  // FUSE export) carry it with the inode number, so a handle cannot be guessed
  // and one of an earlier inode of the same number is refused (ESTALE).
  // Records written before generations existed read as 1, the value their
  // handles carried; the root's is 0, as the kernel's root inode has.
  uint64_t generation = 0;
  uint64_t blocks = 0;    // 512-byte blocks used; filled from the data, not stored
};

// What Create() makes. `target` is the link text of a symlink.
struct NewNode {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  std::string target;
};

// Which fields SetAttr() changes.
struct SetAttrRequest {
  enum : uint32_t {
    kMode = 1 << 0,
    kUid = 1 << 1,
    kGid = 1 << 2,
    kSize = 1 << 3,
    kAtime = 1 << 4,
    kMtime = 1 << 5,
    kCtime = 1 << 6,
    // Cluster mode: a new version of the content (size, owner, checksum)
    // written on a node; refused with ESTALE unless the stored version is
    // still `base_version`.
    kContent = 1 << 7,
    // Cluster mode: node `owner` takes over the content of `base_version`
    // (drain); the version stays. ESTALE unless the stored version is still
    // `base_version`. Changes nothing a user sees (not even ctime).
    kOwner = 1 << 8,
    // The inode's project (tagging a new quota root's subtree); leaves ctime.
    kProject = 1 << 9,
  };
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint32_t owner = 0;
  uint64_t checksum = 0;
  uint64_t base_version = 0;
  Ino project = 0;
};

struct DirEntry {
  std::string name;
  Ino ino = 0;
  uint32_t mode = 0;  // file type bits only are guaranteed
};

// rename(2) flags, as renameat2 defines them.
constexpr unsigned kRenameNoReplace = 1;
constexpr unsigned kRenameExchange = 2;

int64_t NowNs();

// A fresh, unpredictable inode generation (never 0 nor 1, the values of the
// root and of records older than generations).
uint64_t NewGeneration();

}  // namespace tempfs
