#include "support/cluster_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "gtest/gtest.h"

namespace tempfs::testing {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kRedisStartTimeout{10000};
constexpr milliseconds kRedisStopTimeout{10000};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  return "..." + s.substr(s.size() - max_bytes);
}


bool Reaped(pid_t pid) {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

}  // namespace

std::string ClusterUnavailableReason() {
  std::string fuse = FuseUnavailableReason();
  if (!fuse.empty()) return fuse;
  const char* path = ::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && ::access((dir + "/redis-server").c_str(), X_OK) == 0) return "";
  }
  return "redis-server not found on PATH (cluster tests need it)";
}

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool RedisPing(int port, milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char ping[] = "PING\r\n";
    if (::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof ping - 1)) {
      std::string got;
      char buf[64];
      // Bounded: at most a few reads, each bounded by SO_RCVTIMEO.
      for (int i = 0; i < 8 && got.find("\r\n") == std::string::npos; ++i) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      ok = got.rfind("+PONG", 0) == 0;
    }
  }
  ::close(fd);
  return ok;
}

// ---------------------------------------------------------- RedisServer --

RedisServer::RedisServer(std::string dir, int port, bool persistent)
    : dir_(std::move(dir)), port_(port), persistent_(persistent) {
  ::mkdir(dir_.c_str(), 0700);
}

RedisServer::~RedisServer() { Stop(); }

bool RedisServer::Start() {
  if (pid_ > 0) return true;
  std::vector<std::string> argv = {
      "redis-server", "--port", std::to_string(port_), "--bind",           "127.0.0.1", "--dir", dir_, "--save", "",
      "--daemonize",  "no",     "--logfile",           dir_ + "/redis.log"};
  if (persistent_) {
    argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  } else {
    argv.insert(argv.end(), {"--appendonly", "no"});
  }
  std::vector<char*> ptrs;
  for (auto& s : argv) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  std::string out_path = dir_ + "/redis.stdout";
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Dies with the test process, whatever happens to it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (out_fd >= 0) {
      ::dup2(out_fd, 1);
      ::dup2(out_fd, 2);
    }
    ::close_range(3, ~0U, 0);
    ::execvp(ptrs[0], ptrs.data());
    ::_exit(127);
  }
  if (out_fd >= 0) ::close(out_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork for redis-server: " << strerror(errno);
    return false;
  }
  pid_ = pid;
  bool exited = false;
  bool up = WaitFor(
      [&] {
        if (Reaped(pid_)) {
          exited = true;
          return true;
        }
        return RedisPing(port_, milliseconds(200));
      },
      kRedisStartTimeout);
  if (exited || !up) {
    ADD_FAILURE() << "redis-server on port " << port_ << (exited ? " exited" : " did not answer PING") << " within "
                  << kRedisStartTimeout.count() << " ms\n"
                  << LogTail();
    if (exited)
      pid_ = -1;
    else
      Stop();
    return false;
  }
  return true;
}

