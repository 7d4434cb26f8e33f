// `tempfs csi`: the Kubernetes CSI node plugin of one node's tempfs mount.
//
//   tempfs csi --endpoint unix:///var/lib/kubelet/plugins/tempfs.csi.local/csi.sock
//              --node-id NODE --mount /var/lib/tempfs/mnt [--kubelet-dir /var/lib/kubelet]
//
// Serves the CSI Identity and Node services (gRPC on a Unix socket, mode
// 0600; a stale socket file is replaced, a live one refused) until SIGTERM or
// SIGINT. Volumes are directories of the tempfs mount, bind-mounted into
// pods (see node_service.h and volume_store.h); the plugin's own records
// live in --state-dir (default: "state" beside the socket). Restarting the
// plugin does not touch running pods' mounts.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace tempfs {

struct CsiConfig {
  std::string endpoint;        // unix:///abs/path, unix:/abs/path or /abs/path
  std::string node_id;         // this node's name (NodeGetInfo, topology)
  std::string mount;           // this node's tempfs mount point
  std::string state_dir;       // "" = <socket's directory>/state
  std::string kubelet_dir = "/var/lib/kubelet";  // publish targets must lie beneath it
  double check_interval = 10;  // seconds between maintenance rounds
  int64_t max_volumes_per_node = 0;
  bool debug = false;
};

// Registers the options of `tempfs csi` on `app`, filling `c`.
void AddCsiOptions(CLI::App& app, CsiConfig& c);

// Runs the plugin; returns the process exit code (0 after SIGTERM/SIGINT).
int RunCsi(const CsiConfig& c);

}  // namespace tempfs
