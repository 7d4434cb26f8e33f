#include "support/mount_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "gtest/gtest.h"

#ifndef TEMPFS_BIN
#error "TEMPFS_BIN must be defined to the path of the tempfs binary"
#endif

namespace tempfs::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kPollInterval{5};
constexpr milliseconds kMountTimeout{30000};
constexpr milliseconds kUmountTimeout{30000};
constexpr milliseconds kDaemonExitTimeout{10000};

void SleepPoll() { std::this_thread::sleep_for(kPollInterval); }

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string DecodeMountinfoPath(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> AllMountPoints() {
  std::vector<std::string> result;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    if (fields >> id >> parent >> devno >> root >> mount_point) {
      result.push_back(DecodeMountinfoPath(mount_point));
    }
  }
  return result;
}

std::string StripTrailingSlashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// realpath() stats every component, which fails with ENOTCONN on a dead FUSE
// mount point; canonicalizing only the parent still works there.
std::string Canonical(const std::string& path) {
  std::string p = StripTrailingSlashes(path);
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf) != nullptr) return buf;
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return p;
  std::string parent = slash == 0 ? "/" : p.substr(0, slash);
  std::string base = p.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") return p;
  if (realpath(parent.c_str(), buf) == nullptr) return p;
  std::string canon = buf;
  if (canon != "/") canon += "/";
  return canon + base;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;  // keep going: remove as much as we can
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Everything allocated before fork(): the child of a multithreaded process may
// only call async-signal-safe functions.
struct ExecArgs {
  explicit ExecArgs(const std::vector<std::string>& argv) : storage(argv) {
    for (auto& s : storage) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
};

// In the child after fork: wire fds, close everything else (so the tempfs
// daemon never inherits a test's open files on some mount) and exec.
[[noreturn]] void ExecChild(const ExecArgs& args, int out_fd, int err_fd) {
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  ::close_range(3, ~0U, 0);
  ::execvp(args.ptrs[0], args.ptrs.data());
  const char msg[] = "exec failed\n";
  (void)!::write(2, msg, sizeof(msg) - 1);
  ::_exit(127);
}

// Reads a memfd's content written so far.
void ReadFromStart(int fd, std::string* sink) {
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    sink->append(buf, static_cast<size_t>(n));
    off += n;
  }
}

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------- TempDir --

