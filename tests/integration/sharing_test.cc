// The three ways co-located containers share data through one tempfs mount:
// plain files, MAP_SHARED memory, and descriptor passing over an AF_UNIX
// socket that lives on the mount. Each runs between two processes on the
// mount path, and between two mount namespaces that each see only a bind
// mount of one volume (a subdirectory of the mount), as two pods would.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

// Bound for one step of the protocol between the parties.
constexpr std::chrono::milliseconds kStepTimeout{30000};
// Bound for a whole scenario, after which both parties are killed.
constexpr std::chrono::milliseconds kPartyTimeout{120000};

// gtest assertions do not work in a forked child, so the parties report
// their first error as a string ("" means fine) to the parent.
using Status = std::string;

#define TEMPFS_TRY(expr)                           \
  do {                                             \
    ::tempfs::testing::Status try_status = (expr); \
    if (!try_status.empty()) return try_status;    \
  } while (0)

Status ErrnoStatus(const std::string& what) { return what + ": " + std::strerror(errno); }


// Describes where two buffers differ, for readable failures.
std::string Diff(const std::string& got, const std::string& want) {
  if (got.size() != want.size()) {
    return "size " + std::to_string(got.size()) + ", want " + std::to_string(want.size());
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) return "first difference at offset " + std::to_string(i);
  }
  return "";
}

Status Compare(const std::string& what, const std::string& got, const std::string& want) {
  std::string diff = Diff(got, want);
  return diff.empty() ? "" : what + ": " + diff;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  void Reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  // Closes now and returns close()'s result, so callers can check it.
  int Close() {
    int rc = close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

class Mapping {
 public:
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~Mapping() {
    if (addr_ != MAP_FAILED) munmap(addr_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  bool ok() const { return addr_ != MAP_FAILED; }
  char* data() const { return static_cast<char*>(addr_); }
  std::string Contents() const { return std::string(data(), size_); }

 private:
  void* addr_;
  size_t size_;
};

Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write");
    if (n == 0) return "write returned 0";
    done += static_cast<size_t>(n);
  }
  return "";
}

Status PreadAll(int fd, size_t size, off_t offset, std::string* out) {
  out->assign(size, '\0');
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, out->data() + done, size - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("pread");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  return "";
}

// Reads a whole file by path (a fresh open, not a cached descriptor).
Status ReadFile(const std::string& path, std::string* out) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return ErrnoStatus("open " + path);
  out->clear();
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read " + path);
    if (n == 0) return "";
    out->append(buf, static_cast<size_t>(n));
  }
}

// Waits (bounded) until fd is readable; a peer that died reads as EOF.
Status WaitReadable(int fd, const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + kStepTimeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "timed out waiting for " + what;
    pollfd pfd{fd, POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoStatus("poll");
    if (rc > 0) return "";
  }
}

// Tokens the two parties exchange to order their steps.
enum Token : uint32_t {
  kCreated = 1,
  kChunkWritten,
  kChunkSeen,
  kClosed,
  kReady,
  kMapped,
  kWritten,
  kReplied,
  kListening,
  kWroteBack,
  kDone,
};

std::string TokenName(uint32_t token) {
  static const char* const kNames[] = {"?",       "created",   "chunk-written", "chunk-seen",
                                       "closed",  "ready",     "mapped",        "written",
                                       "replied", "listening", "wrote-back",    "done"};
  return token < sizeof(kNames) / sizeof(kNames[0]) ? kNames[token] : "#" + std::to_string(token);
}

// The two pipes between the parties.
class Channel {
 public:
  Channel(int in, int out) : in_(in), out_(out) {}

  Status Send(uint32_t token) {
    ssize_t n = write(out_, &token, sizeof(token));
    if (n != static_cast<ssize_t>(sizeof(token))) {
      return ErrnoStatus("sending '" + TokenName(token) + "'");
    }
    return "";
  }

