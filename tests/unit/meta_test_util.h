// Helpers shared by the unit tests of the metadata engines, the store and the
// VFS: private temp dirs, the metadata engines under test (with a private
// Redis for the Redis engine), and a complete, comparable dump of a namespace.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/status.h"
#include "meta/meta_engine.h"
#include "meta/redis_client.h"
#include "meta/types.h"

namespace tempfs::testutil {

// A private directory "$TMPDIR/tempfs-unit-<tag>-XXXXXX", removed recursively
// by the destructor (so also when the test failed or threw).
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "t") {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/tempfs-unit-" + tag + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << tmpl << ": " << strerror(errno);
      return;
    }
    path_ = buf.data();
  }
  ~TempDir() { Remove(); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  void Remove() {
    if (path_.empty()) return;
    nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) {
          ::remove(p);
          return 0;
        },
        32,
        FTW_DEPTH | FTW_PHYS);
    path_.clear();
  }

 private:
  std::string path_;
};

inline bool PathExists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

// ---------------------------------------------------------------------------
// A Redis server for the Redis engine's tests: $TEMPFS_TEST_REDIS
// (redis://HOST:PORT/DB, a database the tests may wipe; not for parallel
// runs), else a private redis-server started on a free port the first time a
// test needs it and killed when the test program exits (or dies: it gets
// SIGKILL with its parent). Tests skip when neither is available.

class TestRedis {
 public:
  static TestRedis& Get() {
    static TestRedis instance;
    return instance;
  }
  // "" when usable, else why not.
  const std::string& unavailable() const { return unavailable_; }
  const std::string& uri() const { return uri_; }
  // Empties the database.
  void Wipe() {
    auto addr = RedisAddress::Parse(uri_);
    if (!addr.ok()) return;
    RedisClient c(*addr, std::chrono::seconds(5));
    auto r = c.Command({"FLUSHDB"});
    EXPECT_TRUE(r.ok() && r->type != RedisValue::kError) << "FLUSHDB on " << uri_;
  }
  ~TestRedis() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

 private:
  TestRedis() {
    if (const char* env = getenv("TEMPFS_TEST_REDIS"); env != nullptr && *env != '\0') {
      uri_ = env;
      if (!Ping()) unavailable_ = "no Redis at TEMPFS_TEST_REDIS=" + uri_;
      return;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
      if (StartPrivate()) return;
    }
    if (unavailable_.empty()) unavailable_ = "could not start a private redis-server";
  }
  bool Ping() {
    auto addr = RedisAddress::Parse(uri_);
    if (!addr.ok()) return false;
    RedisClient c(*addr, std::chrono::milliseconds(200));
    auto r = c.Command({"PING"});
    return r.ok() && r->type != RedisValue::kError;
  }
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
      port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
  }
  bool StartPrivate() {
    int port = FreePort();
    if (port <= 0) return false;
    std::string ports = std::to_string(port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
      }
      execlp("redis-server", "redis-server", "--port", ports.c_str(), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", "/tmp", "--daemonize", "no", "--protected-mode", "no",
             static_cast<char*>(nullptr));
      _exit(127);
    }
    uri_ = "redis://127.0.0.1:" + ports + "/0";
    for (int i = 0; i < 500; i++) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        unavailable_ = WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "redis-server not installed"
                                                                        : "redis-server exited at start";
        return WIFEXITED(status) && WEXITSTATUS(status) == 127;  // not installed: stop trying
      }
      if (Ping()) {
        pid_ = pid;
        unavailable_.clear();
        return true;
      }
      usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return false;
  }

  std::string uri_;
  std::string unavailable_;
  pid_t pid_ = -1;
};

// ---------------------------------------------------------------------------
// Metadata engines under test. A new engine is covered by every conformance
// and model test by adding one entry to EngineFactories().

struct EngineFactory {
  std::string name;
  // The namespace survives destroying the engine object and opening it again.
  bool persistent = true;
  // "" if the engine can be tested here, else the reason to skip.
  std::function<std::string()> unavailable = [] { return std::string(); };
  // Opens (or reopens) the engine of the store at `store_dir`.
  std::function<Result<std::unique_ptr<MetaEngine>>(const std::string& store_dir)> open;
  // Removes whatever the engine keeps outside store_dir; run before and
  // after each test.
  std::function<void()> wipe = [] {};
};

inline std::vector<EngineFactory> EngineFactories() {
  std::vector<EngineFactory> v;
  EngineFactory embedded;
  embedded.name = "embedded";
  embedded.open = [](const std::string& dir) { return OpenMetaEngine("", dir); };
  v.push_back(embedded);

  EngineFactory redis;
  redis.name = "redis";
  redis.unavailable = [] { return TestRedis::Get().unavailable(); };
  redis.open = [](const std::string& dir) { return OpenMetaEngine(TestRedis::Get().uri(), dir); };
  redis.wipe = [] { TestRedis::Get().Wipe(); };
  v.push_back(redis);
  return v;
}

