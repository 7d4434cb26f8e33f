// Cluster mode, end to end: a private redis-server and several tempfs nodes
// (ClusterFixture), each with its own store, mount and peer port.
//
//   - content written on one node is read byte-for-byte on the others, and
//     a second read is local (one fetch per version);
//   - a rewrite is seen after close-to-open; names (mkdir, rename, unlink)
//     are shared;
//   - concurrent writers: the first close publishes, the second fails with
//     EIO and publishes nothing; sequential writers both succeed;
//   - an owner killed (or stopped) in the middle of a transfer makes reads
//     fail with EIO within the peer timeout, leaves no partial copy, and the
//     file reads again once the owner is back;
//   - Redis down: metadata operations fail within a bound, open files still
//     read; after Redis is back the daemons work again;
//   - Redis emptied under running nodes (FLUSHALL, or a restart without
//     persistence): every data file stays, metadata operations fail with
//     EIO, status says why; a restarted node is refused until
//     --join-new-namespace, after which nodes rejoin with new numbers;
//   - mkdir/rmdir churn on one node: the other sees only what a local disk
//     could answer (no EIO);
//   - the peer protocol refuses requests without the right HMAC (spoken here
//     by hand, with a test-local SHA-256), and a world-readable secret file
//     is refused at mount time;
//   - with a FaultProxy between the nodes: a flipped byte or a cut in a
//     response is asked for again and the reader gets the right bytes, or
//     EIO when it keeps happening, never wrong bytes; a stalled peer gives
//     EIO within a bound;
//   - 64 connections that never authenticate (idle, or dripping a byte at a
//     time) do not keep a real node out.
//
// Run: build/bin/tempfs_integration_tests --gtest_filter='Cluster*'
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "support/cluster_fixture.h"
#include "support/fault_proxy.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;
constexpr milliseconds kNamespaceWait{3000};  // names with --cache-timeout 0
constexpr milliseconds kLogWait{5000};        // a log line after the event

// ------------------------------------------------------------- helpers --

// An fd closed at scope exit (declare after the ClusterFixture, so that it
// is closed before the mounts go away).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  // close(2)'s result: 0 or errno.
  int Close() {
    if (fd_ < 0) return 0;
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_ = -1;
};

// Runs `fn` at scope exit.
class ScopeExit {
 public:
  explicit ScopeExit(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~ScopeExit() {
    if (fn_) fn_();
  }
  void Dismiss() { fn_ = nullptr; }

 private:
  std::function<void()> fn_;
};

std::string ErrName(int e) {
  if (e == 0) return "OK";
  const char* name = strerrorname_np(e);
  return name != nullptr ? name : "errno" + std::to_string(e);
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Bytes [off, off+len) of an endless pseudo-random stream named by `seed`:
// any range can be produced (and checked) on its own.
void FillPattern(uint64_t seed, uint64_t off, char* out, size_t len) {
  for (size_t i = 0; i < len;) {
    uint64_t pos = off + i;
    uint64_t word = SplitMix(seed * 0x100000001b3ULL ^ (pos / 8));
    size_t in_word = pos % 8;
    size_t take = std::min<size_t>(8 - in_word, len - i);
    memcpy(out + i, reinterpret_cast<const char*>(&word) + in_word, take);
    i += take;
  }
}

std::string Pattern(uint64_t seed, size_t len, uint64_t off = 0) {
  std::string s(len, '\0');
  FillPattern(seed, off, s.data(), len);
  return s;
}

// "" if equal, else where they differ (never the contents: they are large).
std::string Diff(const std::string& got, const std::string& want) {
  if (got == want) return "";
  size_t n = std::min(got.size(), want.size());
  size_t i = 0;
  while (i < n && got[i] == want[i]) ++i;
  std::ostringstream s;
  s << "got " << got.size() << " bytes, want " << want.size() << "; first difference at offset " << i;
  return s.str();
}

// Writes `data` to `path` (open with `flags`), returns 0 or the errno of the
// first failing call, close(2) included.
int WriteFile(const std::string& path, const std::string& data, int flags = O_WRONLY | O_CREAT | O_TRUNC) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, std::min(data.size() - done, 4 * kMiB));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      ::close(fd);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  return ::close(fd) == 0 ? 0 : errno;
}

struct ReadResult {
  int err = 0;  // errno of the first failing call
  std::string data;
};

ReadResult ReadFile(const std::string& path) {
  ReadResult r;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r.err = errno;
    return r;
  }
  std::vector<char> buf(kMiB);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.err = errno;
      break;
    }
    if (n == 0) break;
    r.data.append(buf.data(), static_cast<size_t>(n));
  }
  if (::close(fd) != 0 && r.err == 0) r.err = errno;
  return r;
}

// Checks that `path` reads as exactly `want`; on failure, the cluster's
// logs (if given) go into the message.
void ExpectContent(const std::string& path, const std::string& want, const std::string& what,
                   const ClusterFixture* c = nullptr) {
  ReadResult r = ReadFile(path);
  std::string diff = Diff(r.data, want);
  EXPECT_EQ(ErrName(r.err), "OK") << what << ": reading " << path;
  EXPECT_EQ(diff, "") << what << ": " << path;
  if (c != nullptr && (r.err != 0 || !diff.empty())) ADD_FAILURE() << what << ": logs\n" << c->Diagnostics();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

int StatErr(const std::string& path, struct stat* st = nullptr) {
  struct stat tmp;
  return ::stat(path.c_str(), st != nullptr ? st : &tmp) == 0 ? 0 : errno;
}

uint64_t InoOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

off_t SizeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return st.st_size;
}

// The content version a store's data file holds (trusted.tempfs.version), 0 if none.
uint64_t StoreVersion(const std::string& data_file) {
  char buf[32] = {0};
  ssize_t n = ::getxattr(data_file.c_str(), "trusted.tempfs.version", buf, sizeof buf - 1);
  if (n <= 0) return 0;
  return strtoull(buf, nullptr, 10);
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return names;
  for (int i = 0; i < 100000; ++i) {
    dirent* e = ::readdir(d);
    if (e == nullptr) break;
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// Result of a call run in a child process with a time limit.
struct Bounded {
  bool finished = false;  // false: still running at the limit (killed)
  int code = -1;          // what fn returned (0 or an errno), if finished
  milliseconds elapsed{0};
};

// Runs fn in a forked child (it may use descriptors of the parent) and
// waits at most `limit`: a call that hangs on a mount is killed instead of
// hanging the test. fn returns 0 or an errno (< 256).
Bounded RunBounded(const std::function<int()>& fn, milliseconds limit) {
  Bounded b;
  auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = fn();
    ::_exit(rc & 0xff);
  }
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return b;
  }
  int status = 0;
  b.finished = WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit);
  b.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (!b.finished) {
    ::kill(pid, SIGKILL);
    WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) != 0; }, milliseconds(10000));
    return b;
  }
  b.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return b;
}

// pread of exactly `want.size()` bytes at `off` that must equal `want`:
// 0, an errno, or EBADMSG for different bytes (for RunBounded).
int PreadEquals(int fd, uint64_t off, const std::string& want) {
  std::string got(want.size(), '\0');
  size_t done = 0;
  while (done < got.size()) {
    ssize_t n = ::pread(fd, got.data() + done, got.size() - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return ENODATA;
    done += static_cast<size_t>(n);
  }
  return got == want ? 0 : EBADMSG;
}

// Reads `path` to its end in chunks and checks every chunk against the
// pattern `seed`; returns "" or what went wrong.
std::string CheckPatternFile(const std::string& path, uint64_t seed, uint64_t size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return "open " + path + ": " + ErrName(errno);
  std::vector<char> got(4 * kMiB), want(4 * kMiB);
  uint64_t off = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), got.data(), got.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "read at " + std::to_string(off) + ": " + ErrName(errno);
    if (n == 0) break;
    FillPattern(seed, off, want.data(), static_cast<size_t>(n));
    if (memcmp(got.data(), want.data(), static_cast<size_t>(n)) != 0) {
      return "content differs in the " + std::to_string(n) + " bytes at offset " + std::to_string(off);
    }
    off += static_cast<uint64_t>(n);
    if (off > size) break;
  }
  if (off != size) return "read " + std::to_string(off) + " bytes, want " + std::to_string(size);
  int e = fd.Close();
  if (e != 0) return "close: " + ErrName(e);
  return "";
}

// Writes `size` bytes of pattern `seed` to a new file (4 MiB at a time).
int WritePatternFile(const std::string& path, uint64_t seed, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  std::vector<char> buf(4 * kMiB);
  for (uint64_t off = 0; off < size;) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
    FillPattern(seed, off, buf.data(), len);
    ssize_t n = ::pwrite(fd, buf.data(), len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      ::close(fd);
      return e;
    }
    off += static_cast<uint64_t>(n);
  }
  return ::close(fd) == 0 ? 0 : errno;
}