TempDir::TempDir(const std::string& tag) {
  const char* env = ::getenv("TMPDIR");
  std::string base = (env != nullptr && *env != '\0') ? env : "/tmp";
  std::string safe_tag = tag;
  std::replace(safe_tag.begin(), safe_tag.end(), '/', '_');
  std::string templ = base + "/tempfs-test-" + safe_tag + "-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp(" + templ + "): " + strerror(errno));
  }
  // Canonical, so it compares equal to paths in /proc/self/mountinfo.
  path_ = Canonical(buf.data());
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  // Deepest first; repeat because mounts can be stacked on one point.
  for (int round = 0; round < 16; ++round) {
    auto mounts = MountPointsUnder(path_);
    if (mounts.empty()) break;
    std::sort(mounts.begin(), mounts.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const auto& m : mounts) ::umount2(m.c_str(), MNT_DETACH);
  }
  // FTW_MOUNT: never descend into something we failed to unmount.
  ::nftw(path_.c_str(), RemoveEntry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

// ------------------------------------------------------------- Commands --

CommandResult RunCommand(const std::vector<std::string>& argv) {
  return RunCommand(argv, milliseconds(60000));
}

CommandResult RunCommand(const std::vector<std::string>& argv, milliseconds timeout) {
  CommandResult result;
  if (argv.empty()) {
    result.exit_code = 127;
    result.err = "RunCommand: empty argv";
    return result;
  }
  ExecArgs args(argv);
  // Output goes to memfds, not pipes: a daemon the command leaves behind may
  // inherit them, and must neither keep us waiting for EOF nor die of
  // SIGPIPE once we stop reading.
  int out_fd = ::memfd_create("tempfs-test-stdout", MFD_CLOEXEC);
  int err_fd = ::memfd_create("tempfs-test-stderr", MFD_CLOEXEC);
  if (out_fd < 0 || err_fd < 0) {
    result.err = std::string("memfd_create: ") + strerror(errno);
    if (out_fd >= 0) ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
    return result;
  }
  pid_t pid = ::fork();
  if (pid == 0) ExecChild(args, out_fd, err_fd);
  if (pid < 0) {
    result.err = std::string("fork: ") + strerror(errno);
    ::close(out_fd);
    ::close(err_fd);
    return result;
  }
  // A pidfd becomes readable exactly when the child exits.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  bool exited = false;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
      break;
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    if (pidfd >= 0) {
      pollfd p = {pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    } else {
      SleepPoll();
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ReadFromStart(out_fd, &result.out);
  ReadFromStart(err_fd, &result.err);
  ::close(out_fd);
  ::close(err_fd);
  if (!exited) {
    result.exit_code = -1;
    result.err += "\n[RunCommand: timed out after " + std::to_string(timeout.count()) +
                  " ms: " + CommandLine(argv) + "]";
  } else {
    result.exit_code = DecodeWaitStatus(status);
  }
  return result;
}

std::string TempfsBin() { return TEMPFS_BIN; }

bool WaitFor(const std::function<bool()>& cond, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    bool value = cond();
    if (value || Clock::now() >= deadline) return value;
    SleepPoll();
  }
}

std::string FuseUnavailableReason() {
  if (::geteuid() != 0) return "integration tests need root (mounting, chown, mknod)";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    return std::string("/dev/fuse not usable: ") + strerror(errno);
  }
  return "";
}

bool IsMountPoint(const std::string& path) {
  std::string canon = Canonical(path);
  for (const auto& m : AllMountPoints()) {
    if (m == canon) return true;
  }
  return false;
}

std::vector<std::string> MountPointsUnder(const std::string& dir) {
  std::string canon = Canonical(dir);
  std::string prefix = canon == "/" ? "/" : canon + "/";
  std::vector<std::string> result;
  for (const auto& m : AllMountPoints()) {
    if (m == canon || m.compare(0, prefix.size(), prefix) == 0) result.push_back(m);
  }
  return result;
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // A zombie nobody reaped yet no longer serves the mount.
  std::string stat = ReadWholeFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

// ---------------------------------------------------------- TempfsMount --

TempfsMount::TempfsMount(std::string dir, std::string store, std::string mnt,
                         std::vector<std::string> extra_args)
    : dir_(std::move(dir)),
      store_(std::move(store)),
      mnt_(std::move(mnt)),
      extra_args_(std::move(extra_args)) {}

std::unique_ptr<TempfsMount> TempfsMount::Start(const std::string& dir, std::vector<std::string> extra_args,
                                                std::string store) {
  std::string canon_dir = Canonical(dir);
  if (store.empty()) {
    store = canon_dir + "/store";
    if (::mkdir(store.c_str(), 0755) != 0 && errno != EEXIST) {
      ADD_FAILURE() << "mkdir " << store << ": " << strerror(errno);
      return nullptr;
    }
  }
  std::string mnt = canon_dir + "/mnt";
  if (::mkdir(mnt.c_str(), 0755) != 0 && errno != EEXIST) {
    ADD_FAILURE() << "mkdir " << mnt << ": " << strerror(errno);
    return nullptr;
  }
  std::unique_ptr<TempfsMount> m(new TempfsMount(canon_dir, Canonical(store), mnt, std::move(extra_args)));
  if (!m->DoMount()) return nullptr;  // the destructor cleans up half-mounts
  return m;
}

bool TempfsMount::Foreground() const {
  return std::find(extra_args_.begin(), extra_args_.end(), "-f") != extra_args_.end();
}

bool TempfsMount::DoMount() {
  std::vector<std::string> argv = {TempfsBin(), "mount", "--store", store_, mnt_};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());

  if (Foreground()) {
    // `mount -f` does not return while mounted: run it as our background
    // child and wait for the mount to appear.
    std::string log = dir_ + "/tempfs-foreground.log";
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      ADD_FAILURE() << "open " << log << ": " << strerror(errno);
      return false;
    }
    ExecArgs args(argv);
    pid_t pid = ::fork();
    if (pid == 0) ExecChild(args, fd, fd);
    ::close(fd);
    if (pid < 0) {
      ADD_FAILURE() << "fork: " << strerror(errno);
      return false;
    }
    child_pid_ = pid;
    int status = 0;
    bool child_exited = false;
    bool mounted = WaitFor(
        [&] {
          if (!child_exited && ::waitpid(pid, &status, WNOHANG) == pid) child_exited = true;
          return child_exited || IsMountPoint(mnt_);
        },
        kMountTimeout);
    if (child_exited) {
      child_pid_ = -1;
      ADD_FAILURE() << "`" << CommandLine(argv) << "` exited with " << DecodeWaitStatus(status) << ":\n"
                    << ReadWholeFile(log);
      return false;
    }
    if (!mounted) {
      ADD_FAILURE() << "`" << CommandLine(argv) << "` did not mount within " << kMountTimeout.count()
                    << " ms:\n"
                    << ReadWholeFile(log);
      return false;
    }
  } else {
    CommandResult r = RunCommand(argv, kMountTimeout);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "`" << CommandLine(argv) << "` exited with " << r.exit_code << "\nstdout: " << r.out
                    << "\nstderr: " << r.err;
      last_pid_ = ReadLockPid();
      return false;
    }
    if (!IsMountPoint(mnt_)) {
      ADD_FAILURE() << "`" << CommandLine(argv) << "` returned 0 but " << mnt_
                    << " is not a mount point\nstderr: " << r.err;
      last_pid_ = ReadLockPid();
      return false;
    }
  }
  pid_t pid = ReadLockPid();
  last_pid_ = pid > 0 ? pid : child_pid_;
  return true;
}

