// Mounting and unmounting a tempfs node: what `tempfs mount` and
// `tempfs umount` do. Errors are reported as one line on stderr and a
// non-zero return; nothing is changed when a check fails.
#pragma once

#include <string>
#include <vector>

namespace tempfs {

struct MountConfig {
  std::string store;
  std::string mountpoint;
  std::string meta_uri;  // "" = embedded
  std::string log_file;  // "" = STORE/tempfs.log (stderr in the foreground)
  std::vector<std::string> fuse_options;
  bool foreground = false;
  bool passthrough = true;
  bool writeback_cache = true;
  bool debug = false;
  // Cluster mode (with a redis:// metadata engine).
  std::string node_id;
  std::string listen;     // HOST:PORT for peers
  std::string advertise;  // HOST:PORT others use; default: listen
  std::string secret_file;
  // Join the namespace Redis holds (or make one in an empty Redis) even if
  // the store belongs to another; its old data is set aside in lost+found.
  bool join_new_namespace = false;
  double peer_timeout = 5;   // seconds without progress before a fetch fails
  double cache_timeout = 1;  // seconds the kernel may trust names and attributes
  // HOST:PORT to serve Prometheus metrics on (GET /metrics); "" = off.
  std::string metrics;
};

// Returns the process exit code. In the background mode it returns once the
// mount serves requests (the daemon keeps running); in the foreground it
// returns when the filesystem is unmounted or the daemon is told to stop.
int RunMount(const MountConfig& config);

// Unmounts a tempfs mount, also a dead one whose daemon was killed, and waits
// for the daemon to release its store.
int RunUmount(const std::string& mountpoint, bool lazy);

}  // namespace tempfs
