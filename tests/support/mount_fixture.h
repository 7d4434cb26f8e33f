// Test support for integration tests: private temp dirs, running commands and
// a real tempfs mount (through build/bin/tempfs) that is torn down even when
// the test fails.
#ifndef TEMPFS_TESTS_SUPPORT_MOUNT_FIXTURE_H_
#define TEMPFS_TESTS_SUPPORT_MOUNT_FIXTURE_H_

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

// Use at the start of every test that mounts: skips instead of failing on
// machines without FUSE.
#define TEMPFS_SKIP_IF_NO_FUSE()                                                                         \
  if (auto tempfs_skip_reason = ::tempfs::testing::FuseUnavailableReason(); !tempfs_skip_reason.empty()) \
  GTEST_SKIP() << tempfs_skip_reason

namespace tempfs::testing {

// A private directory under $TMPDIR (or /tmp), "tempfs-test-<tag>-XXXXXX";
// removed recursively in the destructor (after unmounting anything still
// mounted below it with umount2 MNT_DETACH).
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Result of running a command. exit_code is 128+signal if the command was
// killed by a signal, 127 if it could not be executed, -1 on timeout.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// fork/exec (PATH lookup, no shell), stdin from /dev/null, captures stdout and
// stderr (what was written by the time the command exits, so a daemon it
// leaves behind cannot hang us). The command is SIGKILLed after `timeout`
// (default 60 s).
CommandResult RunCommand(const std::vector<std::string>& argv);
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// Absolute path of the tempfs binary under test (compile definition TEMPFS_BIN).
std::string TempfsBin();

// Polls cond every few ms until true or limit passes; returns the last value.
// Never a bare sleep in tests.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit);

// Returns a skip reason if /dev/fuse is missing or we are not root, else "".
std::string FuseUnavailableReason();

// True if path is a mount point (per /proc/self/mountinfo).
bool IsMountPoint(const std::string& path);

// Mount points (decoded, from /proc/self/mountinfo) equal to or below `dir`.
std::vector<std::string> MountPointsUnder(const std::string& dir);

// True while `pid` exists and is not a zombie.
bool ProcessAlive(pid_t pid);

// A tempfs mount with its daemon. The destructor always leaves nothing
// mounted and no daemon running.
class TempfsMount {
 public:
  // Mounts tempfs with store `store` (created if empty string: <dir>/store)
  // at <dir>/mnt (created). extra_args are appended to the `tempfs mount`
  // command line (with "-f" the daemon is run as our child in the
  // background). Fails the test (ADD_FAILURE + returns nullptr) if mount
  // fails.
  static std::unique_ptr<TempfsMount> Start(const std::string& dir, std::vector<std::string> extra_args = {},
                                            std::string store = "");

  // `tempfs umount`; if that fails, umount2(MNT_DETACH) and SIGKILL the
  // daemon pid. Never throws.
  ~TempfsMount();
  TempfsMount(const TempfsMount&) = delete;
  TempfsMount& operator=(const TempfsMount&) = delete;

  const std::string& mnt() const { return mnt_; }
  const std::string& store() const { return store_; }

  // Read from STORE/tempfs.lock (falls back to the pid seen at mount time).
  pid_t daemon_pid() const;

  // Sends sig to the daemon and waits (bounded) until that pid is gone.
  void KillDaemon(int sig = SIGKILL);

  // Runs `tempfs umount MNT`.
  CommandResult Unmount();

  // Mounts again with the same store, mountpoint and args. Returns false
  // (with a test failure recorded) if that did not work.
  bool Remount();
  // Remount() with `more_args` added this once.
  bool Remount(const std::vector<std::string>& more_args);

  // Last max_bytes of the daemon log (the --log file if given, else
  // STORE/tempfs.log, or the foreground log), for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;

  // Whether the daemon that served this mount is still running.
  bool DaemonAlive() const;

 private:
  TempfsMount(std::string dir, std::string store, std::string mnt, std::vector<std::string> extra_args);
  bool DoMount();
  bool Foreground() const;
  // Makes sure the daemon `pid` is gone: SIGKILL if still alive, bounded wait.
  void ReapDaemon(pid_t pid);
  pid_t ReadLockPid() const;

  std::string dir_;
  std::string store_;
  std::string mnt_;
  std::vector<std::string> extra_args_;
  pid_t last_pid_ = -1;
  pid_t child_pid_ = -1;  // only with -f: the daemon is our own child
};

// Deterministic, incompressible bytes (seeded xorshift): a lost or
// misplaced block shows.
std::string Pattern(uint64_t seed, size_t size);

// Reads a whole file; returns false with errno set on failure.
bool ReadWholeFile(const std::string& path, std::string* out);

// Lower-case hex of raw bytes, for messages.
std::string ToHex(const std::string& bytes);

// The errno's name ("ENOENT"), for messages and comparisons.
std::string ErrName(int e);

// Exact return value, or the errno name. Reads errno first thing, before
// anything else can clobber it.
std::string RetStr(long ret);

}  // namespace tempfs::testing

#endif  // TEMPFS_TESTS_SUPPORT_MOUNT_FIXTURE_H_