  Status Expect(uint32_t want) {
    const std::string what = "'" + TokenName(want) + "' from the peer";
    TEMPFS_TRY(WaitReadable(in_, what));
    uint32_t got = 0;
    ssize_t n;
    do {
      n = read(in_, &got, sizeof(got));
    } while (n < 0 && errno == EINTR);
    if (n == 0) return "peer exited before sending " + what;
    if (n != static_cast<ssize_t>(sizeof(got))) return ErrnoStatus("reading " + what);
    if (got != want) {
      return "expected " + what + ", got '" + TokenName(got) + "'";
    }
    return "";
  }

 private:
  int in_;
  int out_;
};

enum class Isolation { kProcesses, kNamespaces };

// One side of a scenario; gets the volume path it may use.
struct Party {
  std::string name;
  std::function<Status(const std::string& volume, Channel& peer)> body;
};

// Turns this (forked, single-threaded) child into a "pod": a private mount
// namespace whose only way to the volume is a bind mount at `target`.
Status EnterPod(const std::string& mount_root, const std::string& volume,
                const std::string& target) {
  if (unshare(CLONE_NEWNS) != 0) return ErrnoStatus("unshare(CLONE_NEWNS)");
  // Private propagation, so the pod's mounts never leak to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoStatus("making / private");
  }
  if (mount(volume.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoStatus("bind-mounting " + volume + " on " + target);
  }
  struct stat vs {
  }, ts{};
  if (stat(volume.c_str(), &vs) != 0) return ErrnoStatus("stat " + volume);
  if (stat(target.c_str(), &ts) != 0) return ErrnoStatus("stat " + target);
  if (vs.st_dev != ts.st_dev || vs.st_ino != ts.st_ino) {
    return "bind mount " + target + " does not show the volume";
  }
  // A real pod has no view of the host mount at all; drop ours so the
  // scenario can only work through the bind mount.
  if (umount2(mount_root.c_str(), MNT_DETACH) != 0) {
    return ErrnoStatus("detaching the host mount inside the pod");
  }
  return "";
}

// ---- Mode 1: a file read while it is being written. ----

constexpr size_t kChunkSize = 256 * 1024;
constexpr int kChunks = 8;

std::string StreamContent() {
  std::string all;
  for (int i = 0; i < kChunks; ++i) all += Pattern(100 + i, kChunkSize);
  return all;
}

Status StreamWriter(const std::string& volume, Channel& peer) {
  const std::string path = volume + "/stream.bin";
  Fd fd(open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.ok()) return ErrnoStatus("create " + path);
  TEMPFS_TRY(peer.Send(kCreated));
  for (int i = 0; i < kChunks; ++i) {
    TEMPFS_TRY(WriteAll(fd.get(), Pattern(100 + i, kChunkSize)));
    TEMPFS_TRY(peer.Send(kChunkWritten));
    TEMPFS_TRY(peer.Expect(kChunkSeen));
  }
  if (fd.Close() != 0) return ErrnoStatus("close " + path);
  TEMPFS_TRY(peer.Send(kClosed));
  return peer.Expect(kDone);
}

Status StreamReader(const std::string& volume, Channel& peer) {
  const std::string path = volume + "/stream.bin";
  TEMPFS_TRY(peer.Expect(kCreated));
  // Opened while the writer still writes, and kept for the whole stream.
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return ErrnoStatus("open " + path + " during writing");
  for (int i = 0; i < kChunks; ++i) {
    TEMPFS_TRY(peer.Expect(kChunkWritten));
    const std::string at = " after chunk " + std::to_string(i);
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) return ErrnoStatus("fstat" + at);
    const off_t want_size = static_cast<off_t>((i + 1) * kChunkSize);
    if (st.st_size != want_size) {
      return "reader sees size " + std::to_string(st.st_size) + at + ", want " +
             std::to_string(want_size);
    }
    std::string got;
    TEMPFS_TRY(PreadAll(fd.get(), kChunkSize, i * kChunkSize, &got));
    TEMPFS_TRY(Compare("chunk read during writing" + at, got, Pattern(100 + i, kChunkSize)));
    TEMPFS_TRY(peer.Send(kChunkSeen));
  }
  TEMPFS_TRY(peer.Expect(kClosed));
  const std::string want = StreamContent();
  std::string got;
  TEMPFS_TRY(PreadAll(fd.get(), want.size() + 1, 0, &got));
  TEMPFS_TRY(Compare("whole file through the early descriptor", got, want));
  TEMPFS_TRY(ReadFile(path, &got));
  TEMPFS_TRY(Compare("whole file after close, fresh open", got, want));
  return peer.Send(kDone);
}