pid_t TempfsMount::ReadLockPid() const {
  std::string content = ReadWholeFile(store_ + "/tempfs.lock");
  char* end = nullptr;
  long v = strtol(content.c_str(), &end, 10);
  if (end == content.c_str() || v <= 0) return -1;
  return static_cast<pid_t>(v);
}

pid_t TempfsMount::daemon_pid() const {
  pid_t pid = ReadLockPid();
  return pid > 0 ? pid : last_pid_;
}

void TempfsMount::KillDaemon(int sig) {
  pid_t pid = daemon_pid();
  if (pid <= 0) {
    ADD_FAILURE() << "KillDaemon: no daemon pid for store " << store_;
    return;
  }
  if (::kill(pid, sig) != 0) {
    ADD_FAILURE() << "kill(" << pid << ", " << sig << "): " << strerror(errno);
    return;
  }
  // Signals that do not end a process: nothing to wait for.
  if (sig == 0 || sig == SIGSTOP || sig == SIGCONT || sig == SIGTSTP) return;
  bool gone = WaitFor(
      [&] {
        if (pid == child_pid_) {
          int status;
          if (::waitpid(pid, &status, WNOHANG) == pid) child_pid_ = -1;
          return child_pid_ == -1;
        }
        return !ProcessAlive(pid);
      },
      kDaemonExitTimeout);
  if (!gone) {
    ADD_FAILURE() << "daemon " << pid << " still alive " << kDaemonExitTimeout.count() << " ms after signal "
                  << sig;
  }
}