// Lets googletest print a parameter by its name.
inline void PrintTo(const EngineFactory& f, std::ostream* os) { *os << f.name; }

inline std::string FactoryName(const ::testing::TestParamInfo<EngineFactory>& info) { return info.param.name; }

// "ENOENT" rather than 2; "OK" for 0.
inline std::string ErrName(int e) {
  if (e == 0) return "OK";
  const char* n = strerrorname_np(e);
  return n != nullptr ? n : std::to_string(e);
}

// Checks the errno of a Status or Result by name; takes a trailing << message.
#define EXPECT_ERRNO(expr, want) \
  EXPECT_EQ(::tempfs::testutil::ErrName((expr).err()), ::tempfs::testutil::ErrName(want)) << #expr

// ---------------------------------------------------------------------------
// Namespace dumps.

inline std::string AttrString(const Attr& a) {
  std::ostringstream o;
  o << "{ino=" << a.ino << " mode=0" << std::oct << a.mode << std::dec << " uid=" << a.uid << " gid=" << a.gid
    << " nlink=" << a.nlink << " size=" << a.size << " rdev=" << a.rdev << " atime=" << a.atime_ns
    << " mtime=" << a.mtime_ns << " ctime=" << a.ctime_ns << " version=" << a.version << " owner=" << a.owner
    << " checksum=" << a.checksum << "}";
  return o.str();
}

struct NodeDump {
  Attr attr;
  std::string target;
  std::map<std::string, std::string> xattrs;
  std::vector<std::pair<std::string, Ino>> entries;  // directories
  bool operator==(const NodeDump& o) const {
    return AttrString(attr) == AttrString(o.attr) && target == o.target && xattrs == o.xattrs &&
           entries == o.entries;
  }
};

// Every inode reachable from the root plus the orphans, keyed by inode.
struct NamespaceDump {
  std::map<Ino, NodeDump> nodes;
  std::map<std::string, Ino> paths;  // "/a/b" -> ino
  std::vector<Ino> orphans;
  uint64_t inode_count = 0;
  bool operator==(const NamespaceDump& o) const {
    return nodes == o.nodes && paths == o.paths && orphans == o.orphans && inode_count == o.inode_count;
  }
};

inline std::ostream& operator<<(std::ostream& os, const NamespaceDump& d) {
  os << "inodes=" << d.inode_count << " orphans=[";
  for (Ino i : d.orphans) os << i << " ";
  os << "]\n";
  for (auto& [p, ino] : d.paths) os << "  " << p << " -> " << ino << "\n";
  for (auto& [ino, n] : d.nodes) {
    os << "  " << ino << " " << AttrString(n.attr);
    if (!n.target.empty()) os << " -> '" << n.target << "'";
    for (auto& [k, v] : n.xattrs) os << " x[" << k << "]=" << v.size() << "B";
    os << "\n";
  }
  return os;
}

inline void DumpNode(MetaEngine& m, Ino ino, NamespaceDump& d) {
  if (d.nodes.count(ino) != 0) return;
  NodeDump n;
  auto a = m.GetAttr(ino);
  ASSERT_TRUE(a.ok()) << "GetAttr " << ino << ": " << a.status().ToString();
  n.attr = *a;
  n.attr.blocks = 0;
  if (S_ISLNK(n.attr.mode)) {
    auto t = m.ReadLink(ino);
    ASSERT_TRUE(t.ok()) << "ReadLink " << ino;
    n.target = *t;
  }
  auto xl = m.ListXattr(ino);
  ASSERT_TRUE(xl.ok());
  for (auto& k : *xl) {
    auto v = m.GetXattr(ino, k);
    ASSERT_TRUE(v.ok()) << "GetXattr " << k;
    n.xattrs[k] = *v;
  }
  if (S_ISDIR(n.attr.mode)) {
    auto es = m.ReadDir(ino);
    ASSERT_TRUE(es.ok());
    for (auto& e : *es) n.entries.emplace_back(e.name, e.ino);
  }
  d.nodes.emplace(ino, std::move(n));
}

inline NamespaceDump DumpNamespace(MetaEngine& m) {
  NamespaceDump d;
  std::vector<std::pair<std::string, Ino>> stack{{"", kRootIno}};
  while (!stack.empty()) {
    auto [path, ino] = stack.back();
    stack.pop_back();
    d.paths[path.empty() ? "/" : path] = ino;
    DumpNode(m, ino, d);
    if (::testing::Test::HasFatalFailure()) return d;
    const NodeDump& n = d.nodes.at(ino);
    if (S_ISDIR(n.attr.mode)) {
      for (auto& [name, child] : n.entries) stack.emplace_back(path + "/" + name, child);
    }
  }
  auto o = m.Orphans();
  EXPECT_TRUE(o.ok());
  if (o.ok()) {
    d.orphans = *o;
    std::sort(d.orphans.begin(), d.orphans.end());
    for (Ino ino : d.orphans) DumpNode(m, ino, d);
  }
  d.inode_count = m.InodeCount();
  return d;
}

}  // namespace tempfs::testutil
