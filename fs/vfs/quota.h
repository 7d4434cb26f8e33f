// Capacity limits ("projects", as XFS project quotas with inheritance).
//
// A directory carrying the xattr kCapacityXattr (decimal bytes) is a quota
// root: every inode below it records the root's number as its project
// (Attr::project), new inodes inherit it, and rename/link across projects
// fails with EXDEV. The Vfs keeps each limited project's usage in memory:
// the sizes of its regular files, each rounded up to kQuotaBlock, counted by
// walking the subtree on first need and then updated on every size change
// the daemon sees. Files of a limited project are served without kernel
// passthrough, with direct I/O, so that every write reaches the daemon.
//
// Accounting is per node: in cluster mode other nodes' writes are not seen
// until the next recount.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "common/status.h"
#include "meta/types.h"

namespace tempfs {

inline constexpr char kCapacityXattr[] = "trusted.tempfs.capacity";
inline constexpr uint64_t kQuotaBlock = 4096;

// One limited project. Its lock serializes the size changes of the
// project's files, so that two writers cannot both take the last room.
struct Project {
  explicit Project(Ino root_ino) : root(root_ino) {}

  const Ino root;
  std::mutex mu;
  uint64_t capacity = 0;  // guarded by mu
  uint64_t usage = 0;     // guarded by mu; valid when counted
  bool counted = false;   // guarded by mu

  // A file of the project went from `from` to `to` bytes (0: gone, or not
  // counted any more). Requires mu; nothing to do before the first count.
  void Resize(uint64_t from, uint64_t to);
};

// What a file of `size` bytes counts against its project.
inline uint64_t QuotaCharge(uint64_t size) { return (size + kQuotaBlock - 1) / kQuotaBlock * kQuotaBlock; }

inline void Project::Resize(uint64_t from, uint64_t to) {
  if (!counted) return;
  usage = usage - std::min(usage, QuotaCharge(from)) + QuotaCharge(to);
}

// The size a file now `size` bytes long may grow to in a project with
// `room` bytes left: whole blocks only, never less than it is.
inline uint64_t QuotaLimit(uint64_t size, uint64_t room) {
  uint64_t limit = (QuotaCharge(size) + room) / kQuotaBlock * kQuotaBlock;
  return limit < size ? size : limit;
}

// A capacity value as stored in the xattr: decimal digits only, no sign or
// spaces, fits 64 bits. EINVAL otherwise.
Result<uint64_t> ParseCapacity(std::string_view value);

}  // namespace tempfs
