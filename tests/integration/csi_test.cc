// The CSI node plugin (`tempfs csi`) driven as kubelet drives it, on a real
// tempfs mount with real bind mounts: registration (GetPluginInfo,
// NodeGetInfo), one volume published for two "pods" at two target paths with
// the three sharing modes between them, isolation from other volumes,
// cleanup and retention at unpublish, a dead daemon under a published volume,
// recovery after a daemon restart, a plugin restart, malformed requests
// answered with the spec's codes, and the faults of issue 10: unpublish never
// touching what publish did not make, targets confined to kubelet's
// directory and never reached through a symlink, bad capacities refused. Each "pod" is a forked process in its own
// mount namespace whose only way to tempfs is its target path.

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "csi/names.h"
#include "csi/target_dir.h"
#include "support/csi_client.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

namespace pb = ::csi::v1;
using std::chrono::milliseconds;

constexpr milliseconds kStep{30000};      // one step between two pods
constexpr milliseconds kPodLimit{90000};  // a whole pod scenario
constexpr milliseconds kSettle{15000};    // the plugin's maintenance to act

// ---------------------------------------------------------------------------
// Pure helpers of the plugin (names.h).

TEST(CsiNames, DnsLabels) {
  EXPECT_TRUE(csi::CheckDnsLabel("f", "a").ok());
  EXPECT_TRUE(csi::CheckDnsLabel("f", "team-a-2").ok());
  EXPECT_TRUE(csi::CheckDnsLabel("f", std::string(63, 'x')).ok());
  for (std::string bad : {std::string(""), std::string(".."), std::string("."), std::string("../x"), std::string("a/b"),
                          std::string("a\0b", 3), std::string(64, 'x'), std::string("-a"), std::string("a-"),
                          std::string("A"), std::string("a_b"), std::string("a b"), std::string("a\n")}) {
    Status st = csi::CheckDnsLabel("f", bad);
    EXPECT_EQ(st.err(), EINVAL) << "accepted " << bad;
  }
  EXPECT_TRUE(csi::CheckVolumeId("csi-0123abcd").ok());
  EXPECT_TRUE(csi::CheckVolumeId("pv_Data.1").ok());
  EXPECT_EQ(csi::CheckVolumeId(".hidden").err(), EINVAL);
  EXPECT_EQ(csi::CheckVolumeId("..").err(), EINVAL);
  EXPECT_EQ(csi::CheckVolumeId("a/b").err(), EINVAL);
  EXPECT_EQ(csi::CheckVolumeId(std::string(129, 'a')).err(), EINVAL);
  EXPECT_TRUE(csi::CheckNodeId("node-1.example").ok());
  EXPECT_EQ(csi::CheckNodeId("node/1").err(), EINVAL);
}

