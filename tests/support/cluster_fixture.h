// Test support for cluster-mode integration tests: a private redis-server on
// a free loopback port and N tempfs nodes sharing it, each with its own
// store, mount point and peer port. Everything (mounts, daemons, Redis, the
// temp dirs, a private tmpfs for the stores) is torn down by the destructor,
// also when the test fails.
#ifndef TEMPFS_TESTS_SUPPORT_CLUSTER_FIXTURE_H_
#define TEMPFS_TESTS_SUPPORT_CLUSTER_FIXTURE_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/mount_fixture.h"

// Use at the start of every cluster test: skips without FUSE or without
// redis-server on PATH.
#define TEMPFS_SKIP_IF_NO_CLUSTER()                                                                         \
  if (auto tempfs_skip_reason = ::tempfs::testing::ClusterUnavailableReason(); !tempfs_skip_reason.empty()) \
  GTEST_SKIP() << tempfs_skip_reason

namespace tempfs::testing {

// A skip reason if FUSE is unusable (FuseUnavailableReason) or redis-server
// is not on PATH, else "".
std::string ClusterUnavailableReason();

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, close).
int FreeLoopbackPort();

// True if a Redis on 127.0.0.1:port answers PING with +PONG within `timeout`.
bool RedisPing(int port, std::chrono::milliseconds timeout);

// A redis-server child process, on 127.0.0.1:port with its working dir `dir`
// (created). `persistent`: AOF with appendfsync always, so the data survives
// a stop and start; otherwise nothing is saved.
class RedisServer {
 public:
  RedisServer(std::string dir, int port, bool persistent);
  // Stop().
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts it and waits (bounded) for PONG. Records a test failure and
  // returns false if that does not work.
  bool Start();
  // SIGTERM, bounded wait, then SIGKILL. Returns true once it is gone.
  bool Stop();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string uri() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  std::string LogTail(size_t max_bytes = 3000) const;

 private:
  std::string dir_;
  int port_;
  bool persistent_;
  pid_t pid_ = -1;
};

struct ClusterOptions {
  int nodes = 3;
  // Redis with AOF (appendfsync always): the namespace survives a restart.
  bool persistent_redis = false;
  // --peer-timeout and --cache-timeout of every node (seconds).
  std::string peer_timeout = "2";
  std::string cache_timeout = "0";
  // Mount a private tmpfs (of this size, e.g. "2g") for the stores; "" to
  // keep the stores on the temp dir's filesystem.
  std::string tmpfs_size;
  std::vector<std::string> extra_mount_args;
};

// A cluster of tempfs nodes named "A", "B", "C", ... sharing one Redis.
// Usage:
//   ClusterFixture c;
//   if (!c.Start()) return;   // failures already recorded
//   ... c.mnt(0), c.Path(1, "f"), c.KillNode(0), c.RestartNode(0) ...
class ClusterFixture {
 public:
  explicit ClusterFixture(ClusterOptions options = {});
  // Unmounts every node, stops Redis, unmounts the tmpfs, removes the dirs.
  ~ClusterFixture();
  ClusterFixture(const ClusterFixture&) = delete;
  ClusterFixture& operator=(const ClusterFixture&) = delete;

  // Starts Redis and every node. Returns false (test failures recorded,
  // with the logs) if something did not come up.
  bool Start();

  size_t size() const { return nodes_.size(); }
  const std::string& name(size_t i) const { return nodes_.at(i).name; }
  std::string mnt(size_t i) const;
  std::string store(size_t i) const { return nodes_.at(i).store; }
  int peer_port(size_t i) const { return nodes_.at(i).peer_port; }
  // mnt(i) + "/" + rel
  std::string Path(size_t i, const std::string& rel) const { return mnt(i) + "/" + rel; }
  TempfsMount* mount(size_t i) { return nodes_.at(i).mount.get(); }
  const std::string& dir() const { return dir_->path(); }
  const std::string& secret_file() const { return secret_file_; }
  // Before Start(): node i tells the others to reach it at 127.0.0.1:port
  // (--advertise) while it listens on peer_port(i), e.g. to put a
  // FaultProxy in between.
  void set_advertise_port(size_t i, int port) { nodes_.at(i).advertise_port = port; }
  // The `tempfs mount` arguments that make node i a cluster member.
  std::vector<std::string> NodeArgs(size_t i) const;

  RedisServer& redis() { return *redis_; }
  bool StopRedis() { return redis_->Stop(); }
  bool StartRedis() { return redis_->Start(); }

  // SIGKILLs node i's daemon (waits until it is gone) and runs
  // `tempfs umount` on its dead mount.
  void KillNode(size_t i);
  // Mounts node i again: same node id, store, mount point and peer port
  // (plus `more_args` this once).
  bool RestartNode(size_t i, const std::vector<std::string>& more_args = {});

  // The data file of `ino` in node i's store (STORE/data/XX/INO16HEX).
  std::string DataFile(size_t i, uint64_t ino) const;
  // The whole daemon log of node i (STORE/tempfs.log).
  std::string Log(size_t i) const;
  // Lines of node i's log that contain `needle`.
  size_t CountInLog(size_t i, const std::string& needle) const;
  // Log tails of every node and of Redis, for failure messages.
  std::string Diagnostics(size_t max_bytes_each = 2500) const;

 private:
  struct Node {
    std::string name;
    std::string dir;    // TempfsMount's dir: holds mnt/ (and store/ unless tmpfs)
    std::string store;  // "" until Start(), then absolute
    int peer_port = 0;
    int advertise_port = 0;  // 0: peer_port
    std::unique_ptr<TempfsMount> mount;
  };
  bool MountTmpfs();

  ClusterOptions options_;
  std::unique_ptr<TempDir> dir_;
  std::string secret_file_;
  std::string tmpfs_dir_;
  std::unique_ptr<RedisServer> redis_;
  std::vector<Node> nodes_;
};

}  // namespace tempfs::testing

#endif  // TEMPFS_TESTS_SUPPORT_CLUSTER_FIXTURE_H_