// ---- Mode 2: MAP_SHARED memory, no msync. ----

constexpr size_t kShmSize = 1 << 20;
constexpr uint64_t kShmRequestSeed = 201;
constexpr uint64_t kShmReplySeed = 202;

Status MapShared(const std::string& path, bool create, Fd* fd, std::unique_ptr<Mapping>* map) {
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
  fd->Reset(open(path.c_str(), flags, 0644));
  if (!fd->ok()) return ErrnoStatus("open " + path);
  if (create && ftruncate(fd->get(), kShmSize) != 0) {
    return ErrnoStatus("ftruncate " + path);
  }
  struct stat st {};
  if (fstat(fd->get(), &st) != 0) return ErrnoStatus("fstat " + path);
  if (st.st_size != static_cast<off_t>(kShmSize)) {
    return "shared file has size " + std::to_string(st.st_size);
  }
  *map = std::make_unique<Mapping>(
      mmap(nullptr, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd->get(), 0), kShmSize);
  if (!(*map)->ok()) return ErrnoStatus("mmap(MAP_SHARED) " + path);
  return "";
}

Status ShmOwner(const std::string& volume, Channel& peer) {
  Fd fd;
  std::unique_ptr<Mapping> map;
  TEMPFS_TRY(MapShared(volume + "/shm.bin", /*create=*/true, &fd, &map));
  TEMPFS_TRY(peer.Send(kReady));
  // Both sides map before any store, so only coherence can carry the data.
  TEMPFS_TRY(peer.Expect(kMapped));
  const std::string request = Pattern(kShmRequestSeed, kShmSize);
  std::memcpy(map->data(), request.data(), kShmSize);  // plain stores
  TEMPFS_TRY(peer.Send(kWritten));
  TEMPFS_TRY(peer.Expect(kReplied));
  TEMPFS_TRY(Compare("owner's view of the peer's reply (no msync)", map->Contents(),
                     Pattern(kShmReplySeed, kShmSize)));
  return peer.Send(kDone);
}

Status ShmPeer(const std::string& volume, Channel& peer) {
  TEMPFS_TRY(peer.Expect(kReady));
  Fd fd;
  std::unique_ptr<Mapping> map;
  TEMPFS_TRY(MapShared(volume + "/shm.bin", /*create=*/false, &fd, &map));
  TEMPFS_TRY(peer.Send(kMapped));
  TEMPFS_TRY(peer.Expect(kWritten));
  TEMPFS_TRY(Compare("peer's view of the owner's stores (no msync)", map->Contents(),
                     Pattern(kShmRequestSeed, kShmSize)));
  const std::string reply = Pattern(kShmReplySeed, kShmSize);
  std::memcpy(map->data(), reply.data(), kShmSize);
  TEMPFS_TRY(peer.Send(kReplied));
  return peer.Expect(kDone);
}

// ---- Mode 3: descriptors passed over a socket bound on the volume. ----

constexpr size_t kMemfdSize = 64 * 1024;
constexpr size_t kPassedSize = 10000;
const char kFileReply[] = "written through the received descriptor";
const char kMemfdReply[] = "memfd reply";

Status UnixAddress(const std::string& path, sockaddr_un* addr) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return "socket path too long: " + path;
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return "";
}

Status ExpectSocketNode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus("stat " + path);
  if (!S_ISSOCK(st.st_mode)) return path + " is not a socket node";
  return "";
}