CommandResult TempfsMount::Unmount() {
  CommandResult r = RunCommand({TempfsBin(), "umount", mnt_}, kUmountTimeout);
  if (child_pid_ > 0) {
    // Foreground daemon: reap it once it exits so it does not linger as zombie.
    WaitFor(
        [&] {
          int status;
          if (::waitpid(child_pid_, &status, WNOHANG) == child_pid_) child_pid_ = -1;
          return child_pid_ == -1;
        },
        r.exit_code == 0 ? kDaemonExitTimeout : milliseconds(0));
  }
  return r;
}

bool TempfsMount::Remount() { return DoMount(); }

bool TempfsMount::Remount(const std::vector<std::string>& more_args) {
  std::vector<std::string> saved = extra_args_;
  extra_args_.insert(extra_args_.end(), more_args.begin(), more_args.end());
  bool ok = DoMount();
  extra_args_ = std::move(saved);
  return ok;
}

std::string TempfsMount::LogTail(size_t max_bytes) const {
  std::string log = store_ + "/tempfs.log";
  auto it = std::find(extra_args_.begin(), extra_args_.end(), "--log");
  if (it != extra_args_.end() && it + 1 != extra_args_.end()) log = *(it + 1);
  if (Foreground()) log = dir_ + "/tempfs-foreground.log";
  std::string content = ReadWholeFile(log);
  if (content.size() > max_bytes) content = "..." + content.substr(content.size() - max_bytes);
  return "--- " + log + " ---\n" + content;
}

bool TempfsMount::DaemonAlive() const {
  if (child_pid_ > 0) {
    // WNOWAIT: look without reaping, the destructor still waits for it.
    siginfo_t info{};
    if (::waitid(P_PID, child_pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
    return info.si_pid == 0;
  }
  return ProcessAlive(daemon_pid());
}

void TempfsMount::ReapDaemon(pid_t pid) {
  if (pid <= 0) return;
  if (pid == child_pid_) {
    int status;
    bool gone = WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) != 0; }, kDaemonExitTimeout);
    if (!gone) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    child_pid_ = -1;
    return;
  }
  if (!ProcessAlive(pid)) return;
  // The lock file can hold a stale pid, possibly reused by another test's
  // daemon: only kill a process serving this very store.
  std::string cmdline = ReadWholeFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  if (cmdline.find(" " + store_ + " ") == std::string::npos) return;
  if (WaitFor([&] { return !ProcessAlive(pid); }, milliseconds(2000))) return;
  std::cerr << "[tempfs fixture] daemon " << pid << " still running after unmount; SIGKILL\n";
  ::kill(pid, SIGKILL);
  WaitFor([&] { return !ProcessAlive(pid); }, kDaemonExitTimeout);
}

TempfsMount::~TempfsMount() {
  try {
    if (IsMountPoint(mnt_)) {
      CommandResult r = RunCommand({TempfsBin(), "umount", mnt_}, kUmountTimeout);
      if (r.exit_code != 0 || IsMountPoint(mnt_)) {
        std::cerr << "[tempfs fixture] `tempfs umount " << mnt_ << "` failed (exit " << r.exit_code
                  << "): " << r.err << "; detaching\n";
        for (int i = 0; i < 16 && IsMountPoint(mnt_); ++i) ::umount2(mnt_.c_str(), MNT_DETACH);
      }
    }
    ReapDaemon(child_pid_);
    ReapDaemon(ReadLockPid());
    if (last_pid_ != ReadLockPid()) ReapDaemon(last_pid_);
  } catch (...) {
    // A destructor must not throw; leftovers are detached by ~TempDir.
  }
}

std::string Pattern(uint64_t seed, size_t size) {
  std::string out(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x >> 32);
  }
  return out;
}

bool ReadWholeFile(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      int e = errno;
      ::close(fd);
      errno = e;
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

std::string ToHex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string ErrName(int e) {
  const char* name = strerrorname_np(e);
  return name != nullptr ? name : "errno" + std::to_string(e);
}

std::string RetStr(long ret) {
  int e = errno;
  return ret >= 0 ? std::to_string(ret) : ErrName(e);
}

}  // namespace tempfs::testing