std::string FetchedLine(uint64_t ino) { return "fetched inode " + std::to_string(ino) + " version "; }
std::string FetchFailedLine(uint64_t ino) { return "fetch of inode " + std::to_string(ino) + " version "; }

// ------------------------------------------------ SHA-256 and HMAC --
// Test-local, so the peer protocol can be spoken without linking OpenSSL.

class Sha256 {
 public:
  Sha256() { Reset(); }
  void Reset() {
    h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    len_ = 0;
    buf_.clear();
  }
  void Update(const std::string& data) {
    len_ += data.size();
    buf_ += data;
    size_t off = 0;
    for (; off + 64 <= buf_.size(); off += 64) Block(reinterpret_cast<const unsigned char*>(buf_.data() + off));
    buf_.erase(0, off);
  }
  std::string Final() {
    uint64_t bits = len_ * 8;
    std::string pad(1, '\x80');
    while ((buf_.size() + pad.size()) % 64 != 56) pad.push_back('\0');
    for (int i = 7; i >= 0; --i) pad.push_back(static_cast<char>(bits >> (8 * i)));
    uint64_t keep = len_;
    Update(pad);
    len_ = keep;
    std::string out;
    for (uint32_t v : h_) {
      for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
    }
    return out;
  }
  static std::string Digest(const std::string& data) {
    Sha256 s;
    s.Update(data);
    return s.Final();
  }

 private:
  static uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void Block(const unsigned char* p) {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) | (uint32_t{p[4 * i + 2]} << 8) |
             uint32_t{p[4 * i + 3]};
    }
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
    h_[5] += f;
    h_[6] += g;
    h_[7] += h;
  }
  std::array<uint32_t, 8> h_;
  uint64_t len_ = 0;
  std::string buf_;
};

std::string HmacSha256(std::string key, const std::string& msg) {
  if (key.size() > 64) key = Sha256::Digest(key);
  key.resize(64, '\0');
  std::string ipad(64, '\0'), opad(64, '\0');
  for (int i = 0; i < 64; ++i) {
    ipad[i] = static_cast<char>(key[i] ^ 0x36);
    opad[i] = static_cast<char>(key[i] ^ 0x5c);
  }
  return Sha256::Digest(opad + Sha256::Digest(ipad + msg));
}


// ------------------------------------------------- peer protocol v2 --

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetLE(const std::string& s, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[off + i]);
  return v;
}

std::string RequestBody(uint32_t node, uint64_t ino, uint64_t version, uint64_t offset, uint64_t length, uint64_t seq) {
  std::string b;
  PutU32(&b, 0x52534654);  // "TFSR"
  PutU32(&b, node);
  PutU64(&b, ino);
  PutU64(&b, version);
  PutU64(&b, offset);
  PutU64(&b, length);
  PutU64(&b, seq);
  return b;
}

// A connection to a peer server that has read the hello.
struct PeerConn {
  Fd fd;
  std::string nonce;
  std::string error;  // why it could not connect
};

bool SendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly n bytes (bounded by the socket's receive timeout). Returns
// "" or why not.
std::string RecvAll(int fd, size_t n, std::string* out) {
  out->clear();
  char buf[65536];
  while (out->size() < n) {
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out->size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return "connection closed after " + std::to_string(out->size()) + " bytes";
    if (r < 0) return "recv: " + ErrName(errno);
    out->append(buf, static_cast<size_t>(r));
  }
  return "";
}

void OpenPeer(int port, PeerConn* c) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  c->fd.Reset(fd);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    c->error = "connect: " + ErrName(errno);
    return;
  }
  std::string hello;
  std::string err = RecvAll(fd, 24, &hello);
  if (!err.empty()) {
    c->error = "hello: " + err;
    return;
  }
  if (GetLE(hello, 0, 4) != 0x50534654 || GetLE(hello, 4, 4) != 2) {
    c->error = "unexpected hello " + ToHex(hello);
    return;
  }
  c->nonce = hello.substr(8);
}

// After a refused request: the server must send nothing and close the
// connection. Returns "" or what happened instead.
std::string ExpectClosedWithoutReply(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  for (int i = 0; i < 4; ++i) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return "";
    if (n > 0)
      return "the server answered " + std::to_string(n) + " bytes (" +
             ToHex(std::string(buf, std::min<size_t>(n, 16))) + ")";
    if (errno == ECONNRESET || errno == EPIPE) return "";
    if (errno == EAGAIN || errno == EWOULDBLOCK) return "the connection was still open after 5 s";
    return "recv: " + ErrName(errno);
  }
  return "recv kept being interrupted";
}

std::string ReadSecret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// ================================================================ tests ==

// 20 MiB of random data and a few 4 KiB files written on A read
// byte-for-byte on B and C; the second read on B is local.
TEST(ClusterReplicationTest, FilesWrittenOnOneNodeReadOnTheOthers) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterFixture c;
  if (!c.Start()) return;
  const std::string big = Pattern(1, 20 * kMiB);
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "big"), big)), "OK") << c.Diagnostics();
  std::vector<std::string> small;
  for (int i = 0; i < 4; ++i) {
    small.push_back(Pattern(100 + i, 4 * kKiB));
    ASSERT_EQ(ErrName(WriteFile(c.Path(0, "small" + std::to_string(i)), small[i])), "OK");
  }
  const uint64_t ino = InoOf(c.Path(0, "big"));
  ASSERT_NE(ino, 0u);
  const uint64_t version = StoreVersion(c.DataFile(0, ino));
  EXPECT_NE(version, 0u) << "A's data file " << c.DataFile(0, ino) << " has no version xattr";

  for (size_t n : {1, 2}) {
    ExpectContent(c.Path(n, "big"), big, "first read on " + c.name(n));
    for (int i = 0; i < 4; ++i) ExpectContent(c.Path(n, "small" + std::to_string(i)), small[i], "small file");
    EXPECT_TRUE(WaitFor([&] { return c.CountInLog(n, FetchedLine(ino)) >= 1; }, kLogWait))
        << "no 'fetched inode " << ino << "' line on " << c.name(n) << "\n"
        << c.Diagnostics();
  }
  // Second read on B: served from B's own store, no new fetch.
  ExpectContent(c.Path(1, "big"), big, "second read on B");
  struct stat st;
  ASSERT_EQ(::stat(c.Path(1, "big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(big.size()));
  EXPECT_EQ(c.CountInLog(1, FetchedLine(ino)), 1u) << c.Diagnostics();
  EXPECT_EQ(c.CountInLog(1, FetchFailedLine(ino)), 0u) << c.Diagnostics();
  EXPECT_EQ(c.CountInLog(2, FetchedLine(ino)), 1u) << c.Diagnostics();
  // B's store holds the complete copy, tagged with A's version; no .part left.
  EXPECT_EQ(SizeOf(c.DataFile(1, ino)), static_cast<off_t>(big.size())) << c.DataFile(1, ino);
  EXPECT_EQ(StoreVersion(c.DataFile(1, ino)), version);
  EXPECT_FALSE(Exists(c.DataFile(1, ino) + ".part"));
  ReadResult local = ReadFile(c.DataFile(1, ino));
  EXPECT_EQ(Diff(local.data, big), "") << "B's store copy";
  // The writer never fetched its own file.
  EXPECT_EQ(c.CountInLog(0, FetchedLine(ino)), 0u);
}

// A rewrite on A (new content, new size) is what B and C read next; names
// changed on B (mkdir, rename, unlink) are seen on A and C.
TEST(ClusterReplicationTest, RewriteAndNamespaceChangesAreSeenEverywhere) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterFixture c;
  if (!c.Start()) return;
  const std::string v1 = Pattern(2, 3 * kMiB + 17);
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "f"), v1)), "OK");
  const uint64_t ino = InoOf(c.Path(0, "f"));
  ExpectContent(c.Path(1, "f"), v1, "B before the rewrite");
  ExpectContent(c.Path(2, "f"), v1, "C before the rewrite");

  // Rewrite on A: bigger, then smaller than before.
  const std::string v2 = Pattern(3, 5 * kMiB + 4093);
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "f"), v2)), "OK");
  EXPECT_EQ(SizeOf(c.Path(1, "f")), static_cast<off_t>(v2.size())) << "stat on B after A's close";
  {
    // What the kernel believes right after an open (attributes revalidated).
    Fd fd(::open(c.Path(1, "f").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_GE(fd.get(), 0) << strerror(errno);
    struct stat st;
    ASSERT_EQ(::fstat(fd.get(), &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(v2.size())) << "fstat on B of a file opened after A's close";
  }
  ExpectContent(c.Path(1, "f"), v2, "B after the rewrite", &c);
  ExpectContent(c.Path(2, "f"), v2, "C after the rewrite");
  const std::string v3 = Pattern(4, 1 * kMiB + 5);
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "f"), v3)), "OK");
  EXPECT_EQ(SizeOf(c.Path(2, "f")), static_cast<off_t>(v3.size())) << "stat on C after A's close";
  ExpectContent(c.Path(1, "f"), v3, "B after the second rewrite");
  ExpectContent(c.Path(2, "f"), v3, "C after the second rewrite", &c);
  EXPECT_TRUE(WaitFor([&] { return c.CountInLog(1, FetchedLine(ino)) == 3; }, kLogWait))
      << "B should have fetched 3 versions\n"
      << c.Diagnostics();
  // Same content on A still (the writer).
  ExpectContent(c.Path(0, "f"), v3, "A");

  // Names, changed on B.
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "doomed"), "bye")), "OK");
  ASSERT_TRUE(WaitFor([&] { return Exists(c.Path(1, "doomed")); }, kNamespaceWait));
  ASSERT_EQ(::mkdir(c.Path(1, "dir").c_str(), 0755), 0) << strerror(errno);
  ASSERT_EQ(::rename(c.Path(1, "f").c_str(), c.Path(1, "dir/g").c_str()), 0) << strerror(errno);
  ASSERT_EQ(::unlink(c.Path(1, "doomed").c_str()), 0) << strerror(errno);
  for (size_t n : {0, 2}) {
    struct stat st;
    EXPECT_TRUE(WaitFor([&] { return StatErr(c.Path(n, "dir"), &st) == 0 && S_ISDIR(st.st_mode); }, kNamespaceWait))
        << "mkdir on B not seen on " << c.name(n);
    EXPECT_TRUE(WaitFor([&] { return StatErr(c.Path(n, "f")) == ENOENT; }, kNamespaceWait))
        << "rename on B: old name still on " << c.name(n);
    EXPECT_TRUE(WaitFor([&] { return StatErr(c.Path(n, "dir/g")) == 0; }, kNamespaceWait))
        << "rename on B: new name not on " << c.name(n);
    EXPECT_TRUE(WaitFor([&] { return StatErr(c.Path(n, "doomed")) == ENOENT; }, kNamespaceWait))
        << "unlink on B not seen on " << c.name(n);
    EXPECT_EQ(ListDir(c.mnt(n)), std::vector<std::string>{"dir"}) << "root listing on " << c.name(n);
    EXPECT_EQ(ListDir(c.Path(n, "dir")), std::vector<std::string>{"g"});
    EXPECT_EQ(InoOf(c.Path(n, "dir/g")), ino) << "a rename keeps the inode";
  }
  ExpectContent(c.Path(2, "dir/g"), v3, "C, renamed file");
  ExpectContent(c.Path(0, "dir/g"), v3, "A, renamed file");
}