TEST(CsiNames, Quantities) {
  EXPECT_EQ(*csi::ParseQuantity("1"), 1u);
  EXPECT_EQ(*csi::ParseQuantity("1000"), 1000u);
  EXPECT_EQ(*csi::ParseQuantity("0.5Ki"), 512u);
  EXPECT_EQ(*csi::ParseQuantity("1.000Ki"), 1024u);
  EXPECT_EQ(*csi::ParseQuantity("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(*csi::ParseQuantity("1Ki"), 1024u);
  EXPECT_EQ(*csi::ParseQuantity("64Mi"), 64u << 20);
  EXPECT_EQ(*csi::ParseQuantity("1Gi"), 1u << 30);
  EXPECT_EQ(*csi::ParseQuantity("1.5Gi"), 3u << 29);
  EXPECT_EQ(*csi::ParseQuantity("2G"), 2000000000u);
  EXPECT_EQ(*csi::ParseQuantity("100k"), 100000u);
  // Not a positive whole number of bytes: never "no limit".
  for (const char* bad : {"", "Gi", "1 Gi", "1gi", "-1", "1Zi", "99999999999Ei", "1..2", "0", "0.0", "0Gi", "0.5",
                          "1.5", "1.0001Ki", "abc", "+1", "18446744073709551616", "16Ei"}) {
    EXPECT_EQ(csi::ParseQuantity(bad).err(), EINVAL) << bad;
  }
}

TEST(CsiNames, Retention) {
  using K = csi::Retention::Kind;
  EXPECT_EQ(csi::ParseRetention("delete")->kind, K::kDelete);
  EXPECT_EQ(csi::ParseRetention("keep")->kind, K::kKeep);
  EXPECT_EQ(*csi::ParseRetention("90s"), (csi::Retention{K::kKeepFor, 90}));
  EXPECT_EQ(*csi::ParseRetention("30m"), (csi::Retention{K::kKeepFor, 1800}));
  EXPECT_EQ(*csi::ParseRetention("1h"), (csi::Retention{K::kKeepFor, 3600}));
  EXPECT_EQ(*csi::ParseRetention("7d"), (csi::Retention{K::kKeepFor, 7 * 86400}));
  for (const char* bad : {"", "forever", "0s", "1w", "h", "-1h", "1.5h", "Delete"}) {
    EXPECT_EQ(csi::ParseRetention(bad).err(), EINVAL) << bad;
  }
}

// Publish targets (target_dir.h): confined to kubelet's directory, by text.
TEST(CsiTargets, ConfinedToKubeletDir) {
  TempDir dir("csi-confine");
  const std::string k = dir.path() + "/kubelet", link = dir.path() + "/kubelet-link";
  ASSERT_EQ(mkdir(k.c_str(), 0755), 0);
  ASSERT_EQ(symlink(k.c_str(), link.c_str()), 0);
  csi::KubeletDir kubelet(k);
  EXPECT_EQ(*kubelet.Confine("t", k + "/pods/u/mount"), k + "/pods/u/mount");
  EXPECT_EQ(*kubelet.Confine("t", k + "//pods/./u/mount/"), k + "/pods/u/mount");
  for (const std::string& bad :
       {k, k + "/", k + "/..", k + "/pods/../../x", k + "/pods/u/../../../etc", k + "-other/pods/u", dir.path() + "/x",
        std::string("/etc"), std::string("/"), std::string("pods/u"), std::string("")}) {
    EXPECT_EQ(kubelet.Confine("t", bad).err(), EINVAL) << bad;
  }
  // Kubelet may name targets by the configured path or by its real path;
  // both are confined and named alike.
  csi::KubeletDir by_link(link);
  EXPECT_EQ(*by_link.Confine("t", link + "/pods/u/mount"), k + "/pods/u/mount");
  EXPECT_EQ(*by_link.Confine("t", k + "/pods/u/mount"), k + "/pods/u/mount");
  EXPECT_EQ(by_link.Confine("t", dir.path() + "/x").err(), EINVAL);
}

TEST(CsiTargets, ParentsAreNeverSymlinks) {
  TempDir dir("csi-parents");
  const std::string k = dir.path() + "/kubelet", decoy = dir.path() + "/decoy";
  ASSERT_EQ(mkdir(k.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(decoy.c_str(), 0755), 0);
  csi::KubeletDir kubelet(k);
  // Missing parents: ENOENT, or created (without following anything).
  EXPECT_EQ(kubelet.OpenParent(k + "/pods/u/mount", false, 0750).err(), ENOENT);
  auto made = kubelet.OpenParent(k + "/pods/u/mount", true, 0750);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  struct stat st {};
  ASSERT_EQ(stat((k + "/pods/u").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  // A symlink anywhere on the way, to a directory inside or outside.
  ASSERT_EQ(symlink(decoy.c_str(), (k + "/pods/out").c_str()), 0);
  ASSERT_EQ(symlink((k + "/pods/u").c_str(), (k + "/pods/in").c_str()), 0);
  ASSERT_EQ(symlink(decoy.c_str(), (k + "/linked").c_str()), 0);
  for (const std::string& t :
       {k + "/pods/out/mount", k + "/pods/in/mount", k + "/pods/out/a/b/mount", k + "/linked/pods/mount"}) {
    EXPECT_EQ(kubelet.OpenParent(t, true, 0750).err(), EINVAL) << t;
  }
  // A file on the way.
  ASSERT_EQ(close(open((k + "/pods/file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  EXPECT_EQ(kubelet.OpenParent(k + "/pods/file/mount", true, 0750).err(), EINVAL);
  DIR* d = opendir(decoy.c_str());
  ASSERT_NE(d, nullptr);
  int entries = 0;
  while (dirent* e = readdir(d)) entries += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
  closedir(d);
  EXPECT_EQ(entries, 0) << "directories were created through a symlink";
  // The target itself: a symlink or a file is refused, a directory opened.
  auto parent = kubelet.OpenParent(k + "/pods/x", false, 0);
  ASSERT_TRUE(parent.ok());
  EXPECT_EQ(csi::OpenTargetAt(parent->get(), "out", "out").err(), EINVAL);
  EXPECT_EQ(csi::OpenTargetAt(parent->get(), "file", "file").err(), EINVAL);
  EXPECT_EQ(csi::OpenTargetAt(parent->get(), "none", "none").err(), ENOENT);
  EXPECT_TRUE(csi::OpenTargetAt(parent->get(), "u", "u").ok());
}

// ---------------------------------------------------------------------------
// Pods: forked processes, each in its own mount namespace, talking over pipes.

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool Exists(const std::string& p) {
  struct stat st {};
  return lstat(p.c_str(), &st) == 0;
}

// A directory tree as text, one line per entry (type, size or symlink
// target, whether something is mounted on it), never following a symlink:
// equal listings mean nothing there was touched.
std::string Listing(const std::string& root) {
  std::vector<std::string> lines;
  std::vector<std::string> stack = {root};
  while (!stack.empty()) {
    const std::string p = stack.back();
    stack.pop_back();
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) {
      lines.push_back(p + " missing");
      continue;
    }
    std::string line = p + " mode=" + std::to_string(st.st_mode);
    const bool mounted = IsMountPoint(p);
    if (mounted) line += " MOUNTED";
    if (S_ISREG(st.st_mode)) line += " size=" + std::to_string(st.st_size);
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = readlink(p.c_str(), buf, sizeof buf);
      line += " -> " + std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
    }
    lines.push_back(line);
    if (!S_ISDIR(st.st_mode)) continue;
    DIR* d = opendir(p.c_str());
    if (d == nullptr) continue;
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") stack.push_back(p + "/" + n);
    }
    closedir(d);
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

#define POD_TRY(expr)                             \
  do {                                            \
    std::string pod_try_err = (expr);             \
    if (!pod_try_err.empty()) return pod_try_err; \
  } while (0)

std::string Pattern(uint64_t seed, size_t size) {
  std::string out(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x >> 32);
  }
  return out;
}

std::string WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("write");
    done += static_cast<size_t>(n);
  }
  return "";
}

std::string ReadPath(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string e = Errno("read " + path);
      close(fd);
      return e;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return "";
}

std::string WritePath(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create " + path);
  std::string e = WriteAll(fd, data);
  if (close(fd) != 0 && e.empty()) e = Errno("close " + path);
  return e;
}

std::string Same(const std::string& what, const std::string& got, const std::string& want) {
  if (got == want) return "";
  return what + ": got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         (got.size() == want.size() ? " (content differs)" : "");
}

// One direction each way between two pods; steps are single bytes.
class Channel {
 public:
  Channel(int in, int out) : in_(in), out_(out) {}
  std::string Send(char step) { return write(out_, &step, 1) == 1 ? "" : Errno("send"); }
  std::string Expect(char step) {
    pollfd pfd{in_, POLLIN, 0};
    int rc;
    do {
      rc = poll(&pfd, 1, static_cast<int>(kStep.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) return std::string("timed out waiting for step ") + step;
    char got = 0;
    if (read(in_, &got, 1) != 1) return std::string("peer gone before step ") + step;
    if (got != step) return std::string("expected step ") + step + ", got " + got;
    return "";
  }

 private:
  int in_, out_;
};

using PodBody = std::function<std::string(const std::string& volume, Channel& peer)>;

struct PodSpec {
  std::string target;               // the only way this pod reaches tempfs
  std::vector<std::string> detach;  // host mounts it must not see (tempfs, other targets)
  PodBody body;
};

// In the forked child: a private mount namespace (a slave of the host's, as
// a container with HostToContainer propagation) without the host's views of
// tempfs.
std::string EnterPod(const PodSpec& spec) {
  if (unshare(CLONE_NEWNS) != 0) return Errno("unshare(CLONE_NEWNS)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) return Errno("making / a slave");
  for (const std::string& d : spec.detach) {
    if (umount2(d.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      return Errno("detaching " + d + " in the pod");
    }
  }
  return "";
}

// Runs the pods concurrently (pod i talks to pod i^1) and returns each one's
// first error ("" = fine). Pods still running after kPodLimit are killed.
std::vector<std::string> RunPods(const std::vector<PodSpec>& pods) {
  const size_t n = pods.size();
  std::vector<int> to(n, -1), from(n, -1);  // to[i]: pod i reads; from[i]: pod i writes
  std::vector<int> links(2 * n, -1);
  for (size_t i = 0; i + 1 < n; i += 2) {
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) != 0 || pipe2(b, O_CLOEXEC) != 0) return std::vector<std::string>(n, "pipe failed");
    to[i] = b[0], from[i] = a[1], to[i + 1] = a[0], from[i + 1] = b[1];
  }
  std::vector<pid_t> pids(n, -1);
  std::vector<int> results(n, -1);
  for (size_t i = 0; i < n; i++) {
    int r[2];
    if (pipe2(r, O_CLOEXEC) != 0) return std::vector<std::string>(n, "pipe failed");
    pid_t pid = fork();
    if (pid == 0) {
      close(r[0]);
      std::string err = EnterPod(pods[i]);
      if (err.empty()) {
        Channel ch(to[i], from[i]);
        err = pods[i].body(pods[i].target, ch);
      }
      if (err.empty()) err = "ok";
      (void)!write(r[1], err.data(), err.size());
      _exit(0);
    }
    close(r[1]);
    pids[i] = pid;
    results[i] = r[0];
  }
  for (int fd : to)
    if (fd >= 0) close(fd);
  for (int fd : from)
    if (fd >= 0) close(fd);
  std::vector<std::string> out(n);
  const auto deadline = std::chrono::steady_clock::now() + kPodLimit;
  for (size_t i = 0; i < n; i++) {
    std::string msg;
    for (;;) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd pfd{results[i], POLLIN, 0};
      int rc = poll(&pfd, 1, std::max<int>(0, static_cast<int>(left.count())));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) {
        msg = "timed out";
        break;
      }
      char buf[1024];
      ssize_t got = read(results[i], buf, sizeof buf);
      if (got <= 0) break;
      msg.append(buf, static_cast<size_t>(got));
    }
    out[i] = msg == "ok" ? "" : (msg.empty() ? "pod died without a report" : msg);
    close(results[i]);
  }
  for (pid_t pid : pids) {
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
  }
  return out;
}

// Runs one pod alone.
std::string RunPod(const std::string& target, const std::vector<std::string>& detach,
                   std::function<std::string(const std::string&)> body) {
  PodSpec spec{target, detach, [&](const std::string& v, Channel&) { return body(v); }};
  return RunPods({spec})[0];
}

// ---- the three sharing modes, between pod A (index 0) and pod B (1) ----

constexpr size_t kFileSize = 3 << 20;
constexpr size_t kShmSize = 1 << 20;
constexpr size_t kMemfdSize = 64 << 10;

std::string FilesA(const std::string& v, Channel& peer) {
  POD_TRY(WritePath(v + "/from-a.bin", Pattern(1, kFileSize)));
  POD_TRY(peer.Send('1'));
  POD_TRY(peer.Expect('2'));
  std::string got;
  POD_TRY(ReadPath(v + "/from-b.txt", &got));
  return Same("B's file seen by A", got, "written by B");
}

std::string FilesB(const std::string& v, Channel& peer) {
  POD_TRY(peer.Expect('1'));
  std::string got;
  POD_TRY(ReadPath(v + "/from-a.bin", &got));
  POD_TRY(Same("A's file seen by B", got, Pattern(1, kFileSize)));
  POD_TRY(WritePath(v + "/from-b.txt", "written by B"));
  return peer.Send('2');
}

std::string MapShared(const std::string& path, bool create, char** map) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);
  if (fd < 0) return Errno("open " + path);
  if (create && ftruncate(fd, kShmSize) != 0) {
    close(fd);
    return Errno("ftruncate");
  }
  void* p = mmap(nullptr, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return Errno("mmap(MAP_SHARED) " + path);
  *map = static_cast<char*>(p);
  return "";
}

std::string ShmA(const std::string& v, Channel& peer) {
  char* map = nullptr;
  POD_TRY(MapShared(v + "/shm.bin", true, &map));
  POD_TRY(peer.Send('1'));
  POD_TRY(peer.Expect('2'));  // both mapped before any store
  const std::string req = Pattern(2, kShmSize);
  std::memcpy(map, req.data(), kShmSize);  // plain stores, no msync
  POD_TRY(peer.Send('3'));
  POD_TRY(peer.Expect('4'));
  POD_TRY(Same("B's stores seen by A (no msync)", std::string(map, kShmSize), Pattern(3, kShmSize)));
  POD_TRY(peer.Send('5'));
  munmap(map, kShmSize);
  return "";
}

std::string ShmB(const std::string& v, Channel& peer) {
  POD_TRY(peer.Expect('1'));
  char* map = nullptr;
  POD_TRY(MapShared(v + "/shm.bin", false, &map));
  POD_TRY(peer.Send('2'));
  POD_TRY(peer.Expect('3'));
  POD_TRY(Same("A's stores seen by B (no msync)", std::string(map, kShmSize), Pattern(2, kShmSize)));
  const std::string reply = Pattern(3, kShmSize);
  std::memcpy(map, reply.data(), kShmSize);
  POD_TRY(peer.Send('4'));
  POD_TRY(peer.Expect('5'));
  munmap(map, kShmSize);
  return "";
}

std::string UnixAddr(const std::string& path, sockaddr_un* addr) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof addr->sun_path) return "socket path too long: " + path;
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return "";
}

std::string FdA(const std::string& v, Channel& peer) {
  sockaddr_un addr;
  POD_TRY(UnixAddr(v + "/fd.sock", &addr));
  int lis = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lis < 0) return Errno("socket");
  if (bind(lis, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Errno("bind on the volume");
  if (listen(lis, 1) != 0) return Errno("listen");
  POD_TRY(peer.Send('1'));
  pollfd pfd{lis, POLLIN, 0};
  if (poll(&pfd, 1, static_cast<int>(kStep.count())) != 1) return "B did not connect";
  int conn = accept4(lis, nullptr, nullptr, SOCK_CLOEXEC);
  if (conn < 0) return Errno("accept");
  int memfd = memfd_create("csi-test", MFD_CLOEXEC);
  if (memfd < 0) return Errno("memfd_create");
  POD_TRY(WriteAll(memfd, Pattern(4, kMemfdSize)));
  int file = open((v + "/passed.bin").c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
  if (file < 0) return Errno("create passed.bin");
  POD_TRY(WriteAll(file, "from A;"));
  int fds[2] = {memfd, file};
  char byte = 'F';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  if (sendmsg(conn, &msg, MSG_NOSIGNAL) != 1) return Errno("sendmsg(SCM_RIGHTS)");
  POD_TRY(peer.Expect('2'));
  char buf[64] = {};
  ssize_t n = pread(file, buf, sizeof buf, 0);
  if (n < 0) return Errno("pread");
  return Same("passed file after B wrote through its descriptor", std::string(buf, n), "from A;from B");
}

std::string FdB(const std::string& v, Channel& peer) {
  POD_TRY(peer.Expect('1'));
  sockaddr_un addr;
  POD_TRY(UnixAddr(v + "/fd.sock", &addr));
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Errno("socket");
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Errno("connect to A's socket on the volume");
  }
  int fds[2] = {-1, -1};
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  pollfd pfd{s, POLLIN, 0};
  if (poll(&pfd, 1, static_cast<int>(kStep.count())) != 1) return "no descriptors from A";
  if (recvmsg(s, &msg, MSG_CMSG_CLOEXEC) != 1) return Errno("recvmsg");
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof fds)) {
    return "did not receive two descriptors";
  }
  std::memcpy(fds, CMSG_DATA(c), sizeof fds);
  std::string got(kMemfdSize, '\0');
  if (pread(fds[0], got.data(), kMemfdSize, 0) != static_cast<ssize_t>(kMemfdSize)) return Errno("pread memfd");
  POD_TRY(Same("memfd received from A", got, Pattern(4, kMemfdSize)));
  struct stat by_fd {
  }, by_path{};
  if (fstat(fds[1], &by_fd) != 0 || stat((v + "/passed.bin").c_str(), &by_path) != 0) return Errno("stat passed");
  if (by_fd.st_ino != by_path.st_ino || by_fd.st_dev != by_path.st_dev) {
    return "received descriptor is not the file B's own path names";
  }
  if (pwrite(fds[1], "from B", 6, 7) != 6) return Errno("pwrite through the received descriptor");
  return peer.Send('2');
}

// ---------------------------------------------------------------------------
// The fixture: a tempfs mount, the plugin, and a "kubelet pods" directory.

class CsiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TEMPFS_SKIP_IF_NO_FUSE();
    dir_ = std::make_unique<TempDir>("csi");
    pods_ = dir_->path() + "/pods";
    ASSERT_EQ(mkdir(pods_.c_str(), 0750), 0);
    ASSERT_EQ(mkdir((dir_->path() + "/fs").c_str(), 0755), 0);
    tempfs_ = TempfsMount::Start(dir_->path() + "/fs");
    ASSERT_NE(tempfs_, nullptr);
    // Decoys the plugin must never touch live outside kubelet's directory.
    outside_ = dir_->path() + "/outside";
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    plugin_ = CsiPlugin::Start(dir_->path(), tempfs_->mnt(), "node-a", {"--kubelet-dir", pods_});
    ASSERT_NE(plugin_, nullptr);
  }

  void TearDown() override {
    if (plugin_ && HasFailure()) std::cerr << plugin_->LogTail() << "\n";
    plugin_.reset();
    // Pod mounts hold the tempfs superblock: drop them before unmounting it.
    if (dir_) {
      for (const std::string& d : {pods_, outside_}) {
        for (int round = 0; round < 8; round++) {
          auto mounts = MountPointsUnder(d);
          if (mounts.empty()) break;
          for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
        }
      }
    }
    tempfs_.reset();
    dir_.reset();
  }

  // A kubelet-style target: pods/<uid>/volumes/kubernetes.io~csi/<name>/mount
  // whose parent exists (kubelet creates it) and whose last part the plugin
  // creates.
  std::string Target(const std::string& pod, const std::string& vol = "data") {
    std::string parent = pods_ + "/" + pod + "/volumes/kubernetes.io~csi/" + vol;
    EXPECT_EQ(RunCommand({"mkdir", "-p", parent}).exit_code, 0);
    return parent + "/mount";
  }

  std::string DataDir(const std::string& ns, const std::string& name) {
    return tempfs_->mnt() + "/volumes/" + ns + "/" + name;
  }

  void ExpectPublished(const pb::NodePublishVolumeRequest& req) {
    grpc::Status st = plugin_->Publish(req);
    ASSERT_TRUE(st.ok()) << Describe(st) << "\n" << plugin_->LogTail();
    EXPECT_TRUE(IsMountPoint(req.target_path())) << req.target_path();
  }

  void ExpectUnpublished(const std::string& volume_id, const std::string& target) {
    grpc::Status st = plugin_->Unpublish(volume_id, target);
    ASSERT_TRUE(st.ok()) << Describe(st) << "\n" << plugin_->LogTail();
    EXPECT_FALSE(IsMountPoint(target)) << target;
    EXPECT_FALSE(Exists(target)) << "target left behind: " << target;
  }

  grpc::StatusCode PublishCode(const pb::NodePublishVolumeRequest& req) { return plugin_->Publish(req).error_code(); }

  grpc::Status StatsOf(const std::string& volume_id, const std::string& path, pb::NodeGetVolumeStatsResponse* resp) {
    pb::NodeGetVolumeStatsRequest req;
    req.set_volume_id(volume_id);
    req.set_volume_path(path);
    return plugin_->Stats(req, resp);
  }

  // Everything under kubelet's directory and the decoys outside it, to show
  // that a request touched nothing there.
  std::string World() { return Listing(pods_) + Listing(outside_); }

  std::unique_ptr<TempDir> dir_;
  std::string pods_;     // kubelet's directory (--kubelet-dir)
  std::string outside_;  // decoys outside it
  std::unique_ptr<TempfsMount> tempfs_;
  std::unique_ptr<CsiPlugin> plugin_;
};

