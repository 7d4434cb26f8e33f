// The `tempfs` command line: mount/umount success and failure paths, the
// one-line error contract, signals, foreground mode and mount options.

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

constexpr std::chrono::milliseconds kBound{15000};

std::string Errno() { return std::strerror(errno); }

// The CLI contract: a failure is reported as exactly one line on stderr.
::testing::AssertionResult IsOneLine(const std::string& text) {
  std::string body = text;
  if (!body.empty() && body.back() == '\n') body.pop_back();
  if (body.empty()) return ::testing::AssertionFailure() << "stderr is empty";
  if (body.find('\n') != std::string::npos) {
    return ::testing::AssertionFailure()
           << "stderr has " << std::count(body.begin(), body.end(), '\n') + 1 << " lines:\n"
           << text;
  }
  return ::testing::AssertionSuccess();
}

bool WriteFile(const std::string& path, const std::string& content) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  return close(fd) == 0 && ok;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "<cannot open " + path + ">";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// How many mounts sit exactly on `path` (more than one means stacking).
int MountCount(const std::string& path) {
  int count = 0;
  for (const std::string& m : MountPointsUnder(path)) count += m == path;
  return count;
}

// True while some process holds the store's flock.
bool StoreLocked(const std::string& store) {
  int fd = open((store + "/tempfs.lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool locked = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // also drops our lock if we got it
  return locked;
}

pid_t LockPid(const std::string& store) {
  std::string content = ReadFile(store + "/tempfs.lock");
  try {
    return static_cast<pid_t>(std::stol(content));
  } catch (...) {
    return -1;
  }
}

// Unmounts whatever a test mounted by hand, even if the test failed.
class UmountGuard {
 public:
  explicit UmountGuard(std::string mnt) : mnt_(std::move(mnt)) {}
  ~UmountGuard() {
    if (IsMountPoint(mnt_)) RunCommand({TempfsBin(), "umount", mnt_});
    for (int i = 0; i < 8 && IsMountPoint(mnt_); ++i) umount2(mnt_.c_str(), MNT_DETACH);
  }

 private:
  std::string mnt_;
};

// A child process that is killed and reaped if the test ends early.
class Child {
 public:
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
  }
  // fork/exec argv with stdout and stderr going to log_path.
  bool Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int log = open(log_path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (log < 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      int null_fd = open("/dev/null", O_RDONLY);
      dup2(null_fd, 0);
      dup2(log, 1);
      dup2(log, 2);
      close_range(3, ~0U, 0);
      execv(args[0], args.data());
      _exit(127);
    }
    close(log);
    return pid_ > 0;
  }
  // Bounded wait for the child to exit; true if it did.
  bool WaitExit(std::chrono::milliseconds limit) {
    return WaitFor(
        [&] {
          if (!reaped_ && waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
          return reaped_;
        },
        limit);
  }
  pid_t pid() const { return pid_; }
  bool reaped() const { return reaped_; }
  int status() const { return status_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// ---- Commands that need no mount. ----

TEST(CliBasicsTest, HelpExitsZero) {
  const CommandResult r = RunCommand({TempfsBin(), "--help"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE((r.out + r.err).find("mount"), std::string::npos)
      << "help does not mention the mount subcommand:\n"
      << Describe(r);
}

TEST(CliBasicsTest, UnknownSubcommandFails) {
  const CommandResult r = RunCommand({TempfsBin(), "frobnicate"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(r.err.empty()) << "no error message for an unknown subcommand";
}

// ---- Mounting and unmounting. ----

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TEMPFS_SKIP_IF_NO_FUSE();
    dir_ = std::make_unique<TempDir>("cli");
  }

  // Creates <dir>/<name> and returns its path.
  std::string MakeDir(const std::string& name) {
    const std::string path = dir_->path() + "/" + name;
    EXPECT_EQ(mkdir(path.c_str(), 0755), 0) << path << ": " << Errno();
    return path;
  }

  CommandResult Mount(const std::string& store, const std::string& mnt) {
    return RunCommand({TempfsBin(), "mount", "--store", store, mnt});
  }

  std::unique_ptr<TempDir> dir_;
};

TEST_F(CliTest, MountWithMissingStoreFails) {
  const std::string mnt = MakeDir("mnt");
  const std::string store = dir_->path() + "/no-such-store";
  UmountGuard guard(mnt);
  const CommandResult r = Mount(store, mnt);
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(IsOneLine(r.err));
  EXPECT_NE(r.err.find(store), std::string::npos)
      << "error does not name " << store << ": " << r.err;
  EXPECT_FALSE(IsMountPoint(mnt));
}

TEST_F(CliTest, MountOnBusyMountpointFailsHarmlessly) {
  auto m = TempfsMount::Start(dir_->path());
  ASSERT_NE(m, nullptr);
  const std::string file = m->mnt() + "/before.txt";
  ASSERT_TRUE(WriteFile(file, "written before")) << Errno();
  const pid_t pid = m->daemon_pid();

  const CommandResult r = Mount(MakeDir("store2"), m->mnt());
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(IsOneLine(r.err));
  // Nothing stacked on top, and the first mount still serves.
  EXPECT_EQ(MountCount(m->mnt()), 1) << "a second filesystem was mounted on " << m->mnt();
  EXPECT_EQ(ReadFile(file), "written before");
  EXPECT_TRUE(WriteFile(m->mnt() + "/after.txt", "x")) << Errno();
  EXPECT_TRUE(ProcessAlive(pid)) << "the first daemon died";
  EXPECT_FALSE(StoreLocked(dir_->path() + "/store2")) << "a daemon lingers on store2";
}

TEST_F(CliTest, SecondDaemonOnServedStoreFailsHarmlessly) {
  auto m = TempfsMount::Start(dir_->path());
  ASSERT_NE(m, nullptr);
  const std::string file = m->mnt() + "/before.txt";
  ASSERT_TRUE(WriteFile(file, "written before")) << Errno();
  const pid_t pid = m->daemon_pid();
  // The documented lock: STORE/tempfs.lock, flock'ed, holding the pid.
  EXPECT_EQ(LockPid(m->store()), pid);
  EXPECT_TRUE(StoreLocked(m->store())) << "tempfs.lock is not flock'ed by the daemon";

  const std::string mnt2 = MakeDir("mnt2");
  UmountGuard guard(mnt2);
  const CommandResult r = Mount(m->store(), mnt2);
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(IsOneLine(r.err));
  EXPECT_FALSE(IsMountPoint(mnt2)) << "a second daemon serves the same store";
  EXPECT_EQ(ReadFile(file), "written before");
  EXPECT_TRUE(WriteFile(m->mnt() + "/after.txt", "x")) << Errno();
  EXPECT_TRUE(ProcessAlive(pid)) << "the first daemon died";
  EXPECT_EQ(LockPid(m->store()), pid) << "the failed daemon overwrote tempfs.lock";
  EXPECT_TRUE(StoreLocked(m->store()));

  // Once the first daemon is gone, the store can be served elsewhere.
  const CommandResult u = m->Unmount();
  ASSERT_EQ(u.exit_code, 0) << Describe(u);
  const CommandResult again = Mount(m->store(), mnt2);
  EXPECT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(ReadFile(mnt2 + "/before.txt"), "written before");
}

TEST_F(CliTest, UmountOfNonMountFails) {
  const std::string plain = MakeDir("plain");
  CommandResult r = RunCommand({TempfsBin(), "umount", plain});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(IsOneLine(r.err));

  r = RunCommand({TempfsBin(), "umount", dir_->path() + "/does-not-exist"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(IsOneLine(r.err));
}

TEST_F(CliTest, UmountStopsDaemon) {
  auto m = TempfsMount::Start(dir_->path());
  ASSERT_NE(m, nullptr);
  const pid_t pid = m->daemon_pid();
  ASSERT_GT(pid, 0);
  const CommandResult r = m->Unmount();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(IsMountPoint(m->mnt()));
  // umount waits for the daemon, so it is gone by now.
  EXPECT_FALSE(ProcessAlive(pid)) << "daemon " << pid << " still runs after tempfs umount";
  EXPECT_FALSE(StoreLocked(m->store()));
}

TEST_F(CliTest, SigtermUnmountsCleanly) {
  auto m = TempfsMount::Start(dir_->path());
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(WriteFile(m->mnt() + "/kept.txt", "kept")) << Errno();
  const pid_t pid = m->daemon_pid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGTERM), 0) << Errno();
  EXPECT_TRUE(WaitFor([&] { return !IsMountPoint(m->mnt()); }, kBound))
      << "still mounted after SIGTERM";
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, kBound))
      << "daemon still runs after SIGTERM";
  // A clean exit leaves no dead mount behind.
  struct stat st {};
  EXPECT_EQ(stat(m->mnt().c_str(), &st), 0) << Errno();
  EXPECT_FALSE(StoreLocked(m->store()));
  ASSERT_TRUE(m->Remount());
  EXPECT_EQ(ReadFile(m->mnt() + "/kept.txt"), "kept");
}

TEST_F(CliTest, ForegroundModeExitsZeroOnSigterm) {
  const std::string store = MakeDir("store");
  const std::string mnt = MakeDir("mnt");
  const std::string log = dir_->path() + "/foreground.log";
  UmountGuard guard(mnt);
  Child child;
  ASSERT_TRUE(child.Spawn({TempfsBin(), "mount", "--store", store, mnt, "-f"}, log)) << Errno();
  ASSERT_TRUE(WaitFor([&] { return IsMountPoint(mnt) || child.WaitExit({}); }, kBound));
  ASSERT_FALSE(child.reaped()) << "tempfs mount -f exited (status " << child.status() << "):\n"
                               << ReadFile(log);
  ASSERT_TRUE(IsMountPoint(mnt));
  EXPECT_TRUE(WriteFile(mnt + "/fg.txt", "foreground")) << Errno();
  EXPECT_EQ(ReadFile(mnt + "/fg.txt"), "foreground");

  ASSERT_EQ(kill(child.pid(), SIGTERM), 0) << Errno();
  ASSERT_TRUE(child.WaitExit(kBound)) << "tempfs mount -f did not exit after SIGTERM:\n"
                                      << ReadFile(log);
  EXPECT_TRUE(WIFEXITED(child.status()) && WEXITSTATUS(child.status()) == 0)
      << "wait status " << child.status() << ":\n"
      << ReadFile(log);
  EXPECT_FALSE(IsMountPoint(mnt));
}

TEST_F(CliTest, FuseOptionRoIsPassedThrough) {
  {
    auto rw = TempfsMount::Start(dir_->path());
    ASSERT_NE(rw, nullptr);
    ASSERT_TRUE(WriteFile(rw->mnt() + "/existing.txt", "data")) << Errno();
  }
  auto m = TempfsMount::Start(dir_->path(), {"-o", "ro"});
  ASSERT_NE(m, nullptr) << "tempfs mount rejected -o ro";
  const std::string& mnt = m->mnt();
  EXPECT_EQ(ReadFile(mnt + "/existing.txt"), "data");

  errno = 0;
  int fd = open((mnt + "/existing.txt").c_str(), O_WRONLY | O_CLOEXEC);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS) << "opening for write: " << Errno();
  if (fd >= 0) close(fd);
  errno = 0;
  fd = open((mnt + "/new.txt").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS) << "creating: " << Errno();
  if (fd >= 0) close(fd);
  errno = 0;
  EXPECT_EQ(mkdir((mnt + "/newdir").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS) << "mkdir: " << Errno();
  errno = 0;
  EXPECT_EQ(unlink((mnt + "/existing.txt").c_str()), -1);
  EXPECT_EQ(errno, EROFS) << "unlink: " << Errno();
}

// Runs fn as uid/gid 65534 (nobody) in a child; returns its errno (0 = ok).
int AsNobody(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      _exit(255);
    }
    _exit(fn());
  }
  if (pid < 0) return -1;
  int status = 0;
  bool done = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, kBound);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -2;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -3;
}

TEST_F(CliTest, AllowOtherAndDefaultPermissions) {
  auto m = TempfsMount::Start(dir_->path());
  ASSERT_NE(m, nullptr);
  const std::string& mnt = m->mnt();
  ASSERT_EQ(chmod(mnt.c_str(), 0755), 0) << Errno();
  ASSERT_TRUE(WriteFile(mnt + "/public.txt", "for everyone")) << Errno();
  ASSERT_EQ(chmod((mnt + "/public.txt").c_str(), 0644), 0) << Errno();
  ASSERT_TRUE(WriteFile(mnt + "/private.txt", "root only")) << Errno();
  ASSERT_EQ(chmod((mnt + "/private.txt").c_str(), 0600), 0) << Errno();

  // Enter the mount as root, so only the mount itself (not our private
  // temp dir) decides what nobody may do.
  const int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(cwd, 0) << Errno();
  ASSERT_EQ(chdir(mnt.c_str()), 0) << Errno();
  auto read_as_nobody = [](const char* name, const char* want) {
    return [name, want]() -> int {
      int fd = open(name, O_RDONLY);
      if (fd < 0) return errno;
      char buf[64] = {};
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      if (n < 0) return errno;
      return std::string(buf, static_cast<size_t>(n)) == want ? 0 : 254;
    };
  };
  const int public_result = AsNobody(read_as_nobody("public.txt", "for everyone"));
  const int private_result = AsNobody(read_as_nobody("private.txt", "root only"));
  const int create_result = AsNobody([]() -> int {
    int fd = open("by-nobody.txt", O_CREAT | O_WRONLY, 0644);
    if (fd < 0) return errno;
    close(fd);
    return 0;
  });
  EXPECT_EQ(fchdir(cwd), 0) << Errno();
  close(cwd);

  EXPECT_EQ(public_result, 0) << "uid 65534 reading a 0644 file: "
                              << (public_result == EACCES ? "EACCES: allow_other is missing"
                                  : public_result > 0 && public_result < 200
                                      ? std::strerror(public_result)
                                      : "helper failed (" + std::to_string(public_result) + ")");
  // default_permissions: the kernel enforces modes for other users.
  EXPECT_EQ(private_result, EACCES)
      << "uid 65534 reading a 0600 root file: "
      << (private_result == 0 ? "allowed" : std::strerror(private_result));
  EXPECT_EQ(create_result, EACCES)
      << "uid 65534 creating in a 0755 root dir: "
      << (create_result == 0 ? "allowed" : std::strerror(create_result));
}

}  // namespace
}  // namespace tempfs::testing