// A 0-byte file and a sparse file (holes inside and at the end) replicate.
TEST(ClusterReplicationTest, EmptyAndSparseFiles) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterFixture c;
  if (!c.Start()) return;
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "empty"), "")), "OK");
  // Sparse: data at 0 and at 10 MiB, a trailing hole up to 16 MiB.
  const std::string head = Pattern(5, 4 * kKiB), mid = Pattern(6, 8 * kKiB + 3);
  const size_t total = 16 * kMiB;
  {
    Fd fd(::open(c.Path(0, "sparse").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_GE(fd.get(), 0) << strerror(errno);
    ASSERT_EQ(::pwrite(fd.get(), head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    ASSERT_EQ(::pwrite(fd.get(), mid.data(), mid.size(), 10 * kMiB), static_cast<ssize_t>(mid.size()));
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(total)), 0) << strerror(errno);
    ASSERT_EQ(ErrName(fd.Close()), "OK");
  }
  std::string want(total, '\0');
  memcpy(want.data(), head.data(), head.size());
  memcpy(want.data() + 10 * kMiB, mid.data(), mid.size());
  struct stat st;
  ASSERT_EQ(::stat(c.Path(0, "sparse").c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, total) << "the writer's file should be sparse";
  for (size_t n : {1, 2}) {
    EXPECT_EQ(SizeOf(c.Path(n, "empty")), 0) << c.name(n);
    ExpectContent(c.Path(n, "empty"), "", "empty file on " + c.name(n));
    EXPECT_EQ(SizeOf(c.Path(n, "sparse")), static_cast<off_t>(total)) << c.name(n);
    ExpectContent(c.Path(n, "sparse"), want, "sparse file on " + c.name(n));
  }
  const uint64_t empty_ino = InoOf(c.Path(0, "empty"));
  EXPECT_EQ(c.CountInLog(1, FetchFailedLine(empty_ino)), 0u) << c.Diagnostics();
  // Second read of the sparse file on B is local.
  const uint64_t sparse_ino = InoOf(c.Path(0, "sparse"));
  EXPECT_TRUE(WaitFor([&] { return c.CountInLog(1, FetchedLine(sparse_ino)) == 1; }, kLogWait)) << c.Diagnostics();
  ExpectContent(c.Path(1, "sparse"), want, "second read on B");
  EXPECT_EQ(c.CountInLog(1, FetchedLine(sparse_ino)), 1u);
}

// Two writers of one file on two nodes, both open before either closes: the
// first close publishes; the second fails with EIO and publishes nothing.
TEST(ClusterConsistencyTest, ConcurrentWritersSecondCloseFailsWithEio) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterFixture c;
  if (!c.Start()) return;
  const std::string base = std::string(4096, 'b');
  ASSERT_EQ(ErrName(WriteFile(c.Path(2, "shared"), base)), "OK");  // owned by C
  const std::string a_content = Pattern(7, 8192 + 11), b_content = Pattern(8, 12288 + 7);

  Fd fa(::open(c.Path(0, "shared").c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_GE(fa.get(), 0) << "open on A: " << strerror(errno) << "\n" << c.Diagnostics();
  Fd fb(::open(c.Path(1, "shared").c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_GE(fb.get(), 0) << "open on B: " << strerror(errno) << "\n" << c.Diagnostics();
  ASSERT_EQ(::pwrite(fa.get(), a_content.data(), a_content.size(), 0), static_cast<ssize_t>(a_content.size()));
  ASSERT_EQ(::pwrite(fb.get(), b_content.data(), b_content.size(), 0), static_cast<ssize_t>(b_content.size()));
  EXPECT_EQ(ErrName(fa.Close()), "OK") << "first close (A) must publish\n" << c.Diagnostics();
  EXPECT_EQ(ErrName(fb.Close()), "EIO") << "second close (B) started from an older version\n" << c.Diagnostics();
  EXPECT_TRUE(
      WaitFor([&] { return c.CountInLog(1, "first") >= 1 && c.CountInLog(1, "another node wrote") >= 1; }, kLogWait))
      << c.Diagnostics();

  // Exactly A's content everywhere, B's own node included.
  ExpectContent(c.Path(2, "shared"), a_content, "C after the conflict", &c);
  ExpectContent(c.Path(0, "shared"), a_content, "A after the conflict");
  ExpectContent(c.Path(1, "shared"), a_content, "B after the conflict");
  EXPECT_EQ(SizeOf(c.Path(2, "shared")), static_cast<off_t>(a_content.size()));
}

// Sequential writers on two nodes both succeed; the last one wins everywhere.
TEST(ClusterConsistencyTest, SequentialWritersBothSucceed) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterFixture c;
  if (!c.Start()) return;
  const std::string v0 = Pattern(9, 100 * kKiB);
  ASSERT_EQ(ErrName(WriteFile(c.Path(2, "seq"), v0)), "OK");
  // A rewrites it (truncating), then B rewrites it in place (no truncation,
  // B never read it before), then C appends.
  const std::string a_content = Pattern(10, 60 * kKiB + 1);
  EXPECT_EQ(ErrName(WriteFile(c.Path(0, "seq"), a_content, O_WRONLY | O_TRUNC)), "OK") << c.Diagnostics();
  ExpectContent(c.Path(1, "seq"), a_content, "B after A's close");
  const std::string b_content = Pattern(11, 200 * kKiB + 3);
  EXPECT_EQ(ErrName(WriteFile(c.Path(1, "seq"), b_content, O_WRONLY)), "OK") << c.Diagnostics();
  for (size_t n : {0, 1, 2}) ExpectContent(c.Path(n, "seq"), b_content, "after B's close, on " + c.name(n));

  // Truncating writer on a node that never had the content.
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "seq2"), Pattern(12, 50 * kKiB))), "OK");
  const std::string b2 = Pattern(13, 7 * kKiB);
  EXPECT_EQ(ErrName(WriteFile(c.Path(1, "seq2"), b2, O_WRONLY | O_TRUNC)), "OK") << c.Diagnostics();
  for (size_t n : {0, 1, 2}) ExpectContent(c.Path(n, "seq2"), b2, "seq2 on " + c.name(n));
  // Append on C.
  const std::string tail = Pattern(14, 3 * kKiB);
  EXPECT_EQ(ErrName(WriteFile(c.Path(2, "seq2"), tail, O_WRONLY | O_APPEND)), "OK") << c.Diagnostics();
  for (size_t n : {0, 1, 2}) ExpectContent(c.Path(n, "seq2"), b2 + tail, "seq2 after append, on " + c.name(n));
}