Status FdSender(const std::string& volume, Channel& peer) {
  const std::string sock_path = volume + "/fd.sock";
  sockaddr_un addr;
  TEMPFS_TRY(UnixAddress(sock_path, &addr));
  Fd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.ok()) return ErrnoStatus("socket");
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus("bind " + sock_path);
  }
  if (listen(listener.get(), 1) != 0) return ErrnoStatus("listen");
  TEMPFS_TRY(ExpectSocketNode(sock_path));
  TEMPFS_TRY(peer.Send(kListening));

  TEMPFS_TRY(WaitReadable(listener.get(), "the peer to connect"));
  Fd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.ok()) return ErrnoStatus("accept");

  Fd memfd(memfd_create("tempfs-sharing", MFD_CLOEXEC));
  if (!memfd.ok()) return ErrnoStatus("memfd_create");
  TEMPFS_TRY(WriteAll(memfd.get(), Pattern(301, kMemfdSize)));
  const std::string file_path = volume + "/passed.txt";
  Fd file(open(file_path.c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644));
  if (!file.ok()) return ErrnoStatus("create " + file_path);
  TEMPFS_TRY(WriteAll(file.get(), Pattern(302, kPassedSize)));

  int fds[2] = {memfd.get(), file.get()};
  char byte = 'F';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(fds))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(fds));
  std::memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
  if (sendmsg(conn.get(), &msg, MSG_NOSIGNAL) != 1) return ErrnoStatus("sendmsg");

  TEMPFS_TRY(peer.Expect(kWroteBack));
  // The peer's write through the passed descriptor is the same file for us.
  std::string got;
  TEMPFS_TRY(PreadAll(file.get(), sizeof(kFileReply) - 1, kPassedSize, &got));
  TEMPFS_TRY(Compare("sender's view of the write through the passed fd", got, kFileReply));
  TEMPFS_TRY(ReadFile(file_path, &got));
  TEMPFS_TRY(Compare("passed file by path after the peer's write", got,
                     Pattern(302, kPassedSize) + kFileReply));
  TEMPFS_TRY(PreadAll(memfd.get(), sizeof(kMemfdReply) - 1, kMemfdSize, &got));
  TEMPFS_TRY(Compare("sender's view of the peer's memfd write", got, kMemfdReply));
  return peer.Send(kDone);
}

Status FdReceiver(const std::string& volume, Channel& peer) {
  TEMPFS_TRY(peer.Expect(kListening));
  const std::string sock_path = volume + "/fd.sock";
  TEMPFS_TRY(ExpectSocketNode(sock_path));
  sockaddr_un addr;
  TEMPFS_TRY(UnixAddress(sock_path, &addr));
  Fd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.ok()) return ErrnoStatus("socket");
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus("connect " + sock_path);
  }

  TEMPFS_TRY(WaitReadable(sock.get(), "the descriptors"));
  int fds[2] = {-1, -1};
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(fds))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  if (recvmsg(sock.get(), &msg, MSG_CMSG_CLOEXEC) != 1) return ErrnoStatus("recvmsg");
  if (msg.msg_flags & MSG_CTRUNC) return "control data truncated";
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(sizeof(fds))) {
    return "did not receive two descriptors by SCM_RIGHTS";
  }
  std::memcpy(fds, CMSG_DATA(cmsg), sizeof(fds));
  Fd memfd(fds[0]);
  Fd file(fds[1]);

  std::string got;
  TEMPFS_TRY(PreadAll(memfd.get(), kMemfdSize + 1, 0, &got));
  TEMPFS_TRY(Compare("received memfd content", got, Pattern(301, kMemfdSize)));

  // The received descriptor is the file our own path names.
  const std::string file_path = volume + "/passed.txt";
  struct stat fst {
  }, pst{};
  if (fstat(file.get(), &fst) != 0) return ErrnoStatus("fstat received fd");
  if (stat(file_path.c_str(), &pst) != 0) return ErrnoStatus("stat " + file_path);
  if (!S_ISREG(fst.st_mode) || fst.st_ino != pst.st_ino || fst.st_dev != pst.st_dev) {
    return "received fd is not the file at " + file_path;
  }
  TEMPFS_TRY(PreadAll(file.get(), kPassedSize + 1, 0, &got));
  TEMPFS_TRY(Compare("content read through the received fd", got, Pattern(302, kPassedSize)));
  if (pwrite(file.get(), kFileReply, sizeof(kFileReply) - 1, kPassedSize) !=
      static_cast<ssize_t>(sizeof(kFileReply) - 1)) {
    return ErrnoStatus("pwrite through the received fd");
  }
  if (pwrite(memfd.get(), kMemfdReply, sizeof(kMemfdReply) - 1, kMemfdSize) !=
      static_cast<ssize_t>(sizeof(kMemfdReply) - 1)) {
    return ErrnoStatus("pwrite to the received memfd");
  }
  TEMPFS_TRY(peer.Send(kWroteBack));
  return peer.Expect(kDone);
}