TEST_F(CsiTest, RegistersLikeKubelet) {
  pb::GetPluginInfoResponse info;
  ASSERT_TRUE(plugin_->GetPluginInfo(&info).ok());
  EXPECT_EQ(info.name(), csi::kDriverName);
  EXPECT_LE(info.name().size(), 63u);
  EXPECT_FALSE(info.vendor_version().empty());

  pb::GetPluginCapabilitiesResponse caps;
  ASSERT_TRUE(plugin_->GetPluginCapabilities(&caps).ok());
  bool topology = false, controller = false;
  for (const auto& c : caps.capabilities()) {
    topology |= c.service().type() == pb::PluginCapability::Service::VOLUME_ACCESSIBILITY_CONSTRAINTS;
    controller |= c.service().type() == pb::PluginCapability::Service::CONTROLLER_SERVICE;
  }
  EXPECT_TRUE(topology);
  EXPECT_FALSE(controller) << "a node-only plugin must not claim the controller service";

  pb::ProbeResponse probe;
  ASSERT_TRUE(plugin_->Probe(&probe).ok());
  EXPECT_TRUE(probe.has_ready() && probe.ready().value());

  pb::NodeGetInfoResponse node;
  ASSERT_TRUE(plugin_->NodeGetInfo(&node).ok());
  EXPECT_EQ(node.node_id(), "node-a");
  EXPECT_GE(node.max_volumes_per_node(), 0);
  EXPECT_EQ(node.accessible_topology().segments().at(csi::kTopologyKey), "node-a");

  pb::NodeGetCapabilitiesResponse ncaps;
  ASSERT_TRUE(plugin_->NodeGetCapabilities(&ncaps).ok());
  bool stats = false;
  for (const auto& c : ncaps.capabilities()) {
    stats |= c.rpc().type() == pb::NodeServiceCapability::RPC::GET_VOLUME_STATS;
    EXPECT_NE(c.rpc().type(), pb::NodeServiceCapability::RPC::STAGE_UNSTAGE_VOLUME);
  }
  EXPECT_TRUE(stats);

  struct stat st {};
  ASSERT_EQ(stat(plugin_->socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the socket must be for root only";
}

TEST_F(CsiTest, TwoPodsShareOneVolume) {
  const std::string t1 = Target("pod-a"), t2 = Target("pod-b");
  ExpectPublished(InlineVolume("csi-a", t1, "team-a", {{"volume", "handoff"}}));
  ExpectPublished(InlineVolume("csi-b", t2, "team-a", {{"volume", "handoff"}}));
  // Kubelet retries: the same publish again is fine.
  ASSERT_TRUE(plugin_->Publish(InlineVolume("csi-a", t1, "team-a", {{"volume", "handoff"}})).ok());
  EXPECT_TRUE(IsMountPoint(t1));

  const std::vector<std::string> hide = {tempfs_->mnt()};
  struct Mode {
    const char* name;
    PodBody a, b;
  } modes[] = {{"files", FilesA, FilesB}, {"mmap MAP_SHARED", ShmA, ShmB}, {"SCM_RIGHTS", FdA, FdB}};
  for (const Mode& m : modes) {
    std::vector<std::string> hide_a = hide, hide_b = hide;
    hide_a.push_back(t2);
    hide_b.push_back(t1);
    auto errs = RunPods({PodSpec{t1, hide_a, m.a}, PodSpec{t2, hide_b, m.b}});
    EXPECT_EQ(errs[0], "") << m.name << ", pod A";
    EXPECT_EQ(errs[1], "") << m.name << ", pod B";
  }

  // Both targets are the volume's directory.
  struct stat s1 {
  }, s2{}, sd{};
  ASSERT_EQ(stat(t1.c_str(), &s1), 0);
  ASSERT_EQ(stat(t2.c_str(), &s2), 0);
  ASSERT_EQ(stat(DataDir("team-a", "handoff").c_str(), &sd), 0);
  EXPECT_TRUE(s1.st_ino == sd.st_ino && s2.st_ino == sd.st_ino && s1.st_dev == s2.st_dev);

  pb::NodeGetVolumeStatsResponse stats;
  grpc::Status st = StatsOf("csi-a", t1, &stats);
  ASSERT_TRUE(st.ok()) << Describe(st);
  ASSERT_EQ(stats.usage_size(), 2);
  EXPECT_EQ(stats.usage(0).unit(), pb::VolumeUsage::BYTES);
  EXPECT_GE(stats.usage(0).used(), static_cast<int64_t>(kFileSize));
  EXPECT_GT(stats.usage(0).total(), 0);
  EXPECT_EQ(stats.usage(1).unit(), pb::VolumeUsage::INODES);
  EXPECT_GE(stats.usage(1).used(), 5);  // the root, from-a, from-b, shm, fd.sock, passed
  EXPECT_FALSE(stats.volume_condition().abnormal());

  // The operator's view: both pods use the volume on this node.
  CommandResult admin = RunCommand({TEMPFS_ADMIN_BIN, "--mount", tempfs_->mnt(), "--json", "volumes"});
  ASSERT_EQ(admin.exit_code, 0) << admin.err;
  auto vols = Json::Parse(admin.out);
  ASSERT_TRUE(vols.ok()) << admin.out;
  ASSERT_EQ(vols->Find("volumes")->size(), 1u) << admin.out;
  const Json& v = vols->Find("volumes")->items()[0];
  EXPECT_EQ(v.Find("volume")->as_string(), "team-a/handoff");
  std::set<std::string> pods;
  for (const Json& p : v.Find("pods_here")->items()) pods.insert(p.as_string());
  EXPECT_EQ(pods, (std::set<std::string>{"team-a/pod-csi-a", "team-a/pod-csi-b"})) << admin.out;

  ExpectUnpublished("csi-a", t1);
  ExpectUnpublished("csi-b", t2);
}

TEST_F(CsiTest, OtherVolumesAreInvisible) {
  const std::string mine = Target("pod-a"), same_name_other_ns = Target("pod-x"), other_name = Target("pod-y");
  ExpectPublished(InlineVolume("csi-a", mine, "team-a", {{"volume", "handoff"}}));
  ExpectPublished(InlineVolume("csi-x", same_name_other_ns, "team-b", {{"volume", "handoff"}}));
  ExpectPublished(InlineVolume("csi-y", other_name, "team-a", {{"volume", "other"}}));
  // An inline volume without a name is private to its volume id.
  const std::string unnamed = Target("pod-z");
  ExpectPublished(InlineVolume("csi-z", unnamed, "team-a", {}));
  ASSERT_EQ(WritePath(same_name_other_ns + "/secret-b", "team-b's data"), "");
  ASSERT_EQ(WritePath(other_name + "/secret-other", "another volume's data"), "");
  ASSERT_EQ(WritePath(unnamed + "/secret-z", "a private volume's data"), "");
  ASSERT_EQ(WritePath(mine + "/mine", "mine"), "");

  // Inside the pod only `mine` leads to tempfs: walk everything reachable
  // from it, and check that ".." leaves the file system.
  std::string err =
      RunPod(mine, {tempfs_->mnt(), same_name_other_ns, other_name, unnamed}, [](const std::string& v) -> std::string {
        struct stat root {
        }, up{};
        if (stat(v.c_str(), &root) != 0 || stat((v + "/..").c_str(), &up) != 0) {
          return Errno("stat");
        }
        if (up.st_dev == root.st_dev) return "\"..\" of the volume is still on tempfs";
        std::vector<std::string> stack = {v}, seen;
        while (!stack.empty()) {
          std::string d = stack.back();
          stack.pop_back();
          DIR* dp = opendir(d.c_str());
          if (dp == nullptr) return Errno("opendir " + d);
          while (dirent* e = readdir(dp)) {
            std::string n = e->d_name;
            if (n == "." || n == "..") continue;
            seen.push_back(n);
            if (e->d_type == DT_DIR) stack.push_back(d + "/" + n);
          }
          closedir(dp);
        }
        if (seen != std::vector<std::string>{"mine"}) {
          std::string all;
          for (auto& s : seen) all += s + " ";
          return "the pod sees more than its volume: " + all;
        }
        return "";
      });
  EXPECT_EQ(err, "");
  EXPECT_FALSE(Exists(same_name_other_ns + "/mine"));
  EXPECT_FALSE(Exists(other_name + "/mine"));
  EXPECT_TRUE(Exists(DataDir("team-b", "handoff") + "/secret-b"));
  EXPECT_TRUE(Exists(DataDir("team-a", "_id/csi-z") + "/secret-z"));
}

TEST_F(CsiTest, UnpublishCleansUpAndAppliesRetention) {
  // delete: the data goes with the volume's last publication.
  const std::string d1 = Target("pod-1"), d2 = Target("pod-2");
  ExpectPublished(InlineVolume("csi-1", d1, "team-a", {{"volume", "scratch"}, {"retention", "delete"}}));
  ExpectPublished(InlineVolume("csi-2", d2, "team-a", {{"volume", "scratch"}, {"retention", "delete"}}));
  ASSERT_EQ(WritePath(d1 + "/f", "x"), "");
  ExpectUnpublished("csi-1", d1);
  EXPECT_TRUE(Exists(DataDir("team-a", "scratch") + "/f")) << "deleted while another pod uses it";
  ExpectUnpublished("csi-2", d2);
  EXPECT_FALSE(Exists(DataDir("team-a", "scratch")));
  // Unpublish again, and of something never published: still OK.
  ExpectUnpublished("csi-2", d2);
  ExpectUnpublished("csi-never", Target("pod-never"));

  // keep: the next stage finds the data.
  const std::string k1 = Target("pod-3"), k2 = Target("pod-4");
  ExpectPublished(InlineVolume("csi-3", k1, "team-a", {{"volume", "kept"}, {"retention", "keep"}}));
  ASSERT_EQ(WritePath(k1 + "/stage-1-output", "result"), "");
  ExpectUnpublished("csi-3", k1);
  EXPECT_TRUE(Exists(DataDir("team-a", "kept") + "/stage-1-output"));
  ExpectPublished(InlineVolume("csi-4", k2, "team-a", {{"volume", "kept"}, {"retention", "keep"}}));
  std::string got;
  EXPECT_EQ(ReadPath(k2 + "/stage-1-output", &got), "");
  EXPECT_EQ(got, "result");
  ExpectUnpublished("csi-4", k2);

  // A duration: kept that long after the last publication, then deleted.
  const std::string b1 = Target("pod-5");
  ExpectPublished(InlineVolume("csi-5", b1, "team-a", {{"volume", "brief"}, {"retention", "2s"}}));
  ASSERT_EQ(WritePath(b1 + "/f", "x"), "");
  ExpectUnpublished("csi-5", b1);
  EXPECT_TRUE(Exists(DataDir("team-a", "brief") + "/f"));
  EXPECT_TRUE(WaitFor([&] { return !Exists(DataDir("team-a", "brief")); }, kSettle))
      << "an expired volume was not deleted\n"
      << plugin_->LogTail();

  // Defaults: inline ephemeral volumes are deleted, PersistentVolumes kept.
  const std::string e1 = Target("pod-6"), p1 = Target("pod-7");
  ExpectPublished(InlineVolume("csi-6", e1, "team-a", {{"volume", "eph"}}));
  ExpectUnpublished("csi-6", e1);
  EXPECT_FALSE(Exists(DataDir("team-a", "eph")));
  auto pv = InlineVolume("pv-data", p1, "team-a", {{"volume", "dataset"}});
  pv.mutable_volume_context()->erase("csi.storage.k8s.io/ephemeral");
  ExpectPublished(pv);
  ASSERT_EQ(WritePath(p1 + "/f", "x"), "");
  ExpectUnpublished("pv-data", p1);
  EXPECT_TRUE(Exists(DataDir("team-a", "dataset") + "/f"));
}

TEST_F(CsiTest, ReadonlyAndConflictingPublishes) {
  const std::string rw = Target("pod-rw"), ro = Target("pod-ro");
  ExpectPublished(InlineVolume("csi-rw", rw, "team-a", {{"volume", "v"}}));
  ExpectPublished(InlineVolume("csi-ro", ro, "team-a", {{"volume", "v"}}, /*readonly=*/true));
  struct statvfs rw_fs {
  }, ro_fs{};
  ASSERT_EQ(statvfs(rw.c_str(), &rw_fs), 0);
  ASSERT_EQ(statvfs(ro.c_str(), &ro_fs), 0);
  EXPECT_EQ(rw_fs.f_flag & (ST_NOSUID | ST_NODEV | ST_RDONLY), ST_NOSUID | ST_NODEV);
  EXPECT_EQ(ro_fs.f_flag & (ST_NOSUID | ST_NODEV | ST_RDONLY), ST_NOSUID | ST_NODEV | ST_RDONLY);
  ASSERT_EQ(WritePath(rw + "/by-writer", "w"), "");
  std::string got;
  EXPECT_EQ(ReadPath(ro + "/by-writer", &got), "");
  EXPECT_EQ(got, "w");
  errno = 0;
  EXPECT_LT(open((ro + "/nope").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  // The same target with other arguments: ALREADY_EXISTS, per the spec.
  EXPECT_EQ(PublishCode(InlineVolume("csi-ro", ro, "team-a", {{"volume", "v"}}, false)),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(PublishCode(InlineVolume("csi-other", ro, "team-a", {{"volume", "w"}})), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(PublishCode(InlineVolume("csi-ro", ro, "team-a", {{"volume", "v"}}, true)), grpc::StatusCode::OK);
  ExpectUnpublished("csi-ro", ro);
  ExpectUnpublished("csi-rw", rw);
}

// A pod body run as `uid` (and gid `uid`, no supplementary groups).
std::function<std::string(const std::string&)> AsUser(uid_t uid, std::function<std::string(const std::string&)> body) {
  return [uid, body](const std::string& v) -> std::string {
    // In a container the volume is the mount point itself; here its
    // parents are the test's private directory, so enter it first.
    if (chdir(v.c_str()) != 0) return Errno("chdir " + v);
    if (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0) return Errno("dropping root");
    return body(".");
  };
}

// Writes `total` bytes to a new file at `path` in 64 KiB writes; `*written`
// says how many made it. "" when all did, else the first error.
std::string Fill(const std::string& path, size_t total, size_t* written) {
  *written = 0;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create " + path);
  const std::string chunk = Pattern(5, 64 << 10);
  std::string err;
  while (*written < total && err.empty()) {
    ssize_t n = write(fd, chunk.data(), std::min(chunk.size(), total - *written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) err = Errno("write");
    else *written += static_cast<size_t>(n);
  }
  if (close(fd) != 0 && err.empty()) err = Errno("close " + path);
  return err;
}

// In a pod of a volume with a 1 MiB capacity: writing 2 MiB stops with
// ENOSPC after about 1 MiB, df shows the capacity, the limit cannot be
// changed, and deleting the file gives the room back.
std::string FillCappedVolume(const std::string& v) {
  constexpr size_t kCap = 1 << 20;
  size_t written = 0;
  std::string err = Fill(v + "/big", 2 * kCap, &written);
  if (err.find(std::strerror(ENOSPC)) == std::string::npos) return "2 MiB into 1 MiB: want ENOSPC, got \"" + err + "\"";
  if (written > kCap || written < kCap - (64 << 10)) return "stopped after " + std::to_string(written) + " bytes";
  struct statvfs sv {};
  if (statvfs(v.c_str(), &sv) != 0) return Errno("statvfs");
  if (sv.f_blocks * sv.f_frsize != kCap || sv.f_bavail > (64 << 10) / sv.f_frsize) {
    return "df in the pod: " + std::to_string(sv.f_blocks * sv.f_frsize) + " bytes, " +
           std::to_string(sv.f_bavail * sv.f_frsize) + " free";
  }
  if (getuid() != 0 && setxattr(v.c_str(), "trusted.tempfs.capacity", "999999999", 9, 0) != -1) {
    return "an unprivileged pod lifted its capacity";
  }
  if (unlink((v + "/big").c_str()) != 0) return Errno("unlink big");
  return Fill(v + "/again", kCap / 2, &written);
}

// 3 MiB, more than the capped volumes take.
std::string FillUnlimited(const std::string& v) {
  size_t written = 0;
  return Fill(v + "/big", 3 << 20, &written);
}

TEST_F(CsiTest, CapacityIsEnforcedInPods) {
  const std::string capped = Target("pod-a"), other = Target("pod-b"), as_user = Target("pod-c");
  ExpectPublished(InlineVolume("csi-a", capped, "team-a", {{"volume", "small"}, {"capacity", "1Mi"}}));
  ExpectPublished(InlineVolume("csi-b", other, "team-a", {{"volume", "free"}}));
  ExpectPublished(InlineVolume("csi-c", as_user, "team-a", {{"volume", "small-too"}, {"capacity", "1Mi"}}));
  const std::string mnt = tempfs_->mnt();
  EXPECT_EQ(RunPod(capped, {mnt, other, as_user}, FillCappedVolume), "");
  EXPECT_EQ(RunPod(as_user, {mnt, capped, other}, AsUser(1000, FillCappedVolume)), "");
  // The volume without a capacity is not limited (and still uses passthrough,
  // see data_path_test.cc).
  EXPECT_EQ(RunPod(other, {mnt, capped, as_user}, FillUnlimited), "");

  // Publishing the volume again with a larger capacity raises its limit.
  const std::string again = Target("pod-d");
  ExpectPublished(InlineVolume("csi-d", again, "team-a", {{"volume", "small"}, {"capacity", "4Mi"}}));
  EXPECT_EQ(RunPod(capped, {mnt, other, as_user, again}, FillUnlimited), "");
  ExpectUnpublished("csi-d", again);
  ExpectUnpublished("csi-a", capped);
  ExpectUnpublished("csi-b", other);
  ExpectUnpublished("csi-c", as_user);
}

TEST_F(CsiTest, NonRootPodsCanUseTheirVolume) {
  const std::string t1 = Target("pod-a"), t2 = Target("pod-b");
  ExpectPublished(InlineVolume("csi-a", t1, "team-a", {{"volume", "users"}}));
  ExpectPublished(InlineVolume("csi-b", t2, "team-a", {{"volume", "users"}}));
  // Like emptyDir, a new volume is open to every user of the pods that
  // share it; kubelet's fsGroup handling (fsGroupPolicy: File) narrows it.
  struct stat st {};
  ASSERT_EQ(stat(t1.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0777u);
  auto as_user = AsUser;
  EXPECT_EQ(RunPod(t1, {tempfs_->mnt(), t2},
                   as_user(1000, [](const std::string& v) { return WritePath(v + "/by-1000", "from uid 1000"); })),
            "");
  EXPECT_EQ(RunPod(t2, {tempfs_->mnt(), t1},
                   as_user(1001,
                           [](const std::string& v) -> std::string {
                             std::string got;
                             POD_TRY(ReadPath(v + "/by-1000", &got));
                             POD_TRY(Same("uid 1000's file read by uid 1001", got, "from uid 1000"));
                             return WritePath(v + "/by-1001", "from uid 1001");
                           })),
            "");
  ASSERT_EQ(stat((t1 + "/by-1001").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1001u);
  ExpectUnpublished("csi-a", t1);
  ExpectUnpublished("csi-b", t2);
}

TEST_F(CsiTest, UnpublishSucceedsOnDeadMount) {
  const std::string t = Target("pod-a");
  ExpectPublished(InlineVolume("csi-a", t, "team-a", {{"volume", "doomed"}}));
  ASSERT_EQ(WritePath(t + "/f", "x"), "");
  tempfs_->KillDaemon(SIGKILL);
  struct stat st {};
  ASSERT_NE(stat(t.c_str(), &st), 0);
  ASSERT_TRUE(errno == ENOTCONN || errno == ECONNABORTED)
      << "expected a dead FUSE mount at the target, got " << strerror(errno);
  pb::ProbeResponse probe;
  ASSERT_TRUE(plugin_->Probe(&probe).ok());
  EXPECT_FALSE(probe.ready().value()) << "ready while the tempfs daemon is dead";
  EXPECT_EQ(PublishCode(InlineVolume("csi-b", Target("pod-b"), "team-a", {{"volume", "doomed"}})),
            grpc::StatusCode::UNAVAILABLE);

  ExpectUnpublished("csi-a", t);

  // When the mount serves again, the deferred release happens: the last
  // publication of an ephemeral volume is gone, so is its data.
  ASSERT_EQ(tempfs_->Unmount().exit_code, 0);
  ASSERT_TRUE(tempfs_->Remount());
  EXPECT_TRUE(WaitFor([&] { return !Exists(DataDir("team-a", "doomed")); }, kSettle))
      << "deferred release did not happen\n"
      << plugin_->LogTail();
  EXPECT_TRUE(WaitFor(
      [&] {
        pb::ProbeResponse p;
        return plugin_->Probe(&p).ok() && p.ready().value();
      },
      kSettle));
}

// Outside tester: a target whose parent is a mount point of something else
// publishes and unpublishes like any other, and that mount is left alone.
TEST_F(CsiTest, TargetUnderAForeignMount) {
  const std::string t = Target("pod-pm");
  const std::string parent = t.substr(0, t.rfind('/'));
  ASSERT_EQ(mount("tmpfs", parent.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  ASSERT_EQ(WritePath(parent + "/theirs", "t"), "");
  ExpectPublished(InlineVolume("csi-pm", t, "team-a", {{"volume", "pm"}, {"retention", "keep"}}));
  ASSERT_EQ(WritePath(t + "/f", "x"), "");
  ExpectUnpublished("csi-pm", t);
  EXPECT_TRUE(IsMountPoint(parent));
  EXPECT_TRUE(Exists(parent + "/theirs"));
  EXPECT_TRUE(Exists(DataDir("team-a", "pm") + "/f"));
  ASSERT_EQ(umount2(parent.c_str(), 0), 0);
}

// Outside tester: an unpublish that names another volume than the one
// published at the target is not that publication's: OK, nothing touched
// (it took the mount down and, the volume being ephemeral, deleted its data
// while the pod still ran).
TEST_F(CsiTest, UnpublishWithAnotherVolumesIdTouchesNothing) {
  const std::string t = Target("pod-a");
  ExpectPublished(InlineVolume("csi-a", t, "team-a", {{"volume", "mine"}}));
  ASSERT_EQ(WritePath(t + "/f", "x"), "");
  const std::string before = World();
  EXPECT_TRUE(plugin_->Unpublish("csi-other", t).ok());
  EXPECT_TRUE(IsMountPoint(t)) << "unpublish with another volume's id took this one down";
  EXPECT_TRUE(Exists(DataDir("team-a", "mine") + "/f")) << "another volume's id deleted this one's data";
  EXPECT_EQ(World(), before);
  ExpectUnpublished("csi-a", t);
  EXPECT_FALSE(Exists(DataDir("team-a", "mine")));
}

// Outside tester: with the daemon dead, one of two publications of a volume
// is unpublished; when the daemon is back the other pod still has the data.
TEST_F(CsiTest, DeferredReleaseKeepsAVolumeStillPublished) {
  const std::string a = Target("pod-a"), b = Target("pod-b");
  ExpectPublished(InlineVolume("csi-a", a, "team-a", {{"volume", "two"}}));
  ExpectPublished(InlineVolume("csi-b", b, "team-a", {{"volume", "two"}}));
  ASSERT_EQ(WritePath(a + "/f", "x"), "");
  tempfs_->KillDaemon(SIGKILL);
  ExpectUnpublished("csi-a", a);
  ASSERT_EQ(tempfs_->Unmount().exit_code, 0);
  ASSERT_TRUE(tempfs_->Remount());
  EXPECT_TRUE(WaitFor(
      [&] {
        pb::ProbeResponse p;
        return plugin_->Probe(&p).ok() && p.ready().value();
      },
      kSettle));
  // Give a deferred release its chance (bounded), then look.
  WaitFor([&] { return !Exists(DataDir("team-a", "two") + "/f"); }, std::chrono::milliseconds(3000));
  EXPECT_TRUE(Exists(DataDir("team-a", "two") + "/f")) << "deleted while pod-b still has it\n" << plugin_->LogTail();
}

TEST_F(CsiTest, PodsRecoverAfterDaemonRestart) {
  // Kubelet's pods directory is a shared mount on a node, and a pod's
  // volumeMount with HostToContainer propagation is a slave of it.
  ASSERT_EQ(mount(pods_.c_str(), pods_.c_str(), nullptr, MS_BIND, nullptr), 0) << strerror(errno);
  ASSERT_EQ(mount(nullptr, pods_.c_str(), nullptr, MS_SHARED, nullptr), 0) << strerror(errno);
  const std::string t = Target("pod-a");
  ExpectPublished(InlineVolume("pv-1", t, "team-a", {{"volume", "survivor"}, {"retention", "keep"}}));
  ASSERT_EQ(WritePath(t + "/before", "written before the crash"), "");

  // The pod starts before the crash and stays through it.
  int go[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  PodSpec pod{t, {tempfs_->mnt()}, [&](const std::string& v, Channel&) -> std::string {
                char c;
                if (read(go[0], &c, 1) != 1) return "no go";
                struct stat st {};
                // Still the old, dead mount until the plugin re-binds.
                for (int i = 0; i < 300 && stat((v + "/before").c_str(), &st) != 0; i++) usleep(50000);
                std::string got;
                POD_TRY(ReadPath(v + "/before", &got));
                POD_TRY(Same("file written before the crash", got, "written before the crash"));
                POD_TRY(WritePath(v + "/after", "written after the recovery"));
                return "";
              }};
  std::string pod_err;
  std::thread runner([&] { pod_err = RunPods({pod})[0]; });

  tempfs_->KillDaemon(SIGKILL);
  ASSERT_EQ(tempfs_->Unmount().exit_code, 0);
  ASSERT_TRUE(tempfs_->Remount());
  EXPECT_TRUE(WaitFor([&] { return Exists(t + "/before"); }, kSettle)) << "the plugin did not re-bind the volume\n"
                                                                       << plugin_->LogTail();
  ASSERT_EQ(write(go[1], "g", 1), 1);
  runner.join();
  close(go[0]);
  close(go[1]);
  EXPECT_EQ(pod_err, "");
  EXPECT_TRUE(Exists(DataDir("team-a", "survivor") + "/after"));
  ExpectUnpublished("pv-1", t);
}

TEST_F(CsiTest, PluginRestartKeepsMounts) {
  const std::string t = Target("pod-a");
  ExpectPublished(InlineVolume("csi-a", t, "team-a", {{"volume", "steady"}}));
  ASSERT_EQ(WritePath(t + "/f", "x"), "");
  // SIGKILL leaves the socket file behind; the next start replaces it.
  plugin_->Stop(SIGKILL);
  EXPECT_TRUE(Exists(plugin_->socket_path()));
  std::string got;
  EXPECT_EQ(ReadPath(t + "/f", &got), "") << "the pod's mount broke with the plugin";
  ASSERT_TRUE(plugin_->Restart());
  pb::NodeGetVolumeStatsResponse resp;
  grpc::Status st = StatsOf("csi-a", t, &resp);
  EXPECT_TRUE(st.ok()) << Describe(st);
  ExpectUnpublished("csi-a", t);
  EXPECT_FALSE(Exists(DataDir("team-a", "steady")));
}

TEST_F(CsiTest, MalformedRequests) {
  const std::string t = Target("pod-a");
  auto good = InlineVolume("csi-a", t, "team-a", {{"volume", "v"}});
  using C = grpc::StatusCode;

  auto req = good;
  req.clear_volume_id();
  EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "no volume_id";
  req = good;
  req.clear_target_path();
  EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "no target_path";
  req = good;
  req.clear_volume_capability();
  EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "no volume_capability";
  req = good;
  req.mutable_volume_capability()->mutable_block();
  EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "block access";
  req = good;
  req.set_target_path("relative/target");
  EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "relative target";

  const std::string nul("a\0b", 3);
  for (const std::string& name : {std::string("../x"), std::string(".."), std::string("a/b"), nul, std::string(64, 'a'),
                                  std::string(""), std::string("UPPER")}) {
    req = good;
    (*req.mutable_volume_context())["volume"] = name;
    EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "volume name \"" << name << "\"";
    req = good;
    (*req.mutable_volume_context())["csi.storage.k8s.io/pod.namespace"] = name;
    EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "namespace \"" << name << "\"";
  }
  for (const std::string& id : {std::string("../../etc"), std::string("a/b"), nul, std::string(".x")}) {
    req = good;
    req.set_volume_id(id);
    req.mutable_volume_context()->erase("volume");
    EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "unnamed volume id \"" << id << "\"";
  }
  req = good;
  (*req.mutable_volume_context())["capacity"] = "lots";
  EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "capacity";
  req = good;
  (*req.mutable_volume_context())["retention"] = "sometimes";
  EXPECT_EQ(PublishCode(req), C::INVALID_ARGUMENT) << "retention";
  // Nothing was created by the refused requests.
  EXPECT_FALSE(Exists(t));
  EXPECT_FALSE(Exists(tempfs_->mnt() + "/volumes/x"));
  EXPECT_FALSE(Exists(tempfs_->mnt() + "/etc"));

  pb::NodeUnpublishVolumeRequest un;
  un.set_target_path(t);
  EXPECT_EQ(plugin_->Unpublish(un).error_code(), C::INVALID_ARGUMENT) << "unpublish without volume_id";
  un.set_volume_id("csi-a");
  un.clear_target_path();
  EXPECT_EQ(plugin_->Unpublish(un).error_code(), C::INVALID_ARGUMENT) << "unpublish without target_path";

  pb::NodeGetVolumeStatsRequest sreq;
  pb::NodeGetVolumeStatsResponse sresp;
  sreq.set_volume_path(t);
  EXPECT_EQ(plugin_->Stats(sreq, &sresp).error_code(), C::INVALID_ARGUMENT) << "stats without volume_id";
  sreq.set_volume_id("csi-a");
  sreq.clear_volume_path();
  EXPECT_EQ(plugin_->Stats(sreq, &sresp).error_code(), C::INVALID_ARGUMENT) << "stats without volume_path";
  sreq.set_volume_path("some/path");
  EXPECT_EQ(plugin_->Stats(sreq, &sresp).error_code(), C::NOT_FOUND) << "stats of an unknown volume";
  ExpectPublished(good);
  sreq.set_volume_id("csi-other");
  sreq.set_volume_path(t);
  EXPECT_EQ(plugin_->Stats(sreq, &sresp).error_code(), C::NOT_FOUND) << "stats of another volume's path";
  sreq.set_volume_id("csi-a");
  (*good.mutable_volume_context())["capacity"] = "64Mi";
  // Capacity is enforced (CapacityIsEnforcedInPods) and reported.
  ExpectUnpublished("csi-a", t);
  ExpectPublished(good);
  grpc::Status st = plugin_->Stats(sreq, &sresp);
  ASSERT_TRUE(st.ok()) << Describe(st);
  EXPECT_EQ(sresp.usage(0).total(), 64 << 20);
  ExpectUnpublished("csi-a", t);
}

// Finding 8: unpublish of a path that was never published answers OK and
// touches nothing there: a foreign mount, a plain file, an empty directory,
// a symlink, or a bind mount of a tempfs volume that the plugin did not make.
TEST_F(CsiTest, UnpublishLeavesWhatItNeverMade) {
  const std::string foreign = Target("pod-tmpfs");
  ASSERT_EQ(mkdir(foreign.c_str(), 0750), 0);
  ASSERT_EQ(mount("tmpfs", foreign.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  ASSERT_EQ(WritePath(foreign + "/their-data", "not tempfs's"), "");
  const std::string file = Target("pod-file");
  ASSERT_EQ(WritePath(file, "a plain file"), "");
  const std::string empty = Target("pod-empty");
  ASSERT_EQ(mkdir(empty.c_str(), 0750), 0);
  const std::string decoy = outside_ + "/decoy";
  ASSERT_EQ(mkdir(decoy.c_str(), 0755), 0);
  ASSERT_EQ(WritePath(decoy + "/f", "decoy"), "");
  const std::string link = Target("pod-link");
  ASSERT_EQ(symlink(decoy.c_str(), link.c_str()), 0);
  // A bind mount of a real volume, made by hand, not by the plugin.
  const std::string real = Target("pod-real");
  ExpectPublished(InlineVolume("csi-real", real, "team-a", {{"volume", "shared"}}));
  const std::string by_hand = Target("pod-by-hand");
  ASSERT_EQ(mkdir(by_hand.c_str(), 0750), 0);
  ASSERT_EQ(mount(DataDir("team-a", "shared").c_str(), by_hand.c_str(), nullptr, MS_BIND, nullptr), 0);

  const std::string before = World();
  const size_t mounts = MountPointsUnder(dir_->path()).size();
  for (const std::string& t : {foreign, file, empty, link, by_hand}) {
    grpc::Status st = plugin_->Unpublish("csi-never", t);
    EXPECT_TRUE(st.ok()) << t << ": " << Describe(st);
    EXPECT_TRUE(plugin_->Unpublish("csi-real", t).ok()) << t << ": another volume's id";
  }
  EXPECT_EQ(World(), before) << "unpublish touched what it never made";
  EXPECT_EQ(MountPointsUnder(dir_->path()).size(), mounts);
  EXPECT_TRUE(IsMountPoint(foreign));
  EXPECT_TRUE(IsMountPoint(by_hand));
  std::string got;
  EXPECT_EQ(ReadPath(foreign + "/their-data", &got), "");
  EXPECT_EQ(got, "not tempfs's");
  EXPECT_TRUE(IsMountPoint(real)) << "the volume's real publication was touched";
  ExpectUnpublished("csi-real", real);
}

// Finding 8: a second unpublish is OK and touches nothing, whatever is at
// the path by then; a target that existed before publish is left for
// kubelet.
TEST_F(CsiTest, UnpublishTwiceTouchesNothing) {
  const std::string t = Target("pod-a");
  ExpectPublished(InlineVolume("csi-a", t, "team-a", {{"volume", "twice"}, {"retention", "keep"}}));
  ASSERT_EQ(WritePath(t + "/f", "x"), "");
  ExpectUnpublished("csi-a", t);
  EXPECT_TRUE(Exists(DataDir("team-a", "twice") + "/f"));
  // Something else appears at the path; a late retry of the unpublish.
  ASSERT_EQ(mkdir(t.c_str(), 0750), 0);
  ASSERT_EQ(WritePath(t + "/new-owner", "someone else's"), "");
  std::string before = World();
  EXPECT_TRUE(plugin_->Unpublish("csi-a", t).ok());
  EXPECT_EQ(World(), before);
  ASSERT_EQ(unlink((t + "/new-owner").c_str()), 0);
  before = World();
  EXPECT_TRUE(plugin_->Unpublish("csi-a", t).ok());
  EXPECT_EQ(World(), before) << "an empty directory it did not create was removed";

  // The target existed before publish (kubelet made it): unpublish takes the
  // mount off and leaves the directory.
  const std::string pre = Target("pod-b");
  ASSERT_EQ(mkdir(pre.c_str(), 0750), 0);
  ExpectPublished(InlineVolume("csi-b", pre, "team-a", {{"volume", "twice"}, {"retention", "keep"}}));
  ASSERT_TRUE(plugin_->Unpublish("csi-b", pre).ok());
  EXPECT_FALSE(IsMountPoint(pre));
  EXPECT_TRUE(Exists(pre)) << "removed a target it did not create";
  before = World();
  EXPECT_TRUE(plugin_->Unpublish("csi-b", pre).ok());
  EXPECT_EQ(World(), before);
  EXPECT_TRUE(Exists(DataDir("team-a", "twice") + "/f"));
}

// Finding 8: a mount that is not the volume's, stacked on a published
// target, is never unmounted; unpublish says so, and succeeds once it is
// gone.
TEST_F(CsiTest, UnpublishLeavesAForeignMountOnTop) {
  const std::string t = Target("pod-a");
  ExpectPublished(InlineVolume("csi-a", t, "team-a", {{"volume", "under"}}));
  ASSERT_EQ(WritePath(t + "/volume-data", "v"), "");
  ASSERT_EQ(mount("tmpfs", t.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  ASSERT_EQ(WritePath(t + "/their-data", "not tempfs's"), "");
  const std::string before = World();
  grpc::Status st = plugin_->Unpublish("csi-a", t);
  EXPECT_FALSE(st.ok()) << "unpublish answered OK with a foreign mount left on the target";
  EXPECT_NE(st.error_message().find("left alone"), std::string::npos) << Describe(st);
  EXPECT_EQ(World(), before);
  std::string got;
  EXPECT_EQ(ReadPath(t + "/their-data", &got), "");
  EXPECT_EQ(got, "not tempfs's");
  EXPECT_TRUE(Exists(DataDir("team-a", "under") + "/volume-data")) << "the volume was released";
  ASSERT_EQ(umount2(t.c_str(), 0), 0);
  ExpectUnpublished("csi-a", t);
  EXPECT_FALSE(Exists(DataDir("team-a", "under")));
}

// Finding 9: a target, or a directory on the way to it, that is a symlink is
// refused; nothing is mounted or created where it points, and unpublish of
// it touches nothing.
TEST_F(CsiTest, PublishNeverFollowsSymlinks) {
  const std::string decoy = pods_ + "/decoy";  // inside kubelet's directory
  ASSERT_EQ(mkdir(decoy.c_str(), 0755), 0);
  const std::string etc = outside_ + "/etc";  // like /etc, in the test's own directory
  ASSERT_EQ(mkdir(etc.c_str(), 0755), 0);
  ASSERT_EQ(WritePath(etc + "/passwd", "root:x:0:0::/root:/bin/sh\n"), "");
  const std::string parent_decoy = outside_ + "/parent";
  ASSERT_EQ(mkdir(parent_decoy.c_str(), 0755), 0);

  const std::string to_decoy = Target("pod-a");
  ASSERT_EQ(symlink(decoy.c_str(), to_decoy.c_str()), 0);
  const std::string to_etc = Target("pod-b");
  ASSERT_EQ(symlink(etc.c_str(), to_etc.c_str()), 0);
  const std::string relative = Target("pod-c");
  ASSERT_EQ(symlink("../../../../decoy", relative.c_str()), 0);
  // A parent component: the pod's directory, and its volume's directory.
  ASSERT_EQ(symlink(parent_decoy.c_str(), (pods_ + "/pod-d").c_str()), 0);
  const std::string via_pod_dir = pods_ + "/pod-d/volumes/kubernetes.io~csi/data/mount";
  const std::string vol_dir = pods_ + "/pod-e/volumes/kubernetes.io~csi/data";
  ASSERT_EQ(RunCommand({"mkdir", "-p", pods_ + "/pod-e/volumes/kubernetes.io~csi"}).exit_code, 0);
  ASSERT_EQ(symlink(etc.c_str(), vol_dir.c_str()), 0);
  const std::string via_vol_dir = vol_dir + "/mount";

  const std::string before = World();
  const size_t mounts = MountPointsUnder(dir_->path()).size();
  for (const std::string& t : {to_decoy, to_etc, relative, via_pod_dir, via_vol_dir}) {
    grpc::Status st = plugin_->Publish(InlineVolume("csi-a", t, "team-a", {{"volume", "v"}}));
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << t << ": " << Describe(st);
    EXPECT_EQ(World(), before) << "publish through a symlink touched something: " << t;
    EXPECT_EQ(MountPointsUnder(dir_->path()).size(), mounts) << t;
    st = plugin_->Unpublish("csi-a", t);
    EXPECT_TRUE(st.ok()) << t << ": " << Describe(st);
    EXPECT_EQ(World(), before) << "unpublish through a symlink touched something: " << t;
    EXPECT_EQ(MountPointsUnder(dir_->path()).size(), mounts) << t;
  }
  EXPECT_FALSE(IsMountPoint(decoy));
  EXPECT_FALSE(IsMountPoint(etc));
  std::string got;
  EXPECT_EQ(ReadPath(etc + "/passwd", &got), "");
  EXPECT_EQ(got, "root:x:0:0::/root:/bin/sh\n");
}

// Finding 9, raced: while publish runs, a directory on the way to the target
// is swapped again and again (renameat2 RENAME_EXCHANGE) with a symlink to a
// decoy outside. Publish either mounts on the real directory or refuses;
// the decoy never gets a mount or an entry, and unpublish leaves no mount.
TEST_F(CsiTest, PublishRacingASymlinkSwapNeverReachesTheDecoy) {
  const std::string decoy = outside_ + "/decoy";
  ASSERT_EQ(mkdir(decoy.c_str(), 0755), 0);
  const std::string target = Target("pod-r");  // .../kubernetes.io~csi/data/mount
  const std::string real = target.substr(0, target.rfind('/'));
  const std::string swap = real + "-swap";
  ASSERT_EQ(symlink(decoy.c_str(), swap.c_str()), 0);
  const std::string outside_before = Listing(outside_);
  constexpr int kRounds = 40;
  constexpr int kMaxSwapsPerRound = 20000;
  int published = 0, refused = 0;
  for (int round = 0; round < kRounds && !HasFailure(); round++) {
    std::atomic<bool> done{false};
    std::thread swapper([&] {
      for (int i = 0; i < kMaxSwapsPerRound && !done.load(); i++) {
        renameat2(AT_FDCWD, real.c_str(), AT_FDCWD, swap.c_str(), RENAME_EXCHANGE);
      }
    });
    grpc::Status st = plugin_->Publish(InlineVolume("csi-r", target, "team-a", {{"volume", "raced"}}));
    done = true;
    swapper.join();
    struct stat lst {};
    ASSERT_EQ(lstat(real.c_str(), &lst), 0);
    if (S_ISLNK(lst.st_mode)) {
      ASSERT_EQ(renameat2(AT_FDCWD, real.c_str(), AT_FDCWD, swap.c_str(), RENAME_EXCHANGE), 0);
    }
    EXPECT_TRUE(st.ok() || st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) << Describe(st);
    EXPECT_EQ(Listing(outside_), outside_before) << "round " << round << ": the decoy was touched";
    EXPECT_TRUE(MountPointsUnder(outside_).empty()) << "round " << round << ": a mount reached the decoy";
    if (st.ok()) {
      published++;
      EXPECT_TRUE(IsMountPoint(target)) << "round " << round;
    } else {
      refused++;
    }
    grpc::Status un = plugin_->Unpublish("csi-r", target);
    EXPECT_TRUE(un.ok()) << Describe(un);
    EXPECT_TRUE(MountPointsUnder(pods_).empty()) << "round " << round << ": unpublish left a mount";
  }
  std::cerr << "raced publishes: " << published << " mounted, " << refused << " refused\n";
}

// Finding 9: targets outside kubelet's directory, or escaping it with "..",
// are INVALID_ARGUMENT for publish and unpublish, and nothing is created.
TEST_F(CsiTest, TargetsOutsideKubeletDirAreRefused) {
  const std::string escape = outside_ + "/escape";
  const std::vector<std::string> bad = {
      outside_ + "/mount",
      pods_ + "/../outside/escape/mount",
      pods_ + "/pod-a/volumes/../../../outside/escape/mount",
      pods_ + "/pod-a/../pod-b/mount",
      pods_,
      pods_ + "/",
      dir_->path() + "/pods-other/mount",  // a sibling sharing the prefix
  };
  ASSERT_EQ(RunCommand({"mkdir", "-p", pods_ + "/pod-a/volumes"}).exit_code, 0);
  const std::string before = World();
  const size_t mounts = MountPointsUnder(dir_->path()).size();
  for (const std::string& t : bad) {
    grpc::Status st = plugin_->Publish(InlineVolume("csi-a", t, "team-a", {{"volume", "v"}}));
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << t << ": " << Describe(st);
    EXPECT_EQ(plugin_->Unpublish("csi-a", t).error_code(), grpc::StatusCode::INVALID_ARGUMENT) << t;
    EXPECT_EQ(World(), before) << t;
    EXPECT_EQ(MountPointsUnder(dir_->path()).size(), mounts) << t;
  }
  EXPECT_FALSE(Exists(escape));
  EXPECT_FALSE(Exists(dir_->path() + "/pods-other"));
  EXPECT_FALSE(Exists(DataDir("team-a", "v")));
}

// Finding 9: a capacity that is not a positive whole number of bytes is
// INVALID_ARGUMENT, not "no limit"; valid quantities still work.
TEST_F(CsiTest, BadCapacitiesAreRefused) {
  const std::string t = Target("pod-a");
  for (const char* cap : {"0.5", "-1", "abc", "0", "0Gi", "", "1.5", "99999999999Ei", "18446744073709551616", "1 Gi"}) {
    grpc::Status st = plugin_->Publish(InlineVolume("csi-a", t, "team-a", {{"volume", "v"}, {"capacity", cap}}));
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << "capacity \"" << cap << "\": " << Describe(st);
    EXPECT_FALSE(Exists(t)) << cap;
    EXPECT_FALSE(Exists(DataDir("team-a", "v"))) << cap;
  }
  ExpectPublished(InlineVolume("csi-a", t, "team-a", {{"volume", "v"}, {"capacity", "1.5Ki"}}));
  pb::NodeGetVolumeStatsResponse stats;
  grpc::Status st = StatsOf("csi-a", t, &stats);
  ASSERT_TRUE(st.ok()) << Describe(st);
  EXPECT_EQ(stats.usage(0).total(), 1536);
  ExpectUnpublished("csi-a", t);
}

TEST(CsiPluginStart, NotReadyWithoutTempfs) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("csi-notmounted");
  const std::string plain = dir.path() + "/plain";
  ASSERT_EQ(mkdir(plain.c_str(), 0755), 0);
  auto plugin = CsiPlugin::Start(dir.path(), plain, "node-a", {"--kubelet-dir", dir.path()});
  ASSERT_NE(plugin, nullptr);
  pb::ProbeResponse probe;
  ASSERT_TRUE(plugin->Probe(&probe).ok());
  EXPECT_FALSE(probe.ready().value()) << "ready without a tempfs mount";
  const std::string target = dir.path() + "/target";
  EXPECT_EQ(plugin->Publish(InlineVolume("csi-a", target, "team-a", {{"volume", "v"}})).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(Exists(plain + "/volumes")) << "volumes created on a plain directory";
  // A second plugin on the same socket is refused while the first serves.
  CommandResult second = RunCommand(
      {TempfsBin(), "csi", "--endpoint", "unix://" + plugin->socket_path(), "--node-id", "n", "--mount", plain},
      milliseconds(20000));
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("another process"), std::string::npos) << second.err;
}

}  // namespace
}  // namespace tempfs::testing