// Common part of the owner-failure tests: a large file on A (stores on a
// private tmpfs), B starts reading it, A is stopped in the middle of the
// transfer. Returns false (with failures) if the setup did not work.
struct MidTransfer {
  static constexpr uint64_t kSeed = 77;
  uint64_t ino = 0;
  std::string part;
  off_t part_size = -1;
};

bool StartTransferAndStopOwner(ClusterFixture& c, const std::string& name, uint64_t size, Fd* reader, MidTransfer* t) {
  EXPECT_EQ(ErrName(WritePatternFile(c.Path(0, name), MidTransfer::kSeed, size)), "OK") << c.Diagnostics();
  if (::testing::Test::HasFailure()) return false;
  t->ino = InoOf(c.Path(0, name));
  t->part = c.DataFile(1, t->ino) + ".part";
  reader->Reset(::open(c.Path(1, name).c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_GE(reader->get(), 0) << "open on B: " << strerror(errno);
  if (reader->get() < 0) return false;
  // Read the first MiB on B: the transfer is running.
  EXPECT_EQ(ErrName(PreadEquals(reader->get(), 0, Pattern(MidTransfer::kSeed, kMiB))), "OK") << c.Diagnostics();
  // Freeze A right there, so that the transfer is certainly unfinished.
  c.mount(0)->KillDaemon(SIGSTOP);
  struct stat st;
  EXPECT_EQ(::stat(t->part.c_str(), &st), 0)
      << "B has no " << t->part << " while A is stopped (transfer already finished?)";
  if (::testing::Test::HasFailure()) return false;
  t->part_size = st.st_size;
  std::cout << "[ info     ] owner stopped with " << st.st_size << " of " << size << " bytes on B\n";
  EXPECT_LT(static_cast<uint64_t>(st.st_size), size) << "transfer finished before A was stopped";
  EXPECT_FALSE(Exists(c.DataFile(1, t->ino))) << "complete copy on B before the transfer ended";
  return !::testing::Test::HasFailure();
}

// A is killed (kill -9) in the middle of a transfer to B: B's reads of the
// rest fail with EIO within the peer timeout, no copy is left on B; once A
// is back (same store, node id and port) the file reads byte-for-byte.
TEST(ClusterFailureTest, OwnerKilledMidTransfer) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  o.tmpfs_size = "1200m";
  o.peer_timeout = "2";
  ClusterFixture c(o);
  if (!c.Start()) return;
  const uint64_t size = 400 * kMiB;
  Fd reader;
  MidTransfer t;
  bool started = StartTransferAndStopOwner(c, "big", size, &reader, &t);
  ScopeExit resume([&] { c.mount(0)->KillDaemon(SIGCONT); });
  if (!started) return;
  resume.Dismiss();
  auto killed_at = Clock::now();
  c.KillNode(0);  // SIGKILL (stopped or not), then `tempfs umount` of the dead mount

  // The rest of the file cannot arrive: reads beyond what came fail with EIO.
  const uint64_t last = size - kMiB;
  Bounded r = RunBounded([&] { return PreadEquals(reader.get(), last, Pattern(MidTransfer::kSeed, kMiB, last)); },
                         milliseconds(15000));
  auto failed_after = std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at);
  EXPECT_TRUE(r.finished) << "read on B still blocked 15 s after A was killed\n" << c.Diagnostics();
  EXPECT_EQ(ErrName(r.code), "EIO") << c.Diagnostics();
  EXPECT_LT(failed_after.count(), 2000 + 5000) << "EIO should come within --peer-timeout + 5 s";
  // No copy on B: the .part goes away and is never renamed into place.
  EXPECT_TRUE(WaitFor([&] { return !Exists(t.part); }, kLogWait)) << t.part << " left behind";
  EXPECT_FALSE(Exists(c.DataFile(1, t.ino))) << "an incomplete copy became B's data file";
  EXPECT_TRUE(WaitFor([&] { return c.CountInLog(1, FetchFailedLine(t.ino)) >= 1; }, kLogWait)) << c.Diagnostics();
  EXPECT_EQ(c.CountInLog(1, FetchedLine(t.ino)), 0u) << c.Diagnostics();
  // Later opens on B fail too while A is away (and leave nothing behind).
  Bounded again = RunBounded([&] { return ReadFile(c.Path(1, "big")).err; }, milliseconds(15000));
  EXPECT_TRUE(again.finished);
  EXPECT_NE(ErrName(again.code), "OK") << "read a file whose only copy is on a dead node";
  EXPECT_TRUE(WaitFor([&] { return !Exists(t.part); }, kLogWait));
  EXPECT_FALSE(Exists(c.DataFile(1, t.ino)));
  reader.Close();

  // A comes back: B reads the whole file.
  ASSERT_TRUE(c.RestartNode(0));
  EXPECT_EQ(CheckPatternFile(c.Path(1, "big"), MidTransfer::kSeed, size), "") << c.Diagnostics();
  EXPECT_TRUE(WaitFor([&] { return c.CountInLog(1, FetchedLine(t.ino)) == 1; }, kLogWait)) << c.Diagnostics();
  EXPECT_EQ(SizeOf(c.DataFile(1, t.ino)), static_cast<off_t>(size));
  EXPECT_FALSE(Exists(t.part));
}

// A silent owner (stopped, not dead): B's reads of the rest fail with EIO
// within about --peer-timeout; once A runs again, B reads the whole file.
TEST(ClusterFailureTest, SilentOwnerMidTransfer) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  o.tmpfs_size = "800m";
  o.peer_timeout = "2";
  ClusterFixture c(o);
  if (!c.Start()) return;
  const uint64_t size = 256 * kMiB;
  Fd reader;
  MidTransfer t;
  bool started = StartTransferAndStopOwner(c, "big", size, &reader, &t);
  ScopeExit resume([&] { c.mount(0)->KillDaemon(SIGCONT); });
  if (!started) return;
  auto stopped_at = Clock::now();
  const uint64_t last = size - kMiB;
  Bounded r = RunBounded([&] { return PreadEquals(reader.get(), last, Pattern(MidTransfer::kSeed, kMiB, last)); },
                         milliseconds(15000));
  auto failed_after = std::chrono::duration_cast<milliseconds>(Clock::now() - stopped_at);
  EXPECT_TRUE(r.finished) << "read on B still blocked 15 s after A went silent\n" << c.Diagnostics();
  EXPECT_EQ(ErrName(r.code), "EIO") << c.Diagnostics();
  EXPECT_LT(failed_after.count(), 2000 + 5000) << "EIO should come within --peer-timeout + 5 s";
  EXPECT_GE(failed_after.count(), 1000) << "gave up on a silent peer long before --peer-timeout (2 s)";
  EXPECT_TRUE(WaitFor([&] { return !Exists(t.part); }, kLogWait)) << t.part << " left behind";
  EXPECT_FALSE(Exists(c.DataFile(1, t.ino)));
  reader.Close();

  resume.Dismiss();
  c.mount(0)->KillDaemon(SIGCONT);
  EXPECT_EQ(CheckPatternFile(c.Path(1, "big"), MidTransfer::kSeed, size), "") << c.Diagnostics();
  EXPECT_EQ(SizeOf(c.DataFile(1, t.ino)), static_cast<off_t>(size));
}