// ---- Harness ----

class SharingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TEMPFS_SKIP_IF_NO_FUSE();
    dir_ = std::make_unique<TempDir>("sharing");
    mount_ = TempfsMount::Start(dir_->path());
    ASSERT_NE(mount_, nullptr);
    volume_ = mount_->mnt() + "/vol1";
    ASSERT_EQ(mkdir(volume_.c_str(), 0755), 0) << volume_ << ": " << std::strerror(errno);
  }

  // Runs a and b in two forked children and reports their errors. With
  // kNamespaces each child is a pod with its own bind mount of the volume.
  void RunPair(Isolation isolation, const Party& a, const Party& b);

  // The parent's view, on the main mount path, of what the parties left.
  void ExpectFileOnMount(const std::string& name, const std::string& want) {
    std::string got;
    Status status = ReadFile(volume_ + "/" + name, &got);
    ASSERT_EQ(status, "");
    EXPECT_EQ(Diff(got, want), "") << name << " as seen on the main mount path";
  }

  // Members in this order so the mount goes before its directory.
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<TempfsMount> mount_;
  std::string volume_;
};

// Everything a child needs; the parent keeps the other ends.
struct ChildSetup {
  const Party* party;
  std::string pod_target;  // empty: use the volume path directly
  int in;
  int out;
  int result;
};

[[noreturn]] void RunChild(const std::string& mount_root, const std::string& volume,
                           const ChildSetup& setup) {
  Status status;
  std::string path = volume;
  if (!setup.pod_target.empty()) {
    status = EnterPod(mount_root, volume, setup.pod_target);
    path = setup.pod_target;
  }
  if (status.empty()) {
    Channel channel(setup.in, setup.out);
    try {
      status = setup.party->body(path, channel);
    } catch (const std::exception& e) {
      status = std::string("exception: ") + e.what();
    } catch (...) {
      status = "unknown exception";
    }
  }
  if (!status.empty()) {
    status = setup.party->name + ": " + status;
    ssize_t ignored = write(setup.result, status.data(), status.size());
    (void)ignored;
  }
  // _exit: no gtest teardown or atexit handlers in the child.
  _exit(status.empty() ? 0 : 1);
}

