// FuseAdapter: the libfuse low-level operations of a tempfs node.
//
// A thin layer: each operation decodes its request, calls the Vfs, and replies
// exactly once. Callbacks never throw; anything unexpected becomes EIO and a
// log line. The kernel's caches are used as far as one node allows: every
// change passes through this mount, so entries and attributes are cached long
// and lookups of missing names are cached too.
//
// Data goes straight between the kernel and the backing file: kernel
// passthrough where available (libfuse >= 3.17, kernel >= 6.9, CAP_SYS_ADMIN),
// otherwise splice to and from the backing descriptor.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <functional>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "vfs/vfs.h"

namespace tempfs {

struct FuseAdapterOptions {
  double entry_timeout = 86400;
  double attr_timeout = 86400;
  double negative_timeout = 86400;
  bool writeback_cache = true;
  // Ask for kernel passthrough of open files (used only if the kernel agrees).
  bool passthrough = true;
  // Called once the kernel's INIT has been answered.
  std::function<void(const std::string& mode)> on_ready;
  // When set: a latency histogram per operation (tempfs_fuse_op_seconds).
  MetricsRegistry* metrics = nullptr;
};

class FuseAdapter {
 public:
  FuseAdapter(Vfs& vfs, FuseAdapterOptions options);
  static const fuse_lowlevel_ops& Ops();

  Vfs& vfs() { return vfs_; }
  const FuseAdapterOptions& options() const { return options_; }
  // Whether open files are served by kernel passthrough (known after INIT).
  bool passthrough_active() const { return passthrough_active_; }
  void set_passthrough_active(bool on) { passthrough_active_ = on; }
  void set_session(fuse_session* se) { session_ = se; }
  // Makes the kernel ask again for `ino`'s attributes (cluster mode: another
  // node changed the file).
  void InvalidateAttributes(Ino ino);
  // The latency histogram of operation number `op`, or nullptr without metrics.
  Histogram* op_latency(size_t op) const { return op < op_latency_.size() ? op_latency_[op] : nullptr; }

 private:
  Vfs& vfs_;
  FuseAdapterOptions options_;
  bool passthrough_active_ = false;
  fuse_session* session_ = nullptr;
  std::vector<Histogram*> op_latency_;
};

// Whether this libfuse was built with passthrough support.
bool LibfuseHasPassthrough();

}  // namespace tempfs