// Redis stopped and started again (same port, AOF): while it is down,
// metadata operations fail within a bound and open files still read;
// afterwards everything works without restarting the daemons.
TEST(ClusterFailureTest, RedisRestart) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.persistent_redis = true;
  ClusterFixture c(o);
  if (!c.Start()) return;
  const std::string f = Pattern(15, 256 * kKiB), g = Pattern(16, 1000);
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "f"), f)), "OK");
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "g"), g)), "OK");
  ExpectContent(c.Path(1, "f"), f, "B before Redis stops");
  Fd open_a(::open(c.Path(0, "f").c_str(), O_RDONLY | O_CLOEXEC));
  Fd open_b(::open(c.Path(1, "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(open_a.get(), 0);
  ASSERT_GE(open_b.get(), 0);

  ASSERT_TRUE(c.StopRedis());
  ASSERT_FALSE(RedisPing(c.redis().port(), milliseconds(500)));
  const milliseconds limit(15000), fast(10000);
  Bounded mk = RunBounded([&] { return ::mkdir(c.Path(1, "while-down").c_str(), 0755) == 0 ? 0 : errno; }, limit);
  EXPECT_TRUE(mk.finished) << "mkdir hung with Redis down";
  EXPECT_NE(ErrName(mk.code), "OK") << "mkdir succeeded with Redis down";
  EXPECT_LT(mk.elapsed.count(), fast.count());
  Bounded st = RunBounded([&] { return StatErr(c.Path(2, "g")); }, limit);
  EXPECT_TRUE(st.finished) << "stat hung with Redis down";
  EXPECT_NE(ErrName(st.code), "OK") << "stat of an uncached name succeeded with Redis down";
  EXPECT_NE(ErrName(st.code), "ENOENT") << "an existing name reported missing while Redis is down";
  EXPECT_LT(st.elapsed.count(), fast.count());
  Bounded ra = RunBounded([&] { return PreadEquals(open_a.get(), 0, f); }, limit);
  EXPECT_TRUE(ra.finished && ra.code == 0) << "open file on A: " << ErrName(ra.code);
  Bounded rb = RunBounded([&] { return PreadEquals(open_b.get(), 0, f); }, limit);
  EXPECT_TRUE(rb.finished && rb.code == 0) << "open file on B: " << ErrName(rb.code);

  ASSERT_TRUE(c.StartRedis());
  // The first operations after the restart must work (no daemon restart).
  Bounded mk2 = RunBounded([&] { return ::mkdir(c.Path(1, "after").c_str(), 0755) == 0 ? 0 : errno; }, limit);
  EXPECT_TRUE(mk2.finished && mk2.code == 0) << "first mkdir on B after Redis came back: " << ErrName(mk2.code) << "\n"
                                             << c.Diagnostics();
  Bounded st2 = RunBounded([&] { return StatErr(c.Path(2, "g")); }, limit);
  EXPECT_TRUE(st2.finished && st2.code == 0) << "first stat on C after Redis came back: " << ErrName(st2.code);
  Bounded st3 = RunBounded([&] { return StatErr(c.Path(0, "after")); }, limit);
  EXPECT_TRUE(st3.finished && st3.code == 0) << "first stat on A after Redis came back: " << ErrName(st3.code);
  // Eventually, at the latest, everything works.
  EXPECT_TRUE(WaitFor([&] { return StatErr(c.Path(0, "after")) == 0 && StatErr(c.Path(2, "after")) == 0; },
                      milliseconds(10000)))
      << c.Diagnostics();
  EXPECT_FALSE(Exists(c.Path(0, "while-down")));
  ExpectContent(c.Path(2, "g"), g, "C reads a file written before the restart", &c);
  const std::string h = Pattern(17, 300 * kKiB);
  EXPECT_EQ(ErrName(WriteFile(c.Path(2, "h"), h)), "OK") << c.Diagnostics();
  ExpectContent(c.Path(0, "h"), h, "A reads a file written on C after the restart", &c);
  ExpectContent(c.Path(1, "f"), f, "B re-reads f", &c);
}

// The SHA-256/HMAC used below, against RFC 4231 test case 2 and FIPS 180-2.
TEST(ClusterAuthTest, TestHmacMatchesRfc4231) {
  EXPECT_EQ(ToHex(Sha256::Digest("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ToHex(Sha256::Digest(std::string(1000, 'a'))),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
  EXPECT_EQ(ToHex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// Requests without the right HMAC get no answer: the server closes the
// connection and logs it. A correct request (our own HMAC) is answered.
TEST(ClusterAuthTest, RequestsWithoutTheRightMacAreRefused) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  ClusterFixture c(o);
  if (!c.Start()) return;
  const std::string content = Pattern(18, 100 * kKiB + 1);
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "f"), content)), "OK");
  const uint64_t ino = InoOf(c.Path(0, "f"));
  const uint64_t version = StoreVersion(c.DataFile(0, ino));
  ASSERT_NE(version, 0u);
  const std::string secret = ReadSecret(c.secret_file());
  const int port = c.peer_port(0);
  const std::string refused = "request refused: bad authentication";
  size_t refusals = c.CountInLog(0, refused);
  auto expect_refused = [&](PeerConn& conn, const std::string& what) {
    EXPECT_EQ(ExpectClosedWithoutReply(conn.fd.get()), "") << what;
    ++refusals;
    EXPECT_TRUE(WaitFor([&] { return c.CountInLog(0, refused) >= refusals; }, kLogWait))
        << what << ": no '" << refused << "' line on A\n"
        << c.Diagnostics();
  };

  // Positive control: the right secret.
  {
    PeerConn conn;
    OpenPeer(port, &conn);
    ASSERT_EQ(conn.error, "");
    std::string body = RequestBody(4242, ino, version, 0, content.size(), 1);
    ASSERT_TRUE(SendAll(conn.fd.get(), body + HmacSha256(secret, conn.nonce + body)));
    std::string head, data, mac;
    ASSERT_EQ(RecvAll(conn.fd.get(), 16 + 32, &head), "") << c.Diagnostics();
    EXPECT_EQ(GetLE(head, 0, 4), 0u) << "status";
    ASSERT_EQ(GetLE(head, 8, 8), content.size()) << "length";
    EXPECT_EQ(ToHex(head.substr(16)), ToHex(HmacSha256(secret, conn.nonce + "TFSH" + body + head.substr(0, 16))))
        << "the response head's MAC";
    ASSERT_LT(content.size(), kMiB) << "one frame";
    ASSERT_EQ(RecvAll(conn.fd.get(), content.size(), &data), "");
    EXPECT_EQ(Diff(data, content), "");
    ASSERT_EQ(RecvAll(conn.fd.get(), 16, &mac), "") << "the frame's tag";
    EXPECT_EQ(c.CountInLog(0, refused), refusals);
    // The same request again (same seq) on this connection: a replay.
    ASSERT_TRUE(SendAll(conn.fd.get(), body + HmacSha256(secret, conn.nonce + body)));
    expect_refused(conn, "replayed request (same seq)");
  }
  // A MAC made with another key.
  {
    PeerConn conn;
    OpenPeer(port, &conn);
    ASSERT_EQ(conn.error, "");
    std::string body = RequestBody(4242, ino, version, 0, content.size(), 1);
    ASSERT_TRUE(SendAll(conn.fd.get(), body + HmacSha256(secret + "x", conn.nonce + body)));
    expect_refused(conn, "MAC under a wrong key");
  }
  // 32 zero bytes for a MAC.
  {
    PeerConn conn;
    OpenPeer(port, &conn);
    ASSERT_EQ(conn.error, "");
    std::string body = RequestBody(4242, ino, version, 0, content.size(), 1);
    ASSERT_TRUE(SendAll(conn.fd.get(), body + std::string(32, '\0')));
    expect_refused(conn, "zero MAC");
  }
  // The right key, but another connection's nonce.
  {
    PeerConn first, second;
    OpenPeer(port, &first);
    OpenPeer(port, &second);
    ASSERT_EQ(first.error, "");
    ASSERT_EQ(second.error, "");
    ASSERT_NE(first.nonce, second.nonce) << "two connections got the same nonce";
    std::string body = RequestBody(4242, ino, version, 0, content.size(), 1);
    ASSERT_TRUE(SendAll(second.fd.get(), body + HmacSha256(secret, first.nonce + body)));
    expect_refused(second, "MAC over another connection's nonce");
  }
  // No MAC at all: the body, then end of stream.
  {
    PeerConn conn;
    OpenPeer(port, &conn);
    ASSERT_EQ(conn.error, "");
    std::string body = RequestBody(4242, ino, version, 0, content.size(), 1);
    ASSERT_TRUE(SendAll(conn.fd.get(), body));
    ::shutdown(conn.fd.get(), SHUT_WR);
    EXPECT_EQ(ExpectClosedWithoutReply(conn.fd.get()), "") << "request without a MAC";
  }
  // The cluster still works for real nodes.
  ExpectContent(c.Path(1, "f"), content, "B reads after the refused requests");
}

// A secret file readable by others (or too short) is refused at mount time
// with a one-line error, and nothing is mounted.
TEST(ClusterAuthTest, BadSecretFileIsRefusedAtMount) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 1;
  ClusterFixture c(o);
  if (!c.Start()) return;
  const std::string node_dir = c.dir() + "/X";
  ASSERT_EQ(::mkdir(node_dir.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((node_dir + "/store").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((node_dir + "/mnt").c_str(), 0755), 0);
  struct Case {
    std::string name;
    std::string content;
    mode_t mode;
  };
  const std::vector<Case> cases = {{"world-readable", std::string(40, 'k'), 0644},
                                   {"group-readable", std::string(40, 'k'), 0640},
                                   {"too-short", "short-secret", 0600}};
  for (const auto& k : cases) {
    const std::string path = node_dir + "/secret-" + k.name;
    {
      Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      ASSERT_GE(fd.get(), 0);
      ASSERT_EQ(::write(fd.get(), k.content.data(), k.content.size()), static_cast<ssize_t>(k.content.size()));
      ASSERT_EQ(::fchmod(fd.get(), k.mode), 0);
    }
    CommandResult r = RunCommand(
        {TempfsBin(), "mount", "--store", node_dir + "/store", node_dir + "/mnt", "--meta", c.redis().uri(),
         "--node-id", "X", "--listen", "127.0.0.1:" + std::to_string(FreeLoopbackPort()), "--secret-file", path},
        milliseconds(30000));
    EXPECT_NE(r.exit_code, 0) << k.name << ": mount succeeded";
    std::string err = r.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    EXPECT_FALSE(err.empty()) << k.name << ": no error message";
    EXPECT_EQ(err.find('\n'), std::string::npos) << k.name << ": not one line:\n" << r.err;
    EXPECT_NE(err.find("secret"), std::string::npos) << k.name << ": does not name the secret file: " << err;
    EXPECT_FALSE(IsMountPoint(node_dir + "/mnt")) << k.name;
    if (IsMountPoint(node_dir + "/mnt")) RunCommand({TempfsBin(), "umount", node_dir + "/mnt"});
  }
}

// ------------------------------------------------- namespace identity --

// Every data file of a store, as "XX/INO".
std::set<std::string> DataFiles(const std::string& store) {
  std::set<std::string> out;
  for (const std::string& sub : ListDir(store + "/data")) {
    for (const std::string& f : ListDir(store + "/data/" + sub)) out.insert(sub + "/" + f);
  }
  return out;
}

CommandResult RedisCli(int port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(10));
}

CommandResult AdminCmd(const std::string& mnt, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TEMPFS_ADMIN_BIN, "--mount", mnt};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(60));
}