void SharingTest::RunPair(Isolation isolation, const Party& a, const Party& b) {
  std::vector<std::string> targets(2);
  if (isolation == Isolation::kNamespaces) {
    const char* pods[2] = {"podA", "podB"};
    for (int i = 0; i < 2; ++i) {
      const std::string pod = dir_->path() + "/" + pods[i];
      targets[i] = pod + "/data";
      ASSERT_EQ(mkdir(pod.c_str(), 0755), 0) << std::strerror(errno);
      ASSERT_EQ(mkdir(targets[i].c_str(), 0755), 0) << std::strerror(errno);
    }
  }
  // pipes[0]: a -> b, pipes[1]: b -> a, pipes[2], pipes[3]: results of a, b.
  int pipes[4][2];
  for (auto& p : pipes) ASSERT_EQ(pipe2(p, O_CLOEXEC), 0) << std::strerror(errno);
  const ChildSetup setups[2] = {
      {&a, targets[0], pipes[1][0], pipes[0][1], pipes[2][1]},
      {&b, targets[1], pipes[0][0], pipes[1][1], pipes[3][1]},
  };
  pid_t pids[2] = {-1, -1};
  for (int i = 0; i < 2; ++i) {
    pids[i] = fork();
    if (pids[i] == 0) {
      // Keep only this child's ends, so a dead peer reads as EOF.
      for (auto& p : pipes) {
        for (int fd : p) {
          if (fd != setups[i].in && fd != setups[i].out && fd != setups[i].result) {
            close(fd);
          }
        }
      }
      RunChild(mount_->mnt(), volume_, setups[i]);
    }
    if (pids[i] < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  }
  for (int i = 0; i < 4; ++i) {
    close(pipes[i][1]);
    if (i < 2) close(pipes[i][0]);
  }

  int statuses[2] = {0, 0};
  bool reaped[2] = {pids[0] < 0, pids[1] < 0};
  auto reap = [&] {
    for (int i = 0; i < 2; ++i) {
      if (!reaped[i] && waitpid(pids[i], &statuses[i], WNOHANG) == pids[i]) {
        reaped[i] = true;
      }
    }
    return reaped[0] && reaped[1];
  };
  const bool finished = WaitFor(reap, kPartyTimeout);
  EXPECT_TRUE(finished) << "the parties did not finish within " << kPartyTimeout.count()
                        << " ms; killing them";
  for (int i = 0; i < 2; ++i) {
    if (!reaped[i]) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], &statuses[i], 0);
    }
  }
  for (int i = 0; i < 2; ++i) {
    std::string message;
    char buf[4096];
    ssize_t n;
    while ((n = read(pipes[2 + i][0], buf, sizeof(buf))) > 0) {
      message.append(buf, static_cast<size_t>(n));
    }
    close(pipes[2 + i][0]);
    if (pids[i] < 0) continue;
    const Party& party = i == 0 ? a : b;
    EXPECT_TRUE(WIFEXITED(statuses[i]) && WEXITSTATUS(statuses[i]) == 0)
        << party.name << " failed (wait status " << statuses[i] << "): " << message;
  }
  // A pod's bind mount must stay inside its own namespace.
  for (const std::string& target : targets) {
    if (!target.empty()) {
      EXPECT_FALSE(IsMountPoint(target)) << target << " leaked to the host";
    }
  }
}

TEST_F(SharingTest, FileStreamBetweenProcesses) {
  RunPair(Isolation::kProcesses, {"writer", StreamWriter}, {"reader", StreamReader});
  ExpectFileOnMount("stream.bin", StreamContent());
}

TEST_F(SharingTest, FileStreamBetweenPods) {
  RunPair(Isolation::kNamespaces, {"podA writer", StreamWriter}, {"podB reader", StreamReader});
  // Written in pod A's namespace, visible on the host's mount path.
  ExpectFileOnMount("stream.bin", StreamContent());
}

TEST_F(SharingTest, SharedMemoryBetweenProcesses) {
  RunPair(Isolation::kProcesses, {"owner", ShmOwner}, {"peer", ShmPeer});
  ExpectFileOnMount("shm.bin", Pattern(kShmReplySeed, kShmSize));
}

TEST_F(SharingTest, SharedMemoryBetweenPods) {
  RunPair(Isolation::kNamespaces, {"podA owner", ShmOwner}, {"podB peer", ShmPeer});
  ExpectFileOnMount("shm.bin", Pattern(kShmReplySeed, kShmSize));
}

TEST_F(SharingTest, DescriptorPassingBetweenProcesses) {
  RunPair(Isolation::kProcesses, {"sender", FdSender}, {"receiver", FdReceiver});
  EXPECT_EQ(ExpectSocketNode(volume_ + "/fd.sock"), "");
  ExpectFileOnMount("passed.txt", Pattern(302, kPassedSize) + kFileReply);
}

TEST_F(SharingTest, DescriptorPassingBetweenPods) {
  RunPair(Isolation::kNamespaces, {"podA sender", FdSender}, {"podB receiver", FdReceiver});
  // The socket pod A bound is an ordinary socket node on the host path.
  EXPECT_EQ(ExpectSocketNode(volume_ + "/fd.sock"), "");
  ExpectFileOnMount("passed.txt", Pattern(302, kPassedSize) + kFileReply);
}

}  // namespace
}  // namespace tempfs::testing
