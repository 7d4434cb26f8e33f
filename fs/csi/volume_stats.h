// What a volume uses, for NodeGetVolumeStats: the bytes (allocated blocks,
// like du) and inodes under the volume's directory, found by a walk that
// stops after a bounded number of entries and time (kubelet asks every
// minute for every volume), and what the file system has left (statfs).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace tempfs::csi {

struct VolumeUsageStats {
  int64_t used_bytes = 0;
  int64_t used_inodes = 0;
  bool truncated = false;  // the walk hit its bound: used_* are lower bounds
  int64_t fs_total_bytes = 0;
  int64_t fs_available_bytes = 0;
  int64_t fs_total_inodes = 0;
  int64_t fs_free_inodes = 0;
};

struct WalkLimits {
  int64_t max_entries = 1000000;
  std::chrono::milliseconds max_time{5000};
};

// ENOENT if `dir` is missing; ENOTCONN if its file system does not answer.
Result<VolumeUsageStats> MeasureVolume(const std::string& dir, const WalkLimits& limits = {});

}  // namespace tempfs::csi