// One request on the node's control socket (as tempfs-admin sends it, but
// without looking at the mount first); returns the reply line ("" on failure).
std::string ControlRequest(const std::string& store, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  ScopeExit close_fd([fd] { ::close(fd); });
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::string path = store + "/control.sock";
  if (path.size() >= sizeof sa.sun_path) return "";
  memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return "";
  std::string line = request + "\n";
  if (!SendAll(fd, line)) return "";
  std::string reply;
  char c;
  while (reply.size() < 65536 && ::read(fd, &c, 1) == 1 && c != '\n') reply.push_back(c);
  return reply;
}

// Writes `per_node` files on each node; returns each store's data files.
std::vector<std::set<std::string>> WriteOnEveryNode(ClusterFixture& c, int per_node) {
  std::vector<std::set<std::string>> files;
  for (size_t i = 0; i < c.size(); i++) {
    for (int k = 0; k < per_node; k++) {
      std::string name = c.name(i) + "-" + std::to_string(k);
      EXPECT_EQ(ErrName(WriteFile(c.Path(i, name), Pattern(100 * i + k, 3000 + k))), "OK") << name;
    }
  }
  // One copy of another node's file, too (a cached copy is data as well).
  ExpectContent(c.Path(1, c.name(0) + "-0"), Pattern(0, 3000), "B reads A's file", &c);
  // Settled: the copy renamed into place.
  EXPECT_TRUE(WaitFor([&] { return Exists(c.DataFile(1, InoOf(c.Path(0, c.name(0) + "-0")))); }, kLogWait));
  for (size_t i = 0; i < c.size(); i++) files.push_back(DataFiles(c.store(i)));
  return files;
}

// After Redis lost the namespace: nothing removed (also by an explicit
// garbage collection), metadata fails with EIO, status and log say why.
void ExpectFencedAndKept(ClusterFixture& c, const std::vector<std::set<std::string>>& before) {
  for (size_t i = 0; i < c.size(); i++) {
    const std::string known = c.Path(i, c.name(i) + "-0");
    Bounded st = RunBounded([&] { return StatErr(known); }, milliseconds(15000));
    EXPECT_TRUE(st.finished) << "stat hung on node " << c.name(i);
    EXPECT_EQ(ErrName(st.code), "EIO") << "stat of a known name on node " << c.name(i);
    Bounded mk = RunBounded([&] { return ::mkdir(c.Path(i, "new-dir").c_str(), 0755) == 0 ? 0 : errno; },
                            milliseconds(15000));
    EXPECT_EQ(ErrName(mk.code), "EIO") << "mkdir on node " << c.name(i);
    // The pass that removed everything before: run it now rather than in 30 s.
    std::string gc = ControlRequest(c.store(i), R"({"cmd":"gc"})");
    EXPECT_NE(gc.find("\"removed_files\":0"), std::string::npos) << gc;
    CommandResult status = AdminCmd(c.mnt(i), {"status"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find("FENCED"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("lost namespace"), std::string::npos) << status.out;
    EXPECT_EQ(DataFiles(c.store(i)), before[i]) << "data files removed on node " << c.name(i) << "\n"
                                                << c.Diagnostics();
    EXPECT_TRUE(WaitFor([&] { return c.CountInLog(i, "metadata fenced") == 1; }, kLogWait))
        << "want one 'metadata fenced' line on " << c.name(i) << "\n" << c.Diagnostics();
  }
  CommandResult keys = RedisCli(c.redis().port(), {"DBSIZE"});
  EXPECT_EQ(keys.out, "0\n") << "fenced nodes wrote into the empty Redis";
}

// Nodes rejoin a new namespace explicitly; then they work together again.
// B first, while A still runs fenced: numbers start again at 1 in the new
// namespace, which was A's, and A's old heartbeat must not lock B out.
void RejoinNewNamespace(ClusterFixture& c) {
  c.KillNode(1);
  std::vector<std::string> argv = {TempfsBin(), "mount", "--store", c.store(1), c.mnt(1)};
  std::vector<std::string> node = c.NodeArgs(1);
  argv.insert(argv.end(), node.begin(), node.end());
  CommandResult refused = RunCommand(argv, std::chrono::seconds(60));
  EXPECT_NE(refused.exit_code, 0) << "a store of a lost namespace mounted without --join-new-namespace";
  EXPECT_NE(refused.err.find("--join-new-namespace"), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  if (refused.exit_code == 0) c.KillNode(1);
  ASSERT_TRUE(c.RestartNode(1, {"--join-new-namespace"})) << c.Diagnostics();
  EXPECT_FALSE(ListDir(c.store(1) + "/lost+found").empty());
  EXPECT_TRUE(DataFiles(c.store(1)).empty()) << "the new namespace sees the old one's data";
  c.KillNode(0);
  ASSERT_TRUE(c.RestartNode(0, {"--join-new-namespace"})) << c.Diagnostics();
  const std::string f = Pattern(77, 50 * kKiB);
  EXPECT_EQ(ErrName(WriteFile(c.Path(0, "after"), f)), "OK") << c.Diagnostics();
  ExpectContent(c.Path(1, "after"), f, "B reads A's file in the new namespace", &c);
  CommandResult status = AdminCmd(c.mnt(1), {"status"});
  EXPECT_EQ(status.out.find("FENCED"), std::string::npos) << status.out;
}

TEST(ClusterNamespaceTest, FlushedRedisUnderRunningNodesKeepsEveryDataFile) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  ClusterFixture c(o);
  if (!c.Start()) return;
  auto before = WriteOnEveryNode(c, 30);
  ASSERT_GE(before[0].size(), 30u);
  ASSERT_GE(before[1].size(), 31u);
  CommandResult flush = RedisCli(c.redis().port(), {"FLUSHALL"});
  ASSERT_EQ(flush.exit_code, 0) << flush.err;
  ExpectFencedAndKept(c, before);
  RejoinNewNamespace(c);
}

TEST(ClusterNamespaceTest, RedisRestartedWithoutItsDataKeepsEveryDataFile) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;  // persistent_redis false: a restart comes back empty
  ClusterFixture c(o);
  if (!c.Start()) return;
  auto before = WriteOnEveryNode(c, 30);
  ASSERT_TRUE(c.StopRedis());
  ASSERT_TRUE(c.StartRedis());
  ExpectFencedAndKept(c, before);
  RejoinNewNamespace(c);
}

// Node B churns mkdir/rmdir of a few names; node A stats, unlinks, renames,
// rmdirs and creates the same names. A local disk answers only these.
TEST(ClusterConsistencyTest, ChurnOnOneNodeGivesOnlyPosixErrnosOnTheOther) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  ClusterFixture c(o);
  if (!c.Start()) return;
  ASSERT_EQ(::mkdir(c.Path(0, "churn").c_str(), 0755), 0);
  ASSERT_TRUE(WaitFor([&] { return Exists(c.Path(1, "churn")); }, kNamespaceWait));
  const std::vector<std::string> names = {"n0", "n1"};
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  pid_t churner = ::fork();
  if (churner == 0) {
    for (int i = 0; i < 200000 && Clock::now() < deadline; i++) {
      std::string p = c.Path(1, "churn/" + names[i % names.size()]);
      ::mkdir(p.c_str(), 0755);
      ::rmdir(p.c_str());
    }
    ::_exit(0);
  }
  ASSERT_GT(churner, 0);
  ScopeExit stop_churner([&] {
    ::kill(churner, SIGKILL);
    ::waitpid(churner, nullptr, 0);
  });
  const std::set<int> allowed = {0, ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR};
  std::map<std::string, int> bad;
  int ops = 0;
  for (int i = 0; i < 2000 && Clock::now() < deadline; i++, ops++) {
    std::string p = c.Path(0, "churn/" + names[i % names.size()]);
    int e = 0;
    std::string op;
    switch (i % 5) {
      case 0:
        op = "stat";
        e = StatErr(p);
        break;
      case 1:
        op = "unlink";
        e = ::unlink(p.c_str()) == 0 ? 0 : errno;
        break;
      case 2:
        op = "rename";
        e = ::rename(p.c_str(), (p + "x").c_str()) == 0 ? 0 : errno;
        if (e == 0) ::rmdir((p + "x").c_str());
        break;
      case 3:
        op = "rmdir";
        e = ::rmdir(p.c_str()) == 0 ? 0 : errno;
        break;
      default: {
        op = "create";
        int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        e = fd >= 0 ? 0 : errno;
        if (fd >= 0) {
          ::close(fd);
          ::unlink(p.c_str());
        }
      }
    }
    if (allowed.count(e) == 0) bad[op + " " + ErrName(e)]++;
  }
  EXPECT_GT(ops, 200);
  for (auto& [what, count] : bad) ADD_FAILURE() << what << ": " << count << " of " << ops;
  if (!bad.empty()) ADD_FAILURE() << c.Diagnostics();
}