bool RedisServer::Stop() {
  if (pid_ <= 0) return true;
  ::kill(pid_, SIGTERM);
  if (!WaitFor([&] { return Reaped(pid_); }, kRedisStopTimeout)) {
    std::cerr << "[cluster fixture] redis-server " << pid_ << " ignored SIGTERM; SIGKILL\n";
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return true;
}

std::string RedisServer::LogTail(size_t max_bytes) const {
  return "--- redis (port " + std::to_string(port_) + ") " + dir_ + "/redis.log ---\n" +
         Tail(ReadAll(dir_ + "/redis.log") + ReadAll(dir_ + "/redis.stdout"), max_bytes);
}

// --------------------------------------------------------- ClusterFixture --

ClusterFixture::ClusterFixture(ClusterOptions options) : options_(std::move(options)) {
  dir_ = std::make_unique<TempDir>("cluster");
  std::set<int> used;
  auto fresh_port = [&] {
    // Bounded: a port the kernel hands out twice in a row is just skipped.
    for (int i = 0; i < 50; ++i) {
      int p = FreeLoopbackPort();
      if (p > 0 && used.insert(p).second) return p;
    }
    return 0;
  };
  redis_ = std::make_unique<RedisServer>(dir_->path() + "/redis", fresh_port(), options_.persistent_redis);
  for (int i = 0; i < options_.nodes; ++i) {
    Node n;
    n.name = std::string(1, static_cast<char>('A' + i));
    n.dir = dir_->path() + "/" + n.name;
    n.peer_port = fresh_port();
    nodes_.push_back(std::move(n));
  }
}

ClusterFixture::~ClusterFixture() {
  // Nodes first (their daemons use the stores and Redis), then Redis, then
  // the tmpfs under the stores; ~TempDir removes the rest.
  for (auto& n : nodes_) n.mount.reset();
  if (redis_) redis_->Stop();
  if (!tmpfs_dir_.empty()) {
    for (int i = 0; i < 4 && IsMountPoint(tmpfs_dir_); ++i) ::umount2(tmpfs_dir_.c_str(), MNT_DETACH);
  }
  dir_.reset();
}

bool ClusterFixture::MountTmpfs() {
  tmpfs_dir_ = dir_->path() + "/tmpfs";
  if (::mkdir(tmpfs_dir_.c_str(), 0755) != 0) {
    ADD_FAILURE() << "mkdir " << tmpfs_dir_ << ": " << strerror(errno);
    return false;
  }
  std::string opts = "size=" + options_.tmpfs_size + ",mode=0755";
  if (::mount("tempfs-test-stores", tmpfs_dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
    ADD_FAILURE() << "mount tmpfs on " << tmpfs_dir_ << ": " << strerror(errno);
    return false;
  }
  return true;
}

std::vector<std::string> ClusterFixture::NodeArgs(size_t i) const {
  const Node& n = nodes_.at(i);
  std::vector<std::string> args = {"--meta",          redis_->uri(),
                                   "--node-id",       n.name,
                                   "--listen",        "127.0.0.1:" + std::to_string(n.peer_port),
                                   "--secret-file",   secret_file_,
                                   "--peer-timeout",  options_.peer_timeout,
                                   "--cache-timeout", options_.cache_timeout};
  if (n.advertise_port != 0) {
    args.push_back("--advertise");
    args.push_back("127.0.0.1:" + std::to_string(n.advertise_port));
  }
  args.insert(args.end(), options_.extra_mount_args.begin(), options_.extra_mount_args.end());
  return args;
}

bool ClusterFixture::Start() {
  if (redis_->port() <= 0) {
    ADD_FAILURE() << "no free loopback port for redis";
    return false;
  }
  for (auto& n : nodes_) {
    if (n.peer_port <= 0) {
      ADD_FAILURE() << "no free loopback port for node " << n.name;
      return false;
    }
  }
  // The cluster secret: 32 random bytes as hex, mode 0600.
  secret_file_ = dir_->path() + "/secret";
  {
    std::string raw(32, '\0');
    if (::getrandom(raw.data(), raw.size(), 0) != static_cast<ssize_t>(raw.size())) {
      ADD_FAILURE() << "getrandom: " << strerror(errno);
      return false;
    }
    std::string text = ToHex(raw) + "\n";
    int fd = ::open(secret_file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && ::fchmod(fd, 0600) == 0 &&
              ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    if (fd >= 0) ::close(fd);
    if (!ok) {
      ADD_FAILURE() << "writing " << secret_file_ << ": " << strerror(errno);
      return false;
    }
  }
  if (!options_.tmpfs_size.empty() && !MountTmpfs()) return false;
  if (!redis_->Start()) return false;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (::mkdir(n.dir.c_str(), 0755) != 0 && errno != EEXIST) {
      ADD_FAILURE() << "mkdir " << n.dir << ": " << strerror(errno);
      return false;
    }
    std::string store;
    if (!tmpfs_dir_.empty()) {
      store = tmpfs_dir_ + "/" + n.name + "-store";
      if (::mkdir(store.c_str(), 0755) != 0) {
        ADD_FAILURE() << "mkdir " << store << ": " << strerror(errno);
        return false;
      }
    }
    n.mount = TempfsMount::Start(n.dir, NodeArgs(i), store);
    if (n.mount == nullptr) {
      ADD_FAILURE() << "node " << n.name << " did not mount\n" << Diagnostics();
      return false;
    }
    n.store = n.mount->store();
  }
  return true;
}

std::string ClusterFixture::mnt(size_t i) const {
  const Node& n = nodes_.at(i);
  return n.mount ? n.mount->mnt() : n.dir + "/mnt";
}

void ClusterFixture::KillNode(size_t i) {
  Node& n = nodes_.at(i);
  if (!n.mount) {
    ADD_FAILURE() << "KillNode(" << n.name << "): not started";
    return;
  }
  n.mount->KillDaemon(SIGKILL);
  CommandResult r = n.mount->Unmount();
  if (r.exit_code != 0) {
    ADD_FAILURE() << "tempfs umount of node " << n.name << "'s dead mount exited " << r.exit_code << ": " << r.err;
  }
}

bool ClusterFixture::RestartNode(size_t i, const std::vector<std::string>& more_args) {
  Node& n = nodes_.at(i);
  if (!n.mount) {
    ADD_FAILURE() << "RestartNode(" << n.name << "): not started";
    return false;
  }
  if (!n.mount->Remount(more_args)) {
    ADD_FAILURE() << "node " << n.name << " did not mount again\n" << Diagnostics();
    return false;
  }
  return true;
}

std::string ClusterFixture::DataFile(size_t i, uint64_t ino) const {
  char buf[64];
  snprintf(buf, sizeof buf, "%02x/%016llx", static_cast<unsigned>(ino & 0xff), static_cast<unsigned long long>(ino));
  return nodes_.at(i).store + "/data/" + buf;
}

std::string ClusterFixture::Log(size_t i) const { return ReadAll(nodes_.at(i).store + "/tempfs.log"); }

size_t ClusterFixture::CountInLog(size_t i, const std::string& needle) const {
  std::istringstream in(Log(i));
  std::string line;
  size_t count = 0;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) ++count;
  }
  return count;
}

std::string ClusterFixture::Diagnostics(size_t max_bytes_each) const {
  std::string out;
  for (const auto& n : nodes_) {
    out += "=== node " + n.name + " (peer port " + std::to_string(n.peer_port) + ") ===\n";
    if (n.mount)
      out += n.mount->LogTail(max_bytes_each) + "\n";
    else
      out += "(not mounted)\n";
  }
  if (redis_) out += redis_->LogTail(max_bytes_each) + "\n";
  return out;
}

}  // namespace tempfs::testing