// ------------------------------------------------------ peer faults --

// Stream offset of the first byte of file data on a new peer connection:
// after the hello (24 bytes) and the response head with its MAC (48).
constexpr uint64_t kFirstData = 24 + 48;
constexpr uint64_t kFrame = kMiB + 16;  // a full frame of data and its tag

// Two nodes; B reaches A through a FaultProxy (A listens on its peer port
// and advertises the proxy's).
struct ProxiedCluster {
  explicit ProxiedCluster(ClusterOptions o) : c(o), proxy(c.peer_port(0)) {}
  bool Start() {
    if (!proxy.Start()) return false;
    c.set_advertise_port(0, proxy.port());
    return c.Start();
  }
  ClusterFixture c;
  FaultProxy proxy;  // stopped first, before the nodes go
};

ClusterOptions TwoNodes() {
  ClusterOptions o;
  o.nodes = 2;
  o.peer_timeout = "2";
  return o;
}

// Reads `path` in a bounded child: 0 if it holds exactly pattern `seed` of
// `size` bytes, EIO if a read failed with EIO, EBADMSG if it returned other
// bytes (or another length), EPROTO for anything else; -1 if it hung.
int ReadPatternBounded(const std::string& path, uint64_t seed, uint64_t size) {
  Bounded b = RunBounded(
      [&] {
        std::string e = CheckPatternFile(path, seed, size);
        if (e.empty()) return 0;
        if (e.find("content differs") != std::string::npos || e.find("bytes, want") != std::string::npos) {
          return EBADMSG;
        }
        return e.find(": EIO") != std::string::npos ? EIO : EPROTO;
      },
      milliseconds(20000));
  return b.finished ? b.code : -1;
}

std::string ReadOutcome(int code) { return code < 0 ? "hung" : ErrName(code); }

// A byte flipped on the way in a response is caught by the frame's MAC
// before the reader sees it: the rest of the range is asked for again and
// the reader gets the right bytes. Flipped every time: EIO, never wrong bytes,
// and no copy on B. Once the network is clean again, the file reads.
TEST(PeerFaultTest, FlippedByteIsFetchedAgainNeverReturned) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ProxiedCluster p(TwoNodes());
  if (!p.Start()) return;
  ClusterFixture& c = p.c;
  const uint64_t small = 300 * kKiB, large = 12 * kMiB;  // one frame; 3 ranges of 4 frames
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "small"), 41, small)), "OK");
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "large"), 42, large)), "OK");
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "third"), 43, small)), "OK");

  p.proxy.Set({FaultProxy::Fault::kFlip, kFirstData + 1000, 1});
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "small"), 41, small)), "OK") << c.Diagnostics();
  EXPECT_EQ(p.proxy.applied(), 1) << "the byte was not flipped: the test proves nothing";
  EXPECT_TRUE(WaitFor([&] { return c.CountInLog(1, "failed its MAC") >= 1; }, kLogWait)) << c.Diagnostics();

  // In the second frame of a range of a large file.
  p.proxy.CutAll();  // no pooled connection escapes the plan
  p.proxy.Set({FaultProxy::Fault::kFlip, kFirstData + kFrame + 12345, 1});
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "large"), 42, large)), "OK") << c.Diagnostics();
  EXPECT_EQ(p.proxy.applied(), 2);

  // In the response head (its length), and in the hello's nonce (the server
  // then refuses the request and closes): asked again, right bytes.
  for (uint64_t at : {uint64_t{24 + 9}, uint64_t{12}}) {
    p.proxy.CutAll();
    const int before = p.proxy.applied();
    const std::string name = "head" + std::to_string(at);
    ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, name), at, small)), "OK");
    p.proxy.Set({FaultProxy::Fault::kFlip, at, 1});
    EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, name), at, small)), "OK") << "flip at " << at << c.Diagnostics();
    EXPECT_EQ(p.proxy.applied(), before + 1);
  }
  const int before_every = p.proxy.applied();

  // Every time: EIO, within a bound, and nothing kept on B.
  p.proxy.CutAll();
  p.proxy.Set({FaultProxy::Fault::kFlip, kFirstData + 1000, -1});
  const uint64_t ino = InoOf(c.Path(0, "third"));
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "third"), 43, small)), "EIO") << c.Diagnostics();
  EXPECT_GE(p.proxy.applied(), before_every + 3) << "gave up before trying again";
  EXPECT_TRUE(WaitFor([&] { return !Exists(c.DataFile(1, ino) + ".part"); }, kLogWait));
  EXPECT_FALSE(Exists(c.DataFile(1, ino))) << "a copy that failed its MAC became B's data";

  p.proxy.Set({});
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "third"), 43, small)), "OK") << c.Diagnostics();
}

// A connection cut in the middle of a response (or in its hello): the rest
// is asked for again on a new connection and the reader gets every byte;
// cut every time: EIO.
TEST(PeerFaultTest, CutConnectionIsFetchedAgain) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ProxiedCluster p(TwoNodes());
  if (!p.Start()) return;
  ClusterFixture& c = p.c;
  const uint64_t size = 6 * kMiB;
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "f"), 51, size)), "OK");
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "g"), 52, size)), "OK");

  p.proxy.Set({FaultProxy::Fault::kCut, kFirstData + kFrame + 777, 1});  // both ranges reach it
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "f"), 51, size)), "OK") << c.Diagnostics();
  EXPECT_EQ(p.proxy.applied(), 1) << "the connection was not cut: the test proves nothing";

  // Cut in the hello, and a changed protocol version in it: asked again.
  const uint64_t small = 100 * kKiB;
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "h1"), 53, small)), "OK");
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "h2"), 54, small)), "OK");
  p.proxy.CutAll();
  p.proxy.Set({FaultProxy::Fault::kCut, 10, 1});
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "h1"), 53, small)), "OK") << c.Diagnostics();
  EXPECT_EQ(p.proxy.applied(), 2);
  p.proxy.CutAll();
  p.proxy.Set({FaultProxy::Fault::kFlip, 5, 1});
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "h2"), 54, small)), "OK") << c.Diagnostics();
  EXPECT_EQ(p.proxy.applied(), 3);

  p.proxy.CutAll();
  p.proxy.Set({FaultProxy::Fault::kCut, kFirstData + kFrame + 5, -1});
  auto t0 = Clock::now();
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "g"), 52, size)), "EIO") << c.Diagnostics();
  EXPECT_LT(Clock::now() - t0, milliseconds(10000));
  p.proxy.Set({});
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "g"), 52, size)), "OK") << c.Diagnostics();
}

// Reading a file of A on B while the proxy applies `fault` from the middle
// of a response on: EIO within about --peer-timeout, not a hang; once the
// network is clean again the file reads.
void ExpectEioWithinBound(FaultProxy::Fault fault, uint64_t seed) {
  ProxiedCluster p(TwoNodes());
  if (!p.Start()) return;
  ClusterFixture& c = p.c;
  const uint64_t size = 2 * kMiB;
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "f"), seed, size)), "OK");
  p.proxy.Set({fault, kFirstData + kFrame + 100, -1});
  auto t0 = Clock::now();
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "f"), seed, size)), "EIO") << c.Diagnostics();
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  EXPECT_LT(took.count(), 2000 + 5000) << "EIO should come within --peer-timeout + 5 s";
  EXPECT_GE(p.proxy.applied(), 1);
  p.proxy.CutAll();
  p.proxy.Set({});
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "f"), seed, size)), "OK") << c.Diagnostics();
}

// A peer that stops sending in the middle of a response (connection open).
TEST(PeerFaultTest, StalledPeerGivesEioWithinBound) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ExpectEioWithinBound(FaultProxy::Fault::kStall, 61);
}

// A peer that never stops sending but sends about 1 KiB/s (a 1 MiB frame
// would take 17 minutes; found by the outside tester).
TEST(PeerFaultTest, TricklingPeerGivesEioWithinBound) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ExpectEioWithinBound(FaultProxy::Fault::kSlow, 62);
}

// ------------------------------------------- unauthenticated strangers --

// `n` TCP connections to a peer port that send nothing (and read nothing).
std::vector<std::unique_ptr<Fd>> OpenStrangers(int port, int n) {
  std::vector<std::unique_ptr<Fd>> out;
  for (int i = 0; i < n; ++i) {
    auto fd = std::make_unique<Fd>(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(::connect(fd->get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    out.push_back(std::move(fd));
  }
  return out;
}

// True once the server ended the connection (its hello is read and dropped).
bool ClosedByServer(int fd) {
  char buf[256];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return true;
    if (errno == EINTR) continue;
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

size_t CountClosed(const std::vector<std::unique_ptr<Fd>>& fds) {
  size_t closed = 0;
  for (auto& f : fds) closed += ClosedByServer(f->get()) ? 1 : 0;
  return closed;
}

// 64 connections that never send a byte: a real node's first read of A's
// file (a new connection) succeeds meanwhile, and A ends every one of them
// within the authentication deadline (3 s).
TEST(PeerStrangersTest, IdleConnectionsDoNotLockPeersOut) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterFixture c(TwoNodes());
  if (!c.Start()) return;
  const uint64_t size = 2 * kMiB;
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "f"), 71, size)), "OK");
  auto strangers = OpenStrangers(c.peer_port(0), 64);
  auto opened = Clock::now();
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "f"), 71, size)), "OK") << c.Diagnostics();
  EXPECT_TRUE(WaitFor([&] { return CountClosed(strangers) == strangers.size(); }, milliseconds(3000 + 3000)))
      << CountClosed(strangers) << " of 64 idle connections ended by A";
  EXPECT_LT(Clock::now() - opened, milliseconds(3000 + 3000));
  EXPECT_TRUE(WaitFor([&] { return c.CountInLog(0, "no request within") >= 1; }, kLogWait)) << c.Diagnostics();
}

// 64 connections that drip one byte every 500 ms (a request would take 40 s
// to arrive): the drip does not extend the deadline, and a real node's read
// succeeds while they drip.
TEST(PeerStrangersTest, DrippingConnectionsDoNotLockPeersOut) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterFixture c(TwoNodes());
  if (!c.Start()) return;
  const uint64_t size = 2 * kMiB;
  ASSERT_EQ(ErrName(WritePatternFile(c.Path(0, "f"), 72, size)), "OK");
  auto strangers = OpenStrangers(c.peer_port(0), 64);
  auto opened = Clock::now();
  std::atomic<bool> stop{false};
  std::atomic<size_t> open_at_end{0};
  std::thread drip([&] {
    // Bounded: at most 10 s of dripping.
    for (int round = 0; round < 20 && !stop; ++round) {
      size_t open = 0;
      for (auto& f : strangers) {
        if (!ClosedByServer(f->get()) && ::send(f->get(), "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) open++;
      }
      open_at_end = open;
      for (int i = 0; i < 10 && !stop; ++i) std::this_thread::sleep_for(milliseconds(50));
    }
  });
  ScopeExit join([&] {
    stop = true;
    drip.join();
  });
  EXPECT_EQ(ReadOutcome(ReadPatternBounded(c.Path(1, "f"), 72, size)), "OK") << c.Diagnostics();
  EXPECT_TRUE(WaitFor([&] { return CountClosed(strangers) == strangers.size(); }, milliseconds(3000 + 3000)))
      << CountClosed(strangers) << " of 64 dripping connections ended by A (" << open_at_end
      << " were still open at the last drip)";
  EXPECT_LT(Clock::now() - opened, milliseconds(3000 + 3000));
}


// A node stopped, its store wiped (a tmpfs store after a reboot), restarted
// with the same --node-id: it rejoins under its old number, and what it
// owned is lost. Those files read as EIO on every node, within a bound, with
// a log line (never empty, never zeros); files of the other node still read
// on it; new files work; the lost ones can be deleted.
TEST(ClusterFailureTest, NodeRestartedWithWipedStoreReportsItsFilesLost) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  ClusterFixture c(o);
  if (!c.Start()) return;
  const std::string on_a = Pattern(11, 200 * kKiB), on_b = Pattern(12, 300 * kKiB);
  ASSERT_EQ(ErrName(WriteFile(c.Path(0, "on-a"), on_a)), "OK");
  ASSERT_EQ(ErrName(WriteFile(c.Path(1, "on-b"), on_b)), "OK");
  ASSERT_EQ(ErrName(WriteFile(c.Path(1, "empty-b"), "")), "OK");
  const uint64_t ino_b = InoOf(c.Path(1, "on-b"));
  ASSERT_NE(ino_b, 0u);
  ASSERT_TRUE(WaitFor([&] { return Exists(c.Path(0, "on-b")); }, kNamespaceWait));

  // B goes down; its store comes back empty (no namespace.id, no data).
  CommandResult down = c.mount(1)->Unmount();
  ASSERT_EQ(down.exit_code, 0) << down.err;
  for (const auto& e : ListDir(c.store(1))) {
    ASSERT_EQ(RunCommand({"rm", "-rf", c.store(1) + "/" + e}).exit_code, 0) << e;
  }
  ASSERT_EQ(ListDir(c.store(1)), std::vector<std::string>{});
  ASSERT_TRUE(c.RestartNode(1)) << c.Diagnostics();
  EXPECT_EQ(c.CountInLog(1, "has none of its data"), 1u) << c.Diagnostics();

  // Its old file: EIO on both nodes, bounded, and it stays that way.
  for (size_t node : {1u, 0u, 1u, 0u}) {
    Bounded r = RunBounded([&] { return ReadFile(c.Path(node, "on-b")).err; }, milliseconds(15000));
    EXPECT_TRUE(r.finished) << "read of a lost file on " << c.name(node) << " hangs\n" << c.Diagnostics();
    EXPECT_EQ(ErrName(r.code), "EIO") << "on " << c.name(node) << "\n" << c.Diagnostics();
  }
  EXPECT_FALSE(Exists(c.DataFile(1, ino_b))) << "an empty data file would make it look valid";
  EXPECT_EQ(c.CountInLog(1, "data file " + c.DataFile(1, ino_b) + " is missing"), 1u) << c.Diagnostics();
  EXPECT_GE(c.CountInLog(0, "from node B failed"), 1u) << "A's log must name the node\n" << c.Diagnostics();
  // Its old empty file holds what it held: nothing.
  ExpectContent(c.Path(1, "empty-b"), "", "B's empty file on B", &c);
  ExpectContent(c.Path(0, "empty-b"), "", "B's empty file on A", &c);
  // A's file still reads on B; new files on B read on A.
  ExpectContent(c.Path(1, "on-a"), on_a, "A's file on B", &c);
  ASSERT_EQ(ErrName(WriteFile(c.Path(1, "new-b"), on_b)), "OK");
  ASSERT_TRUE(WaitFor([&] { return Exists(c.Path(0, "new-b")); }, kNamespaceWait));
  ExpectContent(c.Path(0, "new-b"), on_b, "B's new file on A", &c);
  // The lost file can be deleted (from either node).
  ASSERT_EQ(::unlink(c.Path(0, "on-b").c_str()), 0) << strerror(errno);
  EXPECT_TRUE(WaitFor([&] { return !Exists(c.Path(1, "on-b")); }, kNamespaceWait));
}

}  // namespace
}  // namespace tempfs::testing
