// POSIX parity: every scenario runs the same operation sequence on a tempfs
// mount and on a plain directory of the machine's own filesystem, records what
// each step returned (value or errno, stat fields, contents) and compares the
// two records. The plain directory is the reference; a step where they differ
// is a tempfs bug.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

constexpr uid_t kNobody = 65534;
constexpr uid_t kOtherUser = 65533;
constexpr int64_t kGiB = int64_t{1} << 30;


// "ok" or the errno name, for values that legitimately differ (fds, pointers).
std::string OkStr(long ret) {
  int e = errno;
  return ret >= 0 ? "ok" : ErrName(e);
}

// Short, diffable description of file contents.
std::string Summarize(const std::string& data) {
  bool printable = data.size() <= 64 &&
                   std::all_of(data.begin(), data.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (printable) return "\"" + data + "\"";
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  size_t zeros = 0;
  for (unsigned char c : data) {
    h = (h ^ c) * 1099511628211ull;
    zeros += c == 0;
  }
  char buf[96];
  snprintf(buf, sizeof(buf), "len=%zu zeros=%zu fnv=%016llx", data.size(), zeros,
           static_cast<unsigned long long>(h));
  return buf;
}

std::string Pattern(size_t len, unsigned seed) {
  std::string s(len, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}


std::string PreadStr(int fd, size_t len, off_t off) {
  std::string buf(len, '\0');
  ssize_t n = ::pread(fd, buf.data(), len, off);
  if (n < 0) return ErrName(errno);
  buf.resize(static_cast<size_t>(n));
  return Summarize(buf);
}

std::string TimeStr(const struct timespec& ts) {
  return std::to_string(ts.tv_sec) + "." + std::to_string(ts.tv_nsec);
}

// Runs fn in a forked child, as uid/gid (no supplementary groups) if uid >= 0,
// and returns the string fn produced. Bounded: a hung child is killed.
std::string InChild(const std::function<std::string()>& fn, int uid = -1, int gid = -1) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return "pipe: " + ErrName(errno);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string s;
    if (uid >= 0 && (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
                     ::setresuid(uid, uid, uid) != 0)) {
      s = "setres*id failed: " + ErrName(errno);
    } else {
      s = fn();
    }
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::write(fds[1], s.data() + off, s.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return "fork: " + ErrName(errno);
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool timed_out = false;
  for (;;) {
    pollfd p = {fds[0], POLLIN, 0};
    ::poll(&p, 1, 50);
    char buf[4096];
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno != EINTR && errno != EAGAIN) break;
    if (std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      break;
    }
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (timed_out) return "child timed out";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child died";
  return out;
}

// One observation of a scenario step.
struct Step {
  std::string label;
  std::string value;
  std::string expect;  // what POSIX/Linux says; checked against the plain side
};

// Records the observable results of a scenario run below one root directory.
class Recorder {
 public:
  Recorder(std::string root, time_t start) : root_(std::move(root)), start_(start) {}

  std::string P(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  const std::vector<Step>& steps() const { return steps_; }

  // Records the exact return value (byte counts, offsets) or errno.
  long Ret(const std::string& label, const std::function<long()>& op) {
    errno = 0;
    long r = op();
    std::string v = RetStr(r);
    Add(label, v, "");
    return r;
  }
  // Records success/errno; success expected.
  long Ok(const std::string& label, const std::function<long()>& op) {
    errno = 0;
    long r = op();
    std::string v = OkStr(r);
    Add(label, v, "ok");
    return r;
  }
  // Records success/errno; failure with `expected` errno expected.
  long Err(const std::string& label, const std::function<long()>& op, int expected) {
    errno = 0;
    long r = op();
    std::string v = OkStr(r);
    Add(label, v, ErrName(expected));
    return r;
  }
  // Records success/errno without an expectation (Linux-specific corners).
  long Any(const std::string& label, const std::function<long()>& op) {
    errno = 0;
    long r = op();
    std::string v = OkStr(r);
    Add(label, v, "");
    return r;
  }
  void Val(const std::string& label, const std::string& value, const std::string& expect = "") {
    Add(label, value, expect);
  }

  // lstat (or stat with follow) summary: the fields that must match.
  void Stat(const std::string& label, const std::string& rel, bool follow = false) {
    struct stat st;
    int rc = follow ? ::stat(P(rel).c_str(), &st) : ::lstat(P(rel).c_str(), &st);
    if (rc != 0) {
      Add(label, ErrName(errno), "");
      return;
    }
    Add(label, StatSummary(st), "");
  }
  void StatFollow(const std::string& label, const std::string& rel) { Stat(label, rel, true); }

  std::string StatSummary(const struct stat& st) const {
    std::string type;
    switch (st.st_mode & S_IFMT) {
      case S_IFREG:
        type = "reg";
        break;
      case S_IFDIR:
        type = "dir";
        break;
      case S_IFLNK:
        type = "lnk";
        break;
      case S_IFIFO:
        type = "fifo";
        break;
      case S_IFSOCK:
        type = "sock";
        break;
      case S_IFCHR:
        type = "chr";
        break;
      case S_IFBLK:
        type = "blk";
        break;
      default:
        type = "?";
        break;
    }
    char mode[16];
    snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    std::string s = type + " mode=" + mode + " nlink=" + std::to_string(st.st_nlink);
    // Directory sizes are filesystem specific.
    if (!S_ISDIR(st.st_mode)) s += " size=" + std::to_string(st.st_size);
    s += " uid=" + std::to_string(st.st_uid) + " gid=" + std::to_string(st.st_gid);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      s += " rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    }
    // Times: sane ordering, not equality.
    time_t now = ::time(nullptr);
    bool ctime_sane = st.st_ctim.tv_sec >= start_ && st.st_ctim.tv_sec <= now + 5;
    bool m_le_c = st.st_mtim.tv_sec < st.st_ctim.tv_sec ||
                  (st.st_mtim.tv_sec == st.st_ctim.tv_sec && st.st_mtim.tv_nsec <= st.st_ctim.tv_nsec);
    s += std::string(" ctime_sane=") + (ctime_sane ? "y" : "n") + " mtime<=ctime=" + (m_le_c ? "y" : "n");
    return s;
  }

  void Data(const std::string& label, const std::string& rel) {
    std::string content;
    if (!ReadWholeFile(P(rel), &content)) {
      Add(label, ErrName(errno), "");
      return;
    }
    Add(label, Summarize(content), "");
  }

  // Sorted "name:type" listing of a directory (without . and ..).
  void List(const std::string& label, const std::string& rel) {
    DIR* d = ::opendir(P(rel).c_str());
    if (d == nullptr) {
      Add(label, ErrName(errno), "");
      return;
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      names.push_back(n.substr(0, 40) + (n.size() > 40 ? "...(" + std::to_string(n.size()) + ")" : "") + ":" +
                      std::to_string(e->d_type));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    std::string s;
    for (const auto& n : names) s += n + " ";
    Add(label, s, "");
  }

 private:
  void Add(const std::string& label, const std::string& value, const std::string& expect) {
    steps_.push_back({label, value, expect});
  }

  std::string root_;
  time_t start_;
  std::vector<Step> steps_;
};

using Scenario = std::function<void(Recorder&)>;

// Both data paths of the daemon: kernel passthrough (the default where
// libfuse supports it) and the userspace fallback.
enum class DataPath { kDefault, kNoPassthrough };

std::string DataPathName(const ::testing::TestParamInfo<DataPath>& info) {
  return info.param == DataPath::kDefault ? "default" : "no_passthrough";
}

void PrintTo(DataPath p, std::ostream* os) {
  *os << (p == DataPath::kDefault ? "default" : "--no-passthrough");
}

class PosixParityTest : public ::testing::TestWithParam<DataPath> {
 protected:
  virtual std::vector<std::string> MountArgs() const {
    if (GetParam() == DataPath::kNoPassthrough) return {"--no-passthrough"};
    return {};
  }

  void SetUp() override {
    TEMPFS_SKIP_IF_NO_FUSE();
    start_ = ::time(nullptr) - 5;
    tmp_ = std::make_unique<TempDir>("parity");
    // Non-root children must be able to reach both trees.
    ASSERT_EQ(::chmod(tmp_->path().c_str(), 0755), 0);
    mount_ = TempfsMount::Start(tmp_->path(), MountArgs());
    ASSERT_NE(mount_, nullptr);
    ASSERT_EQ(::chmod(mount_->mnt().c_str(), 0755), 0) << strerror(errno);
    plain_ = tmp_->path() + "/plain";
    ASSERT_EQ(::mkdir(plain_.c_str(), 0755), 0);
    // Scenarios run in a fresh subdirectory on both sides so the roots match.
    ASSERT_EQ(::mkdir((mount_->mnt() + "/t").c_str(), 0755), 0) << strerror(errno);
    ASSERT_EQ(::mkdir((plain_ + "/t").c_str(), 0755), 0);
    ASSERT_EQ(::chmod((mount_->mnt() + "/t").c_str(), 0755), 0);
    ASSERT_EQ(::chmod((plain_ + "/t").c_str(), 0755), 0);
  }

  void TearDown() override {
    if (HasFailure() && mount_ != nullptr) {
      std::cout << "daemon " << (mount_->DaemonAlive() ? "alive" : "NOT RUNNING") << "\n"
                << mount_->LogTail() << std::endl;
    }
    mount_.reset();
    tmp_.reset();
  }

  std::string TempfsRoot() const { return mount_->mnt() + "/t"; }
  std::string PlainRoot() const { return plain_ + "/t"; }

  void RunBoth(const Scenario& scenario) {
    Recorder t(TempfsRoot(), start_);
    Recorder p(PlainRoot(), start_);
    scenario(t);
    scenario(p);
    Compare(t, p);
  }

  static void Compare(const Recorder& t, const Recorder& p) {
    const auto& ts = t.steps();
    const auto& ps = p.steps();
    EXPECT_EQ(ts.size(), ps.size()) << "scenario took a different path on tempfs";
    for (size_t i = 0; i < std::min(ts.size(), ps.size()); ++i) {
      const Step& a = ts[i];
      const Step& b = ps[i];
      if (!b.expect.empty() && b.value != b.expect) {
        ADD_FAILURE() << "step " << i << " [" << b.label << "]: plain dir gave " << b.value
                      << ", test expected " << b.expect << " (test assumption wrong?)";
      }
      if (a.value != b.value) {
        ADD_FAILURE() << "step " << i << " [" << a.label << "]\n  tempfs: " << a.value
                      << "\n  plain:  " << b.value;
      }
    }
  }

  time_t start_ = 0;
  std::unique_ptr<TempDir> tmp_;
  std::unique_ptr<TempfsMount> mount_;
  std::string plain_;
};

// Tests where non-root users touch the mount: FUSE only lets other users in
// with allow_other.
class PosixParityMultiUserTest : public PosixParityTest {
 protected:
  std::vector<std::string> MountArgs() const override {
    std::vector<std::string> args = PosixParityTest::MountArgs();
    args.insert(args.end(), {"-o", "allow_other"});
    return args;
  }
};

INSTANTIATE_TEST_SUITE_P(, PosixParityTest, ::testing::Values(DataPath::kDefault, DataPath::kNoPassthrough),
                         DataPathName);
INSTANTIATE_TEST_SUITE_P(, PosixParityMultiUserTest,
                         ::testing::Values(DataPath::kDefault, DataPath::kNoPassthrough), DataPathName);

// Writes all of data at the current offset; returns bytes written or -1.
long WriteStr(int fd, const std::string& data) { return ::write(fd, data.data(), data.size()); }

TEST_P(PosixParityTest, RegularFiles) {
  RunBoth([](Recorder& r) {
    int fd = r.Ok("create excl", [&] { return ::open(r.P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644); });
    r.Ret("write", [&] { return WriteStr(fd, "hello world"); });
    ::close(fd);
    r.Stat("stat after write", "f");
    r.Data("content", "f");
    r.Err(
        "O_EXCL on existing", [&] { return ::open(r.P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644); },
        EEXIST);
    int fd2 = r.Ok("O_CREAT on existing", [&] { return ::open(r.P("f").c_str(), O_CREAT | O_WRONLY, 0600); });
    ::close(fd2);
    r.Stat("O_CREAT keeps mode and data", "f");

    fd = r.Ok("open append", [&] { return ::open(r.P("f").c_str(), O_WRONLY | O_APPEND); });
    r.Ret("lseek 0", [&] { return ::lseek(fd, 0, SEEK_SET); });
    r.Ret("append write", [&] { return WriteStr(fd, "!!"); });
    r.Ret("offset after append", [&] { return ::lseek(fd, 0, SEEK_CUR); });
    r.Ret("pwrite on O_APPEND", [&] { return ::pwrite(fd, "@", 1, 0); });  // Linux appends
    ::close(fd);
    r.Data("content after append", "f");

    fd = r.Ok("open rdwr", [&] { return ::open(r.P("f").c_str(), O_RDWR); });
    r.Ret("pwrite middle", [&] { return ::pwrite(fd, "XY", 2, 3); });
    r.Val("pread middle", PreadStr(fd, 5, 2));
    r.Val("pread at EOF", PreadStr(fd, 5, 100));
    r.Ret("write after seek past EOF", [&] {
      ::lseek(fd, 20, SEEK_SET);
      return WriteStr(fd, "Z");
    });
    ::close(fd);
    r.Data("content with gap", "f");

    fd = r.Ok("open O_TRUNC", [&] { return ::open(r.P("f").c_str(), O_WRONLY | O_TRUNC); });
    r.Stat("stat after O_TRUNC", "f");
    std::string big = Pattern(300 * 1024 + 17, 1);
    r.Ret("write 300K", [&] { return WriteStr(fd, big); });
    ::close(fd);
    r.Data("300K content", "f");
    fd = ::open(r.P("f").c_str(), O_RDONLY);
    r.Err(
        "write on O_RDONLY", [&] { return WriteStr(fd, "x"); }, EBADF);
    r.Val("pread across chunk", PreadStr(fd, 70000, 131000));
    ::close(fd);

    r.Err(
        "open missing", [&] { return ::open(r.P("missing").c_str(), O_RDONLY); }, ENOENT);
    fd = r.Ok("create 0600", [&] { return ::open(r.P("g").c_str(), O_CREAT | O_RDWR, 0600); });
    ::close(fd);
    r.Stat("stat 0600", "g");
    r.Ok("unlink", [&] { return ::unlink(r.P("g").c_str()); });
    r.Err(
        "unlink again", [&] { return ::unlink(r.P("g").c_str()); }, ENOENT);

    // Open-unlinked file stays readable and writable.
    fd = ::open(r.P("h").c_str(), O_CREAT | O_RDWR, 0644);
    WriteStr(fd, "orphan");
    r.Ok("unlink open file", [&] { return ::unlink(r.P("h").c_str()); });
    r.Ret("write to unlinked", [&] { return ::pwrite(fd, "ed", 2, 6); });
    r.Val("read unlinked", PreadStr(fd, 100, 0));
    struct stat st;
    ::fstat(fd, &st);
    r.Val("fstat unlinked nlink", std::to_string(st.st_nlink), "0");
    ::close(fd);
    r.List("listing", "");
  });
}

TEST_P(PosixParityTest, Directories) {
  RunBoth([](Recorder& r) {
    r.Ok("mkdir d", [&] { return ::mkdir(r.P("d").c_str(), 0755); });
    r.Stat("stat d", "d");
    r.Ok("mkdir d/sub", [&] { return ::mkdir(r.P("d/sub").c_str(), 0700); });
    r.Stat("stat d with sub", "d");
    r.Stat("stat d/sub", "d/sub");
    r.Stat("stat root", "");
    int fd = r.Ok("create d/file", [&] { return ::open(r.P("d/file").c_str(), O_CREAT | O_WRONLY, 0644); });
    ::close(fd);
    r.List("list d", "d");
    r.Err(
        "rmdir non-empty", [&] { return ::rmdir(r.P("d").c_str()); }, ENOTEMPTY);
    r.Err(
        "rmdir of file", [&] { return ::rmdir(r.P("d/file").c_str()); }, ENOTDIR);
    r.Err(
        "unlink of dir", [&] { return ::unlink(r.P("d/sub").c_str()); }, EISDIR);
    r.Err(
        "mkdir existing dir", [&] { return ::mkdir(r.P("d").c_str(), 0755); }, EEXIST);
    r.Err(
        "mkdir existing file", [&] { return ::mkdir(r.P("d/file").c_str(), 0755); }, EEXIST);
    r.Err(
        "rmdir missing", [&] { return ::rmdir(r.P("nope").c_str()); }, ENOENT);
    r.Err(
        "rmdir dot", [&] { return ::rmdir(r.P("d/.").c_str()); }, EINVAL);
    r.Ok("rmdir sub", [&] { return ::rmdir(r.P("d/sub").c_str()); });
    r.Stat("stat d after rmdir sub", "d");
    r.Ok("unlink file", [&] { return ::unlink(r.P("d/file").c_str()); });
    r.Ok("rmdir d", [&] { return ::rmdir(r.P("d").c_str()); });
    r.Err(
        "stat removed d", [&] { return ::access(r.P("d").c_str(), F_OK); }, ENOENT);
    for (int i = 0; i < 5; ++i) {
      std::string n = "multi" + std::to_string(i);
      r.Ok("mkdir " + n, [&] { return ::mkdir(r.P(n).c_str(), 0755); });
    }
    r.Stat("root nlink with 5 subdirs", "");
    r.List("root listing", "");
    // An fd to a removed directory sees it as empty and unlinked.
    ::mkdir(r.P("gone").c_str(), 0755);
    int dfd = ::open(r.P("gone").c_str(), O_RDONLY | O_DIRECTORY);
    r.Ok("rmdir open dir", [&] { return ::rmdir(r.P("gone").c_str()); });
    r.Err(
        "create in removed dir", [&] { return ::openat(dfd, "x", O_CREAT | O_WRONLY, 0644); }, ENOENT);
    ::close(dfd);
  });
}

TEST_P(PosixParityTest, HardLinks) {
  RunBoth([](Recorder& r) {
    int fd = ::open(r.P("a").c_str(), O_CREAT | O_WRONLY, 0640);
    WriteStr(fd, "shared");
    ::close(fd);
    ::mkdir(r.P("d").c_str(), 0755);
    r.Ok("link a b", [&] { return ::link(r.P("a").c_str(), r.P("b").c_str()); });
    r.Ok("link a d/c", [&] { return ::link(r.P("a").c_str(), r.P("d/c").c_str()); });
    r.Stat("stat a (3 links)", "a");
    r.Stat("stat d/c", "d/c");
    fd = ::open(r.P("b").c_str(), O_WRONLY | O_APPEND);
    r.Ret("write via b", [&] { return WriteStr(fd, "+b"); });
    ::close(fd);
    r.Data("read via a", "a");
    r.Data("read via d/c", "d/c");
    r.Err(
        "link to existing name", [&] { return ::link(r.P("a").c_str(), r.P("b").c_str()); }, EEXIST);
    r.Err(
        "link to dir", [&] { return ::link(r.P("d").c_str(), r.P("dlink").c_str()); }, EPERM);
    r.Err(
        "link missing source", [&] { return ::link(r.P("zz").c_str(), r.P("zz2").c_str()); }, ENOENT);
    r.Err(
        "link into missing dir", [&] { return ::link(r.P("a").c_str(), r.P("no/x").c_str()); }, ENOENT);
    r.Ok("unlink a", [&] { return ::unlink(r.P("a").c_str()); });
    r.Stat("stat b after unlink a", "b");
    r.Ok("chmod via b", [&] { return ::chmod(r.P("b").c_str(), 0600); });
    r.Stat("stat d/c sees chmod", "d/c");
    r.Ok("unlink d/c", [&] { return ::unlink(r.P("d/c").c_str()); });
    r.Stat("stat b last link", "b");
    r.Data("b content", "b");
    // Links to special files.
    ::mkfifo(r.P("fifo").c_str(), 0644);
    r.Ok("link fifo", [&] { return ::link(r.P("fifo").c_str(), r.P("fifo2").c_str()); });
    r.Stat("stat fifo2", "fifo2");
    ::symlink("b", r.P("sl").c_str());
    r.Ok("link symlink (no follow)", [&] { return ::link(r.P("sl").c_str(), r.P("sl2").c_str()); });
    r.Stat("stat sl2", "sl2");
    r.Stat("stat b after symlink link", "b");
  });
}

TEST_P(PosixParityTest, Symlinks) {
  RunBoth([](Recorder& r) {
    r.Ok("symlink dangling", [&] { return ::symlink("target", r.P("s").c_str()); });
    char buf[8192];
    r.Val("readlink", [&] {
      ssize_t n = ::readlink(r.P("s").c_str(), buf, sizeof(buf));
      return n < 0 ? ErrName(errno) : std::string(buf, static_cast<size_t>(n));
    }());
    r.Ret("readlink short buffer", [&] { return ::readlink(r.P("s").c_str(), buf, 3); });
    r.Stat("lstat symlink", "s");
    r.StatFollow("stat dangling", "s");
    r.Err(
        "open dangling", [&] { return ::open(r.P("s").c_str(), O_RDONLY); }, ENOENT);
    // O_CREAT through a dangling symlink creates the target.
    int fd = r.Ok("O_CREAT via dangling", [&] { return ::open(r.P("s").c_str(), O_CREAT | O_WRONLY, 0644); });
    WriteStr(fd, "via link");
    ::close(fd);
    r.Stat("target created", "target");
    r.StatFollow("stat follows", "s");
    r.Data("read through symlink", "s");
    r.Err(
        "O_NOFOLLOW", [&] { return ::open(r.P("s").c_str(), O_RDONLY | O_NOFOLLOW); }, ELOOP);
    r.Ok("O_PATH|O_NOFOLLOW", [&] {
      int f = ::open(r.P("s").c_str(), O_PATH | O_NOFOLLOW);
      if (f >= 0) ::close(f);
      return f;
    });
    r.Err(
        "readlink of regular file", [&] { return ::readlink(r.P("target").c_str(), buf, sizeof(buf)); },
        EINVAL);
    r.Err(
        "symlink over existing", [&] { return ::symlink("x", r.P("target").c_str()); }, EEXIST);
    ::mkdir(r.P("dir").c_str(), 0755);
    ::close(::open(r.P("dir/inner").c_str(), O_CREAT | O_WRONLY, 0644));
    r.Ok("symlink to dir", [&] { return ::symlink("dir", r.P("dl").c_str()); });
    r.Stat("traverse dir symlink", "dl/inner");
    r.Err(
        "rmdir symlink to dir", [&] { return ::rmdir(r.P("dl").c_str()); }, ENOTDIR);
    r.Ok("absolute symlink", [&] { return ::symlink((r.P("dir") + "/inner").c_str(), r.P("abs").c_str()); });
    r.StatFollow("stat absolute", "abs");
    std::string long_target(4000, 'x');
    r.Ok("4000-byte target", [&] { return ::symlink(long_target.c_str(), r.P("long").c_str()); });
    r.Val("readlink long", [&] {
      ssize_t n = ::readlink(r.P("long").c_str(), buf, sizeof(buf));
      return n < 0 ? ErrName(errno) : Summarize(std::string(buf, static_cast<size_t>(n)));
    }());
    r.Stat("lstat long", "long");
    r.Ok("symlink loop a", [&] { return ::symlink("loopb", r.P("loopa").c_str()); });
    r.Ok("symlink loop b", [&] { return ::symlink("loopa", r.P("loopb").c_str()); });
    r.Err(
        "open loop", [&] { return ::open(r.P("loopa").c_str(), O_RDONLY); }, ELOOP);
    r.Ok("lchown symlink", [&] { return ::lchown(r.P("s").c_str(), 1234, 5678); });
    r.Stat("lstat after lchown", "s");
    r.Stat("target unchanged by lchown", "target");
    r.Ok("unlink symlink", [&] { return ::unlink(r.P("s").c_str()); });
    r.Stat("target survives", "target");
    r.List("listing", "");
  });
}

TEST_P(PosixParityTest, Fifos) {
  RunBoth([](Recorder& r) {
    r.Ok("mkfifo", [&] { return ::mkfifo(r.P("p").c_str(), 0640); });
    r.Stat("stat fifo", "p");
    r.Ok("mknod S_IFIFO", [&] { return ::mknod(r.P("q").c_str(), S_IFIFO | 0600, 0); });
    r.Stat("stat mknod fifo", "q");
    r.Err(
        "mkfifo existing", [&] { return ::mkfifo(r.P("p").c_str(), 0640); }, EEXIST);
    int rd = r.Ok("open read nonblock", [&] { return ::open(r.P("p").c_str(), O_RDONLY | O_NONBLOCK); });
    int wr = r.Ok("open write nonblock", [&] { return ::open(r.P("p").c_str(), O_WRONLY | O_NONBLOCK); });
    r.Ret("write fifo", [&] { return WriteStr(wr, "through the pipe"); });
    char buf[64];
    r.Val("read fifo", [&] {
      ssize_t n = ::read(rd, buf, sizeof(buf));
      return n < 0 ? ErrName(errno) : std::string(buf, static_cast<size_t>(n));
    }());
    ::close(wr);
    ::close(rd);
    r.Stat("fifo size stays 0", "p");
    r.Ok("unlink fifo", [&] { return ::unlink(r.P("p").c_str()); });
    r.List("listing", "");
  });
}

TEST_P(PosixParityTest, UnixSocket) {
  RunBoth([](Recorder& r) {
    std::string path = r.P("sock");
    ASSERT_LT(path.size(), sizeof(sockaddr_un{}.sun_path));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    r.Ok("bind", [&] { return ::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)); });
    r.Stat("stat socket", "sock");
    r.Ok("listen", [&] { return ::listen(srv, 4); });
    int cli = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    r.Ok("connect", [&] { return ::connect(cli, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)); });
    int acc = ::accept4(srv, nullptr, nullptr, SOCK_CLOEXEC);
    r.Ret("send", [&] { return ::send(cli, "ping", 4, 0); });
    char buf[8];
    r.Val("recv", [&] {
      ssize_t n = ::recv(acc, buf, sizeof(buf), 0);
      return n < 0 ? ErrName(errno) : std::string(buf, static_cast<size_t>(n));
    }());
    int srv2 = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    r.Err(
        "bind existing path", [&] { return ::bind(srv2, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)); },
        EADDRINUSE);
    for (int s : {srv, srv2, cli, acc}) ::close(s);
    r.Stat("socket node survives close", "sock");
    r.Ok("unlink socket", [&] { return ::unlink(path.c_str()); });
  });
}

TEST_P(PosixParityTest, DeviceNodes) {
  RunBoth([](Recorder& r) {
    r.Ok("mknod chr", [&] { return ::mknod(r.P("null").c_str(), S_IFCHR | 0644, makedev(1, 3)); });
    r.Stat("stat chr", "null");
    r.Ok("mknod blk", [&] { return ::mknod(r.P("loop").c_str(), S_IFBLK | 0600, makedev(7, 200)); });
    r.Stat("stat blk", "loop");
    r.Ok("mknod big dev numbers",
         [&] { return ::mknod(r.P("big").c_str(), S_IFCHR | 0600, makedev(4000, 300000)); });
    r.Stat("stat big dev", "big");
    r.Err(
        "mknod existing", [&] { return ::mknod(r.P("null").c_str(), S_IFCHR | 0644, makedev(1, 3)); },
        EEXIST);
    r.Ok("mknod regular", [&] { return ::mknod(r.P("reg").c_str(), S_IFREG | 0640, 0); });
    r.Stat("stat mknod regular", "reg");
    r.List("listing", "");
  });
}

TEST_P(PosixParityTest, RenameFiles) {
  RunBoth([](Recorder& r) {
    auto make = [&](const std::string& n, const std::string& content) {
      int fd = ::open(r.P(n).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      WriteStr(fd, content);
      ::close(fd);
    };
    make("a", "AAAA");
    make("b", "BB");
    r.Ok("rename over existing file", [&] { return ::rename(r.P("a").c_str(), r.P("b").c_str()); });
    r.Err(
        "old name gone", [&] { return ::access(r.P("a").c_str(), F_OK); }, ENOENT);
    r.Data("new name has old content", "b");
    r.Stat("stat b", "b");
    r.Ok("rename to self", [&] { return ::rename(r.P("b").c_str(), r.P("b").c_str()); });
    r.Err(
        "rename missing", [&] { return ::rename(r.P("a").c_str(), r.P("c").c_str()); }, ENOENT);
    r.Err(
        "rename into missing dir", [&] { return ::rename(r.P("b").c_str(), r.P("no/c").c_str()); }, ENOENT);
    // rename between hard links of the same inode is a no-op.
    ::link(r.P("b").c_str(), r.P("c").c_str());
    r.Ok("rename between links", [&] { return ::rename(r.P("b").c_str(), r.P("c").c_str()); });
    r.Stat("b still there", "b");
    r.Stat("c still there", "c");
    ::mkdir(r.P("d").c_str(), 0755);
    r.Ok("move into dir", [&] { return ::rename(r.P("c").c_str(), r.P("d/c").c_str()); });
    r.Stat("moved file", "d/c");
    r.Stat("b nlink after move", "b");
    // An open fd follows the file through rename and over-rename.
    make("e", "eeee");
    int fd = ::open(r.P("e").c_str(), O_RDWR);
    make("f", "ffff");
    r.Ok("rename open file", [&] { return ::rename(r.P("e").c_str(), r.P("f").c_str()); });
    r.Ret("write via old fd", [&] { return ::pwrite(fd, "E", 1, 0); });
    ::close(fd);
    r.Data("renamed content", "f");
    // The replaced inode stays alive while open.
    make("g", "victim");
    int vfd = ::open(r.P("g").c_str(), O_RDONLY);
    r.Ok("rename over open file", [&] { return ::rename(r.P("f").c_str(), r.P("g").c_str()); });
    r.Val("replaced inode still readable", PreadStr(vfd, 16, 0));
    struct stat st;
    ::fstat(vfd, &st);
    r.Val("replaced inode nlink", std::to_string(st.st_nlink), "0");
    ::close(vfd);
    r.Data("g content", "g");
    // Symlink renamed over a file.
    ::symlink("b", r.P("sl").c_str());
    r.Ok("rename symlink over file", [&] { return ::rename(r.P("sl").c_str(), r.P("g").c_str()); });
    r.Stat("g is symlink", "g");
    r.List("root listing", "");
    r.List("d listing", "d");
  });
}

TEST_P(PosixParityTest, RenameDirectories) {
  RunBoth([](Recorder& r) {
    ::mkdir(r.P("d1").c_str(), 0755);
    ::close(::open(r.P("d1/inside").c_str(), O_CREAT | O_WRONLY, 0644));
    ::mkdir(r.P("empty").c_str(), 0700);
    r.Ok("dir over empty dir", [&] { return ::rename(r.P("d1").c_str(), r.P("empty").c_str()); });
    r.Stat("renamed dir keeps mode", "empty");
    r.Stat("contents moved", "empty/inside");
    r.Err(
        "old dir gone", [&] { return ::access(r.P("d1").c_str(), F_OK); }, ENOENT);
    ::mkdir(r.P("other").c_str(), 0755);
    r.Err(
        "dir over non-empty dir", [&] { return ::rename(r.P("other").c_str(), r.P("empty").c_str()); },
        ENOTEMPTY);
    ::close(::open(r.P("file").c_str(), O_CREAT | O_WRONLY, 0644));
    r.Err(
        "dir over file", [&] { return ::rename(r.P("other").c_str(), r.P("file").c_str()); }, ENOTDIR);
    r.Err(
        "file over dir", [&] { return ::rename(r.P("file").c_str(), r.P("other").c_str()); }, EISDIR);
    ::mkdir(r.P("empty/sub").c_str(), 0755);
    r.Err(
        "dir into own subdir", [&] { return ::rename(r.P("empty").c_str(), r.P("empty/sub/x").c_str()); },
        EINVAL);
    r.Err(
        "dir into itself", [&] { return ::rename(r.P("empty").c_str(), r.P("empty/x").c_str()); }, EINVAL);
    r.Err(
        "rename dot", [&] { return ::rename(r.P("empty/.").c_str(), r.P("dot").c_str()); }, EBUSY);
    // Moving a directory between parents moves a link count and "..".
    ::mkdir(r.P("p1").c_str(), 0755);
    ::mkdir(r.P("p2").c_str(), 0755);
    ::mkdir(r.P("p1/x").c_str(), 0755);
    r.Stat("p1 before", "p1");
    r.Ok("move dir across parents", [&] { return ::rename(r.P("p1/x").c_str(), r.P("p2/x").c_str()); });
    r.Stat("p1 after", "p1");
    r.Stat("p2 after", "p2");
    struct stat dotdot, p2;
    bool same = ::stat(r.P("p2/x/..").c_str(), &dotdot) == 0 && ::stat(r.P("p2").c_str(), &p2) == 0 &&
                dotdot.st_ino == p2.st_ino && dotdot.st_dev == p2.st_dev;
    r.Val("x/.. is p2", same ? "yes" : "no", "yes");
    r.Ok("dir over empty dir across parents", [&] {
      ::mkdir(r.P("p1/y").c_str(), 0755);
      return ::rename(r.P("p2/x").c_str(), r.P("p1/y").c_str());
    });
    r.Stat("p1 final", "p1");
    r.Stat("p2 final", "p2");
    r.Stat("root", "");
    r.List("root listing", "");
  });
}

TEST_P(PosixParityTest, Renameat2Flags) {
  auto renameat2 = [](const std::string& a, const std::string& b, unsigned flags) -> long {
    return ::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), flags);
  };
  RunBoth([&](Recorder& r) {
    auto make = [&](const std::string& n, const std::string& content) {
      int fd = ::open(r.P(n).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      WriteStr(fd, content);
      ::close(fd);
    };
    make("a", "AAA");
    make("b", "B");
    r.Err(
        "NOREPLACE over existing", [&] { return renameat2(r.P("a"), r.P("b"), RENAME_NOREPLACE); }, EEXIST);
    r.Data("a untouched", "a");
    r.Data("b untouched", "b");
    r.Ok("NOREPLACE to new name", [&] { return renameat2(r.P("a"), r.P("c"), RENAME_NOREPLACE); });
    r.Data("c", "c");
    r.Ok("EXCHANGE two files", [&] { return renameat2(r.P("b"), r.P("c"), RENAME_EXCHANGE); });
    r.Data("b after exchange", "b");
    r.Data("c after exchange", "c");
    ::mkdir(r.P("d").c_str(), 0755);
    ::close(::open(r.P("d/inner").c_str(), O_CREAT | O_WRONLY, 0644));
    ::mkdir(r.P("e").c_str(), 0755);
    r.Ok("EXCHANGE file and dir", [&] { return renameat2(r.P("b"), r.P("d"), RENAME_EXCHANGE); });
    r.Stat("b is now dir", "b");
    r.Stat("b/inner", "b/inner");
    r.Stat("d is now file", "d");
    r.Data("d content", "d");
    r.Ok("EXCHANGE across dirs", [&] { return renameat2(r.P("c"), r.P("b/inner"), RENAME_EXCHANGE); });
    r.Stat("c after cross exchange", "c");
    r.Data("b/inner after cross exchange", "b/inner");
    r.Ok("EXCHANGE dir with dir in other parent", [&] {
      ::mkdir(r.P("e/sub").c_str(), 0700);
      return renameat2(r.P("b"), r.P("e/sub"), RENAME_EXCHANGE);
    });
    r.Stat("b after dir exchange", "b");
    r.Stat("e/sub after dir exchange", "e/sub");
    r.Stat("e nlink", "e");
    r.Stat("root nlink", "");
    r.Err(
        "EXCHANGE with missing", [&] { return renameat2(r.P("c"), r.P("nope"), RENAME_EXCHANGE); }, ENOENT);
    r.Err(
        "NOREPLACE|EXCHANGE",
        [&] { return renameat2(r.P("c"), r.P("d"), RENAME_NOREPLACE | RENAME_EXCHANGE); }, EINVAL);
    r.List("root listing", "");
  });
}

TEST_P(PosixParityTest, Truncate) {
  RunBoth([](Recorder& r) {
    int fd = ::open(r.P("f").c_str(), O_CREAT | O_RDWR, 0644);
    WriteStr(fd, "0123456789");
    r.Ok("truncate up", [&] { return ::truncate(r.P("f").c_str(), 100); });
    r.Stat("size 100", "f");
    r.Data("zero filled", "f");
    r.Ok("truncate down", [&] { return ::truncate(r.P("f").c_str(), 5); });
    r.Data("truncated content", "f");
    r.Ok("ftruncate up", [&] { return ::ftruncate(fd, 3 * 1024 * 1024 + 1); });
    r.Val("read across old EOF", PreadStr(fd, 10, 0));
    r.Val("read in extended region", PreadStr(fd, 100, 2 * 1024 * 1024));
    r.Ok("ftruncate 0", [&] { return ::ftruncate(fd, 0); });
    r.Val("read after truncate 0", PreadStr(fd, 10, 0));
    // Data beyond a shrink point must not reappear after growing again.
    ::pwrite(fd, "abcdefghij", 10, 0);
    ::ftruncate(fd, 4);
    ::ftruncate(fd, 10);
    r.Val("no stale data after shrink+grow", PreadStr(fd, 10, 0));
    r.Stat("stat", "f");
    r.Err(
        "truncate negative", [&] { return ::truncate(r.P("f").c_str(), -1); }, EINVAL);
    ::mkdir(r.P("d").c_str(), 0755);
    r.Err(
        "truncate dir", [&] { return ::truncate(r.P("d").c_str(), 0); }, EISDIR);
    r.Err(
        "truncate missing", [&] { return ::truncate(r.P("nope").c_str(), 0); }, ENOENT);
    int ro = ::open(r.P("f").c_str(), O_RDONLY);
    r.Err(
        "ftruncate read-only fd", [&] { return ::ftruncate(ro, 0); }, EINVAL);
    ::close(ro);
    ::close(fd);
    r.Ok("O_TRUNC via open", [&] {
      int f = ::open(r.P("f").c_str(), O_WRONLY | O_TRUNC);
      if (f >= 0) ::close(f);
      return f;
    });
    r.Stat("after O_TRUNC", "f");
  });
}

TEST_P(PosixParityTest, Fallocate) {
  RunBoth([](Recorder& r) {
    int fd = ::open(r.P("f").c_str(), O_CREAT | O_RDWR, 0644);
    r.Ok("fallocate mode 0", [&] { return ::fallocate(fd, 0, 0, 1 << 20); });
    r.Stat("size after fallocate", "f");
    r.Val("allocated range reads zeros", PreadStr(fd, 4096, 4096));
    std::string data = Pattern(1 << 20, 7);
    r.Ret("fill", [&] { return ::pwrite(fd, data.data(), data.size(), 0); });
    r.Ok("punch hole",
         [&] { return ::fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 4096, 3 * 4096); });
    r.Stat("size unchanged by punch", "f");
    r.Val("hole reads zeros", PreadStr(fd, 3 * 4096, 4096));
    r.Val("data before hole", PreadStr(fd, 4096, 0));
    r.Val("data after hole", PreadStr(fd, 4096, 4 * 4096));
    r.Ok("unaligned punch",
         [&] { return ::fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 100000, 333); });
    r.Val("unaligned hole", PreadStr(fd, 400, 99990));
    r.Ok("KEEP_SIZE beyond EOF", [&] { return ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 << 20, 1 << 20); });
    r.Stat("size unchanged by KEEP_SIZE", "f");
    r.Ok("mode 0 beyond EOF", [&] { return ::fallocate(fd, 0, (1 << 20) + 10, 100); });
    r.Stat("size grown by mode 0", "f");
    r.Err(
        "punch without KEEP_SIZE", [&] { return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096); },
        EOPNOTSUPP);
    r.Err(
        "zero length", [&] { return ::fallocate(fd, 0, 0, 0); }, EINVAL);
    ::close(fd);
    r.Data("whole file", "f");
    int ro = ::open(r.P("f").c_str(), O_RDONLY);
    r.Err(
        "fallocate read-only fd", [&] { return ::fallocate(ro, 0, 0, 4096); }, EBADF);
    ::close(ro);
  });
}

TEST_P(PosixParityTest, SparseFileBeyond4GiB) {
  RunBoth([](Recorder& r) {
    int fd = ::open(r.P("sparse").c_str(), O_CREAT | O_RDWR, 0644);
    std::string tail = Pattern(4096, 3);
    r.Ret("write at 5GiB-4K", [&] { return ::pwrite(fd, tail.data(), tail.size(), 5 * kGiB - 4096); });
    r.Ret("write across 4GiB", [&] { return ::pwrite(fd, "MIDDLE", 6, 4 * kGiB - 3); });
    r.Ret("write at 2^32+1", [&] { return ::pwrite(fd, "x", 1, 4 * kGiB + 100); });
    r.Stat("size 5GiB", "sparse");
    r.Ret("SEEK_END", [&] { return ::lseek(fd, 0, SEEK_END); });
    r.Ok("fsync", [&] { return ::fsync(fd); });
    // Drop cached pages so reads come from the filesystem, not the page cache.
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    r.Val("hole at 1MiB", PreadStr(fd, 4096, 1 << 20));
    r.Val("hole before 4GiB", PreadStr(fd, 64, 4 * kGiB - 100));
    r.Val("across 4GiB", PreadStr(fd, 16, 4 * kGiB - 8));
    r.Val("at 2^32+100", PreadStr(fd, 4, 4 * kGiB + 98));
    r.Val("hole at 4.5GiB", PreadStr(fd, 4096, 4 * kGiB + kGiB / 2));
    r.Val("tail data", PreadStr(fd, 8192, 5 * kGiB - 8192));
    r.Val("read at EOF", PreadStr(fd, 10, 5 * kGiB));
    struct stat st;
    ::fstat(fd, &st);
    r.Val("allocation stays small", st.st_blocks * 512 < (64 << 20) ? "yes" : "no", "yes");
    ::close(fd);
    r.Ok("truncate to 4GiB+1", [&] { return ::truncate(r.P("sparse").c_str(), 4 * kGiB + 1); });
    r.Stat("size after truncate", "sparse");
  });
}

TEST_P(PosixParityTest, FsyncAndFdatasync) {
  RunBoth([](Recorder& r) {
    int fd = ::open(r.P("f").c_str(), O_CREAT | O_RDWR, 0644);
    std::string data = Pattern(200000, 9);
    r.Ret("write", [&] { return WriteStr(fd, data); });
    r.Ok("fsync", [&] { return ::fsync(fd); });
    r.Ret("write more", [&] { return ::pwrite(fd, "tail", 4, 200000); });
    r.Ok("fdatasync", [&] { return ::fdatasync(fd); });
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    r.Val("content after sync", PreadStr(fd, 300000, 0));
    int ro = ::open(r.P("f").c_str(), O_RDONLY);
    r.Ok("fsync read-only fd", [&] { return ::fsync(ro); });
    ::close(ro);
    ::close(fd);
    int dfd = ::open(r.P("").c_str(), O_RDONLY | O_DIRECTORY);
    r.Ok("fsync dir", [&] { return ::fsync(dfd); });
    ::close(dfd);
    r.Ok("syncfs", [&] {
      int f = ::open(r.P("f").c_str(), O_RDONLY);
      long rc = ::syncfs(f);
      ::close(f);
      return rc;
    });
    r.Stat("stat", "f");
  });
}

TEST_P(PosixParityTest, Statfs) {
  struct statfs t, s, p;
  ASSERT_EQ(::statfs(mount_->mnt().c_str(), &t), 0) << strerror(errno);
  ASSERT_EQ(::statfs(mount_->store().c_str(), &s), 0);
  ASSERT_EQ(::statfs(plain_.c_str(), &p), 0);
  EXPECT_GT(t.f_bsize, 0);
  EXPECT_GT(t.f_frsize, 0);
  EXPECT_GT(t.f_blocks, 0u);
  EXPECT_LE(t.f_bfree, t.f_blocks);
  EXPECT_LE(t.f_bavail, t.f_bfree);
  EXPECT_EQ(t.f_namelen, 255);
  EXPECT_EQ(t.f_namelen, p.f_namelen);
  struct statvfs tv;
  ASSERT_EQ(::statvfs(mount_->mnt().c_str(), &tv), 0);
  EXPECT_EQ(tv.f_namemax, 255u);
  // tempfs reports the capacity of the filesystem holding the store.
  double tempfs_bytes = static_cast<double>(t.f_blocks) * static_cast<double>(t.f_frsize);
  double store_bytes = static_cast<double>(s.f_blocks) * static_cast<double>(s.f_frsize);
  EXPECT_NEAR(tempfs_bytes, store_bytes, store_bytes * 0.01)
      << "tempfs f_blocks=" << t.f_blocks << " f_frsize=" << t.f_frsize << " store f_blocks=" << s.f_blocks
      << " f_frsize=" << s.f_frsize;
  double tempfs_avail = static_cast<double>(t.f_bavail) * static_cast<double>(t.f_frsize);
  double store_avail = static_cast<double>(s.f_bavail) * static_cast<double>(s.f_frsize);
  EXPECT_NEAR(tempfs_avail, store_avail, store_bytes * 0.01);
}

TEST_P(PosixParityTest, Xattrs) {
  RunBoth([](Recorder& r) {
    ::close(::open(r.P("f").c_str(), O_CREAT | O_WRONLY, 0644));
    std::string f = r.P("f");
    char buf[8192];
    auto get = [&](const std::string& path, const char* name, size_t size) -> std::string {
      ssize_t n = ::getxattr(path.c_str(), name, buf, size);
      return n < 0 ? ErrName(errno) : "\"" + std::string(buf, static_cast<size_t>(n)) + "\"";
    };
    auto list = [&](const std::string& path) -> std::string {
      ssize_t n = ::listxattr(path.c_str(), buf, sizeof(buf));
      if (n < 0) return ErrName(errno);
      std::vector<std::string> names;
      for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1) names.push_back(buf + i);
      std::sort(names.begin(), names.end());
      std::string s;
      for (const auto& x : names) s += x + ",";
      return s;
    };
    r.Val("list empty", list(f));
    r.Ret("listxattr size of empty", [&] { return ::listxattr(f.c_str(), nullptr, 0); });
    for (const char* ns : {"user", "trusted"}) {
      std::string a = std::string(ns) + ".alpha";
      std::string b = std::string(ns) + ".beta";
      std::string pre = std::string(ns) + ": ";
      r.Ok(pre + "set", [&] { return ::setxattr(f.c_str(), a.c_str(), "hello", 5, 0); });
      r.Ret(pre + "size query", [&] { return ::getxattr(f.c_str(), a.c_str(), nullptr, 0); });
      r.Val(pre + "get", get(f, a.c_str(), sizeof(buf)));
      r.Val(pre + "get small buffer", get(f, a.c_str(), 2), "ERANGE");
      r.Err(
          pre + "XATTR_CREATE existing",
          [&] { return ::setxattr(f.c_str(), a.c_str(), "x", 1, XATTR_CREATE); }, EEXIST);
      r.Err(
          pre + "XATTR_REPLACE missing",
          [&] { return ::setxattr(f.c_str(), b.c_str(), "x", 1, XATTR_REPLACE); }, ENODATA);
      r.Val(pre + "get missing", get(f, b.c_str(), sizeof(buf)), "ENODATA");
      r.Ok(pre + "XATTR_REPLACE existing",
           [&] { return ::setxattr(f.c_str(), a.c_str(), "bye", 3, XATTR_REPLACE); });
      r.Val(pre + "get replaced", get(f, a.c_str(), sizeof(buf)));
      r.Ok(pre + "XATTR_CREATE new", [&] { return ::setxattr(f.c_str(), b.c_str(), "", 0, XATTR_CREATE); });
      r.Val(pre + "get empty value", get(f, b.c_str(), sizeof(buf)));
    }
    r.Val("list both namespaces", list(f));
    r.Ret("listxattr size", [&] { return ::listxattr(f.c_str(), nullptr, 0); });
    r.Err(
        "listxattr small buffer", [&] { return ::listxattr(f.c_str(), buf, 3); }, ERANGE);
    std::string big = Pattern(3000, 5);
    r.Ok("set 3000-byte value", [&] { return ::setxattr(f.c_str(), "user.big", big.data(), big.size(), 0); });
    r.Val("get 3000-byte value", [&] {
      ssize_t n = ::getxattr(f.c_str(), "user.big", buf, sizeof(buf));
      return n < 0 ? ErrName(errno) : Summarize(std::string(buf, static_cast<size_t>(n)));
    }());
    r.Ok("remove user.alpha", [&] { return ::removexattr(f.c_str(), "user.alpha"); });
    r.Err(
        "remove again", [&] { return ::removexattr(f.c_str(), "user.alpha"); }, ENODATA);
    r.Ok("remove trusted.alpha", [&] { return ::removexattr(f.c_str(), "trusted.alpha"); });
    r.Val("list after remove", list(f));
    r.Err(
        "unknown namespace", [&] { return ::setxattr(f.c_str(), "bogus.x", "1", 1, 0); }, EOPNOTSUPP);
    // fd-based and directory variants.
    int fd = ::open(f.c_str(), O_RDONLY);
    r.Ok("fsetxattr", [&] { return ::fsetxattr(fd, "user.fd", "v", 1, 0); });
    r.Ret("fgetxattr", [&] { return ::fgetxattr(fd, "user.fd", buf, sizeof(buf)); });
    ::close(fd);
    ::mkdir(r.P("d").c_str(), 0755);
    r.Ok("set on dir", [&] { return ::setxattr(r.P("d").c_str(), "user.d", "dir", 3, 0); });
    r.Val("get on dir", get(r.P("d"), "user.d", sizeof(buf)));
    ::symlink("f", r.P("sl").c_str());
    r.Err(
        "user.* on symlink", [&] { return ::lsetxattr(r.P("sl").c_str(), "user.x", "1", 1, 0); }, EPERM);
    r.Ok("trusted.* on symlink", [&] { return ::lsetxattr(r.P("sl").c_str(), "trusted.x", "1", 1, 0); });
    r.Val("lgetxattr symlink", [&] {
      ssize_t n = ::lgetxattr(r.P("sl").c_str(), "trusted.x", buf, sizeof(buf));
      return n < 0 ? ErrName(errno) : std::string(buf, static_cast<size_t>(n));
    }());
    r.Val("xattrs follow hard links", [&] {
      ::link(f.c_str(), r.P("hl").c_str());
      return get(r.P("hl"), "user.beta", sizeof(buf));
    }());
    r.Val("xattrs survive rename", [&] {
      ::rename(f.c_str(), r.P("renamed").c_str());
      return list(r.P("renamed"));
    }());
  });
}

TEST_P(PosixParityTest, ChmodChownUtimensat) {
  RunBoth([](Recorder& r) {
    std::string f = r.P("f");
    ::close(::open(f.c_str(), O_CREAT | O_WRONLY, 0644));
    r.Ok("chmod 0640", [&] { return ::chmod(f.c_str(), 0640); });
    r.Stat("after chmod", "f");
    r.Ok("chmod 07777", [&] { return ::chmod(f.c_str(), 07777); });
    r.Stat("after chmod 07777", "f");
    r.Ok("chmod 0755", [&] { return ::chmod(f.c_str(), 0755); });
    r.Ok("chown 1234:5678", [&] { return ::chown(f.c_str(), 1234, 5678); });
    r.Stat("after chown", "f");
    r.Ok("chown -1:-1", [&] { return ::chown(f.c_str(), -1, -1); });
    r.Ok("chown uid only", [&] { return ::chown(f.c_str(), 42, -1); });
    r.Stat("after chown uid only", "f");
    r.Ok("chmod 06755", [&] { return ::chmod(f.c_str(), 06755); });
    r.Ok("chown clears suid/sgid", [&] { return ::chown(f.c_str(), 43, 44); });
    r.Stat("after chown of suid file", "f");
    int fd = ::open(f.c_str(), O_RDONLY);
    r.Ok("fchmod", [&] { return ::fchmod(fd, 0600); });
    r.Ok("fchown", [&] { return ::fchown(fd, 0, 0); });
    ::close(fd);
    r.Stat("after fchmod/fchown", "f");
    r.Err(
        "chmod missing", [&] { return ::chmod(r.P("nope").c_str(), 0644); }, ENOENT);
    ::mkdir(r.P("d").c_str(), 0755);
    r.Ok("chmod dir 01777", [&] { return ::chmod(r.P("d").c_str(), 01777); });
    r.Stat("dir mode", "d");

    auto times = [&](const std::string& rel, bool follow) -> std::string {
      struct stat st;
      int rc = follow ? ::stat(r.P(rel).c_str(), &st) : ::lstat(r.P(rel).c_str(), &st);
      if (rc != 0) return ErrName(errno);
      return "atime=" + TimeStr(st.st_atim) + " mtime=" + TimeStr(st.st_mtim);
    };
    struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
    r.Ok("utimensat explicit", [&] { return ::utimensat(AT_FDCWD, f.c_str(), ts, 0); });
    r.Val("explicit times", times("f", true));
    r.Stat("after explicit (ctime still now)", "f");
    struct timespec before;
    ::clock_gettime(CLOCK_REALTIME, &before);
    struct timespec now_omit[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
    r.Ok("utimensat NOW/OMIT", [&] { return ::utimensat(AT_FDCWD, f.c_str(), now_omit, 0); });
    struct stat st;
    ::stat(f.c_str(), &st);
    r.Val("UTIME_OMIT keeps mtime", TimeStr(st.st_mtim), "1100000000.987654321");
    r.Val("UTIME_NOW sets atime",
          st.st_atim.tv_sec >= before.tv_sec - 1 && st.st_atim.tv_sec <= ::time(nullptr) + 1
              ? "recent"
              : "not recent: " + TimeStr(st.st_atim),
          "recent");
    struct timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    r.Ok("utimensat OMIT/NOW", [&] { return ::utimensat(AT_FDCWD, f.c_str(), omit_now, 0); });
    struct stat st2;
    ::stat(f.c_str(), &st2);
    r.Val("UTIME_OMIT keeps atime",
          st2.st_atim.tv_sec == st.st_atim.tv_sec && st2.st_atim.tv_nsec == st.st_atim.tv_nsec ? "kept"
                                                                                               : "changed",
          "kept");
    r.Val("UTIME_NOW sets mtime", st2.st_mtim.tv_sec >= before.tv_sec - 1 ? "recent" : "old", "recent");
    r.Ok("utimensat NULL", [&] { return ::utimensat(AT_FDCWD, f.c_str(), nullptr, 0); });
    r.Stat("after NULL times", "f");
    // A write moves mtime forward from a known old value.
    r.Ok("reset times", [&] { return ::utimensat(AT_FDCWD, f.c_str(), ts, 0); });
    fd = ::open(f.c_str(), O_WRONLY);
    WriteStr(fd, "data");
    ::close(fd);
    ::stat(f.c_str(), &st);
    r.Val("write updates mtime", st.st_mtim.tv_sec > ts[1].tv_sec ? "updated" : "stale", "updated");
    r.Ok("reset times again", [&] { return ::utimensat(AT_FDCWD, f.c_str(), ts, 0); });
    r.Ok("truncate", [&] { return ::truncate(f.c_str(), 1); });
    ::stat(f.c_str(), &st);
    r.Val("truncate updates mtime", st.st_mtim.tv_sec > ts[1].tv_sec ? "updated" : "stale", "updated");
    // Directory mtime moves when entries change.
    r.Ok("reset dir times", [&] { return ::utimensat(AT_FDCWD, r.P("d").c_str(), ts, 0); });
    ::close(::open(r.P("d/new").c_str(), O_CREAT | O_WRONLY, 0644));
    ::stat(r.P("d").c_str(), &st);
    r.Val("create updates dir mtime", st.st_mtim.tv_sec > ts[1].tv_sec ? "updated" : "stale", "updated");
    r.Ok("reset dir times 2", [&] { return ::utimensat(AT_FDCWD, r.P("d").c_str(), ts, 0); });
    ::unlink(r.P("d/new").c_str());
    ::stat(r.P("d").c_str(), &st);
    r.Val("unlink updates dir mtime", st.st_mtim.tv_sec > ts[1].tv_sec ? "updated" : "stale", "updated");
    // Symlink's own times.
    ::symlink("f", r.P("sl").c_str());
    r.Ok("utimensat NOFOLLOW",
         [&] { return ::utimensat(AT_FDCWD, r.P("sl").c_str(), ts, AT_SYMLINK_NOFOLLOW); });
    r.Val("symlink times", times("sl", false));
    r.Ok("futimens", [&] {
      int f2 = ::open(f.c_str(), O_RDONLY);
      long rc = ::futimens(f2, ts);
      ::close(f2);
      return rc;
    });
    r.Val("futimens times", times("f", true));
  });
}

TEST_P(PosixParityMultiUserTest, StickyDirectory) {
  RunBoth([](Recorder& r) {
    ::mkdir(r.P("tmp").c_str(), 0755);
    r.Ok("chmod 1777", [&] { return ::chmod(r.P("tmp").c_str(), 01777); });
    r.Stat("sticky dir", "tmp");
    ::mkdir(r.P("open").c_str(), 0755);
    ::chmod(r.P("open").c_str(), 0777);
    std::string a_file = r.P("tmp/a_file");
    std::string open_file = r.P("open/a_file");
    auto create = [](const std::string& path) {
      return [path] {
        int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
        std::string s = OkStr(fd);
        if (fd >= 0) ::close(fd);
        return s;
      };
    };
    r.Val("user A creates in sticky dir", InChild(create(a_file), kNobody, kNobody), "ok");
    r.Val("user A creates in 0777 dir", InChild(create(open_file), kNobody, kNobody), "ok");
    r.Stat("owner of A's file", "tmp/a_file");
    r.Val("user B unlink A's file",
          InChild([&] { return OkStr(::unlink(a_file.c_str())); }, kOtherUser, kOtherUser), "EPERM");
    r.Val("user B rename A's file",
          InChild([&] { return OkStr(::rename(a_file.c_str(), r.P("tmp/stolen").c_str())); }, kOtherUser,
                  kOtherUser),
          "EPERM");
    r.Val("user B rename over A's file",
          InChild(
              [&] {
                std::string mine = r.P("tmp/b_file");
                int fd = ::open(mine.c_str(), O_CREAT | O_WRONLY, 0644);
                if (fd >= 0) ::close(fd);
                return OkStr(::rename(mine.c_str(), a_file.c_str()));
              },
              kOtherUser, kOtherUser),
          "EPERM");
    r.Val("user B unlinks own file",
          InChild([&] { return OkStr(::unlink(r.P("tmp/b_file").c_str())); }, kOtherUser, kOtherUser), "ok");
    r.Val("user B unlinks A's file in non-sticky dir",
          InChild([&] { return OkStr(::unlink(open_file.c_str())); }, kOtherUser, kOtherUser), "ok");
    r.Val("user A unlinks own file",
          InChild([&] { return OkStr(::unlink(a_file.c_str())); }, kNobody, kNobody), "ok");
    r.List("sticky listing", "tmp");
  });
}

TEST_P(PosixParityMultiUserTest, SetgidDirectory) {
  RunBoth([](Recorder& r) {
    ::mkdir(r.P("sg").c_str(), 0755);
    r.Ok("chown dir to gid 4321", [&] { return ::chown(r.P("sg").c_str(), 0, 4321); });
    r.Ok("chmod 02775", [&] { return ::chmod(r.P("sg").c_str(), 02775); });
    r.Stat("setgid dir", "sg");
    ::close(::open(r.P("sg/file").c_str(), O_CREAT | O_WRONLY, 0644));
    r.Stat("new file inherits gid", "sg/file");
    r.Ok("mkdir in setgid dir", [&] { return ::mkdir(r.P("sg/sub").c_str(), 0755); });
    r.Stat("new subdir inherits gid and S_ISGID", "sg/sub");
    ::close(::open(r.P("sg/sub/deep").c_str(), O_CREAT | O_WRONLY, 0644));
    r.Stat("inherits through levels", "sg/sub/deep");
    r.Ok("mkfifo in setgid dir", [&] { return ::mkfifo(r.P("sg/fifo").c_str(), 0644); });
    r.Stat("fifo inherits gid", "sg/fifo");
    r.Ok("symlink in setgid dir", [&] { return ::symlink("file", r.P("sg/sl").c_str()); });
    r.Stat("symlink inherits gid", "sg/sl");
    // A non-member creating a setgid file in there loses S_ISGID.
    ::chmod(r.P("sg").c_str(), 02777);
    r.Val("non-member creates 02755 file",
          InChild(
              [&] {
                int fd = ::open(r.P("sg/nm").c_str(), O_CREAT | O_WRONLY, 02755);
                std::string s = OkStr(fd);
                if (fd >= 0) ::close(fd);
                return s;
              },
              kNobody, kNobody),
          "ok");
    r.Stat("non-member file", "sg/nm");
    // chmod g+s by an owner not in the file's group silently drops S_ISGID.
    r.Val("non-member chmod 02755 own file",
          InChild([&] { return OkStr(::chmod(r.P("sg/nm").c_str(), 02755)); }, kNobody, kNobody), "ok");
    r.Stat("S_ISGID dropped", "sg/nm");
    // Plain dir without setgid: gid of the creator.
    ::mkdir(r.P("plain").c_str(), 0777);
    ::chmod(r.P("plain").c_str(), 0777);
    ::chown(r.P("plain").c_str(), 0, 4321);
    r.Val("create in non-setgid dir",
          InChild(
              [&] {
                int fd = ::open(r.P("plain/x").c_str(), O_CREAT | O_WRONLY, 0644);
                std::string s = OkStr(fd);
                if (fd >= 0) ::close(fd);
                return s;
              },
              kNobody, kNobody),
          "ok");
    r.Stat("creator's gid", "plain/x");
  });
}

TEST_P(PosixParityMultiUserTest, SuidSgidClearedOnWrite) {
  RunBoth([](Recorder& r) {
    auto make = [&](const std::string& n, mode_t mode) {
      ::close(::open(r.P(n).c_str(), O_CREAT | O_WRONLY, 0644));
      ::chown(r.P(n).c_str(), kNobody, kNobody);
      ::chmod(r.P(n).c_str(), mode);
    };
    auto write_as_owner = [&](const std::string& n) {
      std::string path = r.P(n);
      return InChild(
          [path] {
            int fd = ::open(path.c_str(), O_WRONLY);
            if (fd < 0) return "open " + ErrName(errno);
            std::string s = RetStr(::write(fd, "x", 1));
            ::close(fd);
            return s;
          },
          kNobody, kNobody);
    };
    make("both", 06755);
    r.Stat("before write", "both");
    r.Val("owner writes", write_as_owner("both"), "1");
    r.Stat("suid and sgid cleared", "both");
    make("sgid_noexec", 02644);
    r.Val("owner writes sgid without g+x", write_as_owner("sgid_noexec"), "1");
    r.Stat("sgid without g+x kept", "sgid_noexec");
    make("trunc", 06755);
    r.Val("owner truncates",
          InChild([&] { return OkStr(::truncate(r.P("trunc").c_str(), 0)); }, kNobody, kNobody), "ok");
    r.Stat("truncate clears suid", "trunc");
    // Root writing keeps the bits? Linux clears suid even then (no CAP_FSETID check for suid).
    make("root_write", 06755);
    int fd = ::open(r.P("root_write").c_str(), O_WRONLY);
    r.Ret("root writes", [&] { return WriteStr(fd, "y"); });
    ::close(fd);
    r.Stat("after root write", "root_write");
  });
}

// pjdfstest chown/00.t: chown of a set-ID FIFO, socket or device node drops
// S_ISUID and S_ISGID (group execute set), by root and by the owner, directly
// and through a symlink, as for regular files; directories keep them.
TEST_P(PosixParityMultiUserTest, ChownClearsSetIdBitsOfSpecialFiles) {
  RunBoth([](Recorder& r) {
    const std::pair<const char*, mode_t> types[] = {{"reg", S_IFREG},   {"fifo", S_IFIFO}, {"chr", S_IFCHR},
                                                    {"blk", S_IFBLK},   {"sock", S_IFSOCK}, {"dir", S_IFDIR}};
    for (const auto& [name, type] : types) {
      std::string n = name, p = r.P(name);
      if (type == S_IFDIR) {
        r.Ok("mkdir " + n, [&] { return ::mkdir(p.c_str(), 0755); });
      } else if (type == S_IFREG) {
        r.Ok("create " + n, [&] { return ::close(::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)); });
      } else {
        r.Ok("mknod " + n, [&] { return ::mknod(p.c_str(), type | 0644, makedev(1, 3)); });
      }
      r.Ok("chown " + n + " to nobody", [&] { return ::chown(p.c_str(), kNobody, kOtherUser); });
      r.Ok("chmod 06555 " + n, [&] { return ::chmod(p.c_str(), 06555); });
      r.Stat("set-ID " + n, n);
      r.Ok("root chowns " + n, [&] { return ::chown(p.c_str(), kNobody, kNobody); });
      r.Stat("after root chown of " + n, n);
      ::chmod(p.c_str(), 06555);
      r.Val("owner chgrps " + n,
            InChild([p] { return OkStr(::chown(p.c_str(), -1, kOtherUser)); }, kNobody, kOtherUser), "ok");
      r.Stat("after owner chgrp of " + n, n);
      ::chmod(p.c_str(), 06555);
      std::string link = p + ".lnk";
      r.Ok("symlink to " + n, [&] { return ::symlink(p.c_str(), link.c_str()); });
      r.Ok("root chowns through symlink " + n, [&] { return ::chown(link.c_str(), 0, 0); });
      r.Stat("after chown through symlink of " + n, n);
      r.Ok("chmod 02545 " + n, [&] { return ::chmod(p.c_str(), 02545); });
      r.Ok("root chowns sgid without g+x " + n, [&] { return ::chown(p.c_str(), kNobody, kNobody); });
      r.Stat("sgid without g+x after root chown of " + n, n);
    }
  });
}

TEST_P(PosixParityMultiUserTest, PermissionDeniedForOtherUser) {
  RunBoth([](Recorder& r) {
    ::mkdir(r.P("priv").c_str(), 0700);
    ::chmod(r.P("priv").c_str(), 0700);
    ::close(::open(r.P("priv/f").c_str(), O_CREAT | O_WRONLY, 0644));
    ::close(::open(r.P("secret").c_str(), O_CREAT | O_WRONLY, 0600));
    ::chmod(r.P("secret").c_str(), 0600);
    ::close(::open(r.P("readonly").c_str(), O_CREAT | O_WRONLY, 0644));
    ::chmod(r.P("readonly").c_str(), 0644);
    std::string priv = r.P("priv");
    auto as_nobody = [](const std::function<long()>& op) {
      return InChild([op] { return OkStr(op()); }, kNobody, kNobody);
    };
    auto open_close = [](const std::string& path, int flags) {
      return [path, flags]() -> long {
        int fd = ::open(path.c_str(), flags, 0644);
        if (fd >= 0) ::close(fd);
        return fd;
      };
    };
    r.Val("open file in 0700 dir", as_nobody(open_close(priv + "/f", O_RDONLY)), "EACCES");
    r.Val("opendir 0700", as_nobody(open_close(priv, O_RDONLY | O_DIRECTORY)), "EACCES");
    r.Val("stat in 0700 dir", as_nobody([priv] {
            struct stat st;
            return static_cast<long>(::stat((priv + "/f").c_str(), &st));
          }),
          "EACCES");
    r.Val("create in 0700 dir", as_nobody(open_close(priv + "/new", O_CREAT | O_WRONLY)), "EACCES");
    r.Val("mkdir in 0700 dir",
          as_nobody([priv] { return static_cast<long>(::mkdir((priv + "/x").c_str(), 0755)); }), "EACCES");
    r.Val("chdir 0700", as_nobody([priv] { return static_cast<long>(::chdir(priv.c_str())); }), "EACCES");
    r.Val("read 0600 file", as_nobody(open_close(r.P("secret"), O_RDONLY)), "EACCES");
    r.Val("write 0644 file", as_nobody(open_close(r.P("readonly"), O_WRONLY)), "EACCES");
    r.Val("read 0644 file", as_nobody(open_close(r.P("readonly"), O_RDONLY)), "ok");
    r.Val("create in root's 0755 dir", as_nobody(open_close(r.P("mine"), O_CREAT | O_WRONLY)), "EACCES");
    r.Val("unlink in root's 0755 dir",
          as_nobody([p = r.P("readonly")] { return static_cast<long>(::unlink(p.c_str())); }), "EACCES");
    r.Val("chmod root's file",
          as_nobody([p = r.P("readonly")] { return static_cast<long>(::chmod(p.c_str(), 0777)); }), "EPERM");
    r.Val("chown root's file", as_nobody([p = r.P("readonly")] {
            return static_cast<long>(::chown(p.c_str(), kNobody, kNobody));
          }),
          "EPERM");
    r.Val("utimensat explicit on root's file", as_nobody([p = r.P("readonly")] {
            struct timespec ts[2] = {{1, 0}, {1, 0}};
            return static_cast<long>(::utimensat(AT_FDCWD, p.c_str(), ts, 0));
          }),
          "EPERM");
    r.Val("utimensat NOW on root's file", as_nobody([p = r.P("readonly")] {
            return static_cast<long>(::utimensat(AT_FDCWD, p.c_str(), nullptr, 0));
          }),
          "EACCES");
    r.Val("setxattr user.* on root's file", as_nobody([p = r.P("readonly")] {
            return static_cast<long>(::setxattr(p.c_str(), "user.x", "1", 1, 0));
          }),
          "EACCES");
    r.Val("access W_OK",
          as_nobody([p = r.P("readonly")] { return static_cast<long>(::access(p.c_str(), W_OK)); }),
          "EACCES");
    r.Stat("files unchanged", "readonly");
  });
}

TEST_P(PosixParityTest, FlockConflicts) {
  RunBoth([](Recorder& r) {
    ::close(::open(r.P("lock").c_str(), O_CREAT | O_WRONLY, 0644));
    int a = ::open(r.P("lock").c_str(), O_RDWR);
    int b = ::open(r.P("lock").c_str(), O_RDWR);
    r.Ok("flock EX on a", [&] { return ::flock(a, LOCK_EX | LOCK_NB); });
    r.Err(
        "flock EX on b", [&] { return ::flock(b, LOCK_EX | LOCK_NB); }, EWOULDBLOCK);
    r.Err(
        "flock SH on b", [&] { return ::flock(b, LOCK_SH | LOCK_NB); }, EWOULDBLOCK);
    r.Ok("unlock a", [&] { return ::flock(a, LOCK_UN); });
    r.Ok("flock SH on b", [&] { return ::flock(b, LOCK_SH | LOCK_NB); });
    r.Ok("flock SH on a", [&] { return ::flock(a, LOCK_SH | LOCK_NB); });
    r.Err(
        "upgrade a to EX", [&] { return ::flock(a, LOCK_EX | LOCK_NB); }, EWOULDBLOCK);
    ::close(b);  // releases b's lock
    r.Ok("upgrade after close", [&] { return ::flock(a, LOCK_EX | LOCK_NB); });
    int c = ::dup(a);
    r.Ok("dup shares the lock", [&] { return ::flock(c, LOCK_EX | LOCK_NB); });
    std::string path = r.P("lock");
    r.Val("other process blocked", InChild([path] {
            int fd = ::open(path.c_str(), O_RDWR);
            return OkStr(::flock(fd, LOCK_EX | LOCK_NB));
          }),
          ErrName(EWOULDBLOCK));
    ::close(c);
    ::close(a);
    r.Val("free after close", InChild([path] {
            int fd = ::open(path.c_str(), O_RDWR);
            return OkStr(::flock(fd, LOCK_EX | LOCK_NB));
          }),
          "ok");
  });
}

TEST_P(PosixParityTest, FcntlLocksBetweenProcesses) {
  RunBoth([](Recorder& r) {
    std::string path = r.P("lock");
    ::close(::open(path.c_str(), O_CREAT | O_WRONLY, 0644));
    int fd = ::open(path.c_str(), O_RDWR);
    auto setlk = [](int f, short type, off_t start, off_t len) -> long {
      struct flock fl {};
      fl.l_type = type;
      fl.l_whence = SEEK_SET;
      fl.l_start = start;
      fl.l_len = len;
      return ::fcntl(f, F_SETLK, &fl);
    };
    r.Ok("parent write lock [0,100)", [&] { return setlk(fd, F_WRLCK, 0, 100); });
    r.Ok("parent read lock [200,300)", [&] { return setlk(fd, F_RDLCK, 200, 100); });
    std::string child = InChild([&] {
      int cfd = ::open(path.c_str(), O_RDWR);
      std::string s;
      errno = 0;
      long rc = setlk(cfd, F_WRLCK, 50, 10);
      s +=
          "wr[50,60):" + std::string(rc < 0 && (errno == EAGAIN || errno == EACCES) ? "conflict" : OkStr(rc));
      errno = 0;
      rc = setlk(cfd, F_RDLCK, 0, 1);
      s += " rd[0,1):" + std::string(rc < 0 && (errno == EAGAIN || errno == EACCES) ? "conflict" : OkStr(rc));
      s += " wr[100,200):" + OkStr(setlk(cfd, F_WRLCK, 100, 100));
      s += " rd[200,300):" + OkStr(setlk(cfd, F_RDLCK, 250, 10));
      errno = 0;
      rc = setlk(cfd, F_WRLCK, 250, 10);
      s += " wr[250,260):" +
           std::string(rc < 0 && (errno == EAGAIN || errno == EACCES) ? "conflict" : OkStr(rc));
      struct flock fl {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = 10;
      fl.l_len = 1;
      if (::fcntl(cfd, F_GETLK, &fl) == 0) {
        s += " getlk:" + std::string(fl.l_type == F_WRLCK ? "WR" : fl.l_type == F_UNLCK ? "UN" : "RD");
        s += fl.l_pid == ::getppid() ? "/parent" : "/pid" + std::to_string(fl.l_pid);
        s += " start=" + std::to_string(fl.l_start) + " len=" + std::to_string(fl.l_len);
      } else {
        s += " getlk:" + ErrName(errno);
      }
      return s;
    });
    r.Val("child sees parent's locks", child,
          "wr[50,60):conflict rd[0,1):conflict wr[100,200):ok rd[200,300):ok wr[250,260):conflict "
          "getlk:WR/parent start=0 len=100");
    r.Ok("parent unlocks [0,50)", [&] { return setlk(fd, F_UNLCK, 0, 50); });
    r.Val("child locks freed range", InChild([&] {
            int cfd = ::open(path.c_str(), O_RDWR);
            return OkStr(setlk(cfd, F_WRLCK, 0, 50));
          }),
          "ok");
    // Closing any fd of the file drops the process's POSIX locks.
    int other = ::open(path.c_str(), O_RDONLY);
    ::close(other);
    r.Val("close drops locks", InChild([&] {
            int cfd = ::open(path.c_str(), O_RDWR);
            return OkStr(setlk(cfd, F_WRLCK, 0, 300));
          }),
          "ok");
    ::close(fd);
  });
}

// getdents64 record as the kernel returns it.
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Reads entries with a small buffer until at least `want` more were seen (or
// EOF), so later reads really hit the filesystem again. Returns false on EOF.
bool ReadDents(int fd, size_t want, std::vector<std::string>* names, std::string* error) {
  size_t target = names->size() + want;
  alignas(8) char buf[512];
  while (names->size() < target) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n < 0) {
      *error = ErrName(errno);
      return false;
    }
    if (n == 0) return false;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<LinuxDirent64*>(buf + off);
      names->push_back(d->d_name);
      off += d->d_reclen;
    }
  }
  return true;
}

TEST_P(PosixParityTest, ReaddirWhileDirectoryChanges) {
  RunBoth([](Recorder& r) {
    ::mkdir(r.P("d").c_str(), 0755);
    std::vector<std::string> initial;
    int created = 0;
    for (int i = 0; i < 200; ++i) {
      char n[32];
      snprintf(n, sizeof(n), "file_%03d", i);
      initial.push_back(n);
      int fd = ::open(r.P(std::string("d/") + n).c_str(), O_CREAT | O_WRONLY, 0644);
      created += fd >= 0;
      if (fd >= 0) ::close(fd);
    }
    r.Val("created", std::to_string(created), "200");
    int dfd = r.Ok("open dir", [&] { return ::open(r.P("d").c_str(), O_RDONLY | O_DIRECTORY); });
    std::vector<std::string> seen;
    std::string error;
    ReadDents(dfd, 101, &seen, &error);
    std::set<std::string> seen_first(seen.begin(), seen.end());
    // Change the not-yet-read part: unlink some, add new ones.
    std::vector<std::string> unread;
    for (const auto& n : initial) {
      if (!seen_first.count(n)) unread.push_back(n);
    }
    std::set<std::string> unlinked;
    for (size_t i = 0; i < unread.size(); i += 3) {
      if (::unlink(r.P("d/" + unread[i]).c_str()) == 0) unlinked.insert(unread[i]);
    }
    std::set<std::string> added;
    for (int i = 0; i < 40; ++i) {
      std::string n = "new_" + std::to_string(i);
      int fd = ::open(r.P("d/" + n).c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd >= 0) ::close(fd);
      added.insert(n);
    }
    while (ReadDents(dfd, 1000, &seen, &error)) {
    }
    ::close(dfd);
    r.Val("readdir error", error, "");
    std::map<std::string, int> count;
    for (const auto& n : seen) ++count[n];
    std::string dups, missing, unexpected;
    for (const auto& [n, c] : count) {
      if (c > 1) dups += n + "x" + std::to_string(c) + " ";
      bool known = n == "." || n == ".." || added.count(n) ||
                   std::find(initial.begin(), initial.end(), n) != initial.end();
      if (!known) unexpected += n + " ";
    }
    for (const auto& n : initial) {
      if (!unlinked.count(n) && count[n] != 1) missing += n + " ";
    }
    r.Val("first batch size >= 101", seen_first.size() >= 101 ? "yes" : "no", "yes");
    r.Val("unlinked some unread", unlinked.size() >= 20 ? "yes" : "no", "yes");
    r.Val("duplicates", dups, "");
    r.Val("survivors not seen exactly once", missing, "");
    r.Val("unexpected names", unexpected, "");
    r.Val(". present", count["."] == 1 ? "yes" : "no", "yes");
    r.Val(".. present", count[".."] == 1 ? "yes" : "no", "yes");
    // A fresh listing shows exactly the current state.
    DIR* d = ::opendir(r.P("d").c_str());
    size_t n_fresh = 0;
    while (dirent* e = d ? ::readdir(d) : nullptr)
      n_fresh += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) ::closedir(d);
    r.Val("fresh listing count", std::to_string(n_fresh));
    // rewinddir/seekdir back to the start lists everything again.
    d = ::opendir(r.P("d").c_str());
    size_t first = 0, second = 0;
    while (d && ::readdir(d)) ++first;
    if (d) ::rewinddir(d);
    while (d && ::readdir(d)) ++second;
    if (d) ::closedir(d);
    r.Val("rewinddir relists",
          first == second ? "same" : std::to_string(first) + "!=" + std::to_string(second), "same");
  });
}

TEST_P(PosixParityTest, NameLengthLimits) {
  RunBoth([](Recorder& r) {
    std::string n255(255, 'n');
    std::string n256(256, 'n');
    std::string m255(254, 'm');
    m255 += "z";
    r.Ok("create 255", [&] {
      int fd = ::open(r.P(n255).c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd >= 0) ::close(fd);
      return fd;
    });
    r.Stat("stat 255", n255);
    r.Ok("mkdir 255", [&] { return ::mkdir(r.P(m255).c_str(), 0755); });
    r.Ok("create inside 255 dir with 255 name", [&] {
      int fd = ::open(r.P(m255 + "/" + n255).c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd >= 0) ::close(fd);
      return fd;
    });
    r.Ok("symlink 255", [&] { return ::symlink("x", r.P(m255 + "/" + m255).c_str()); });
    r.Ok("rename to 255", [&] {
      return ::rename(r.P(m255 + "/" + n255).c_str(), r.P(m255 + "/" + std::string(255, 'r')).c_str());
    });
    r.List("listing with long names", m255);
    r.Err(
        "create 256", [&] { return ::open(r.P(n256).c_str(), O_CREAT | O_WRONLY, 0644); }, ENAMETOOLONG);
    r.Err(
        "mkdir 256", [&] { return ::mkdir(r.P(n256).c_str(), 0755); }, ENAMETOOLONG);
    r.Err(
        "stat 256",
        [&] {
          struct stat st;
          return ::stat(r.P(n256).c_str(), &st);
        },
        ENAMETOOLONG);
    r.Err(
        "symlink 256", [&] { return ::symlink("x", r.P(n256).c_str()); }, ENAMETOOLONG);
    r.Err(
        "link to 256", [&] { return ::link(r.P(n255).c_str(), r.P(n256).c_str()); }, ENAMETOOLONG);
    r.Err(
        "rename to 256", [&] { return ::rename(r.P(n255).c_str(), r.P(n256).c_str()); }, ENAMETOOLONG);
    r.Err(
        "mknod 256", [&] { return ::mkfifo(r.P(n256).c_str(), 0644); }, ENAMETOOLONG);
    r.Err(
        "setxattr name 256",
        [&] {
          std::string name = "user." + std::string(251, 'x');
          return ::setxattr(r.P(n255).c_str(), name.c_str(), "1", 1, 0);
        },
        ERANGE);
    r.Ok("unlink 255", [&] { return ::unlink(r.P(n255).c_str()); });
    r.List("root listing", "");
  });
}

TEST_P(PosixParityTest, PathErrors) {
  RunBoth([](Recorder& r) {
    ::close(::open(r.P("file").c_str(), O_CREAT | O_WRONLY, 0644));
    ::mkdir(r.P("dir").c_str(), 0755);
    r.Err(
        "missing component", [&] { return ::open(r.P("no/such/file").c_str(), O_RDONLY); }, ENOENT);
    r.Err(
        "create under missing dir", [&] { return ::open(r.P("no/f").c_str(), O_CREAT | O_WRONLY, 0644); },
        ENOENT);
    r.Err(
        "mkdir under missing dir", [&] { return ::mkdir(r.P("no/d").c_str(), 0755); }, ENOENT);
    r.Err(
        "file as component", [&] { return ::open(r.P("file/x").c_str(), O_RDONLY); }, ENOTDIR);
    r.Err(
        "create under file", [&] { return ::open(r.P("file/x").c_str(), O_CREAT | O_WRONLY, 0644); },
        ENOTDIR);
    r.Err(
        "mkdir under file", [&] { return ::mkdir(r.P("file/d").c_str(), 0755); }, ENOTDIR);
    r.Err(
        "trailing slash on file", [&] { return ::open(r.P("file/").c_str(), O_RDONLY); }, ENOTDIR);
    r.Err(
        "mkdir existing", [&] { return ::mkdir(r.P("dir").c_str(), 0755); }, EEXIST);
    r.Ok("mkdir with trailing slash", [&] { return ::mkdir(r.P("dir2/").c_str(), 0755); });
    r.Err(
        "O_DIRECTORY on file", [&] { return ::open(r.P("file").c_str(), O_RDONLY | O_DIRECTORY); }, ENOTDIR);
    r.Err(
        "open dir for write", [&] { return ::open(r.P("dir").c_str(), O_WRONLY); }, EISDIR);
    r.Err(
        "open dir rdwr", [&] { return ::open(r.P("dir").c_str(), O_RDWR); }, EISDIR);
    r.Err(
        "O_CREAT on dir", [&] { return ::open(r.P("dir").c_str(), O_CREAT | O_WRONLY, 0644); }, EISDIR);
    r.Err(
        "O_CREAT|O_EXCL on dir",
        [&] { return ::open(r.P("dir").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644); }, EEXIST);
    r.Err(
        "read on dir fd",
        [&] {
          int fd = ::open(r.P("dir").c_str(), O_RDONLY);
          char c;
          long rc = ::read(fd, &c, 1);
          int e = errno;
          ::close(fd);
          errno = e;
          return rc;
        },
        EISDIR);
    r.Err(
        "access missing", [&] { return ::access(r.P("missing").c_str(), F_OK); }, ENOENT);
    r.Err(
        "unlink missing", [&] { return ::unlink(r.P("dir/missing").c_str()); }, ENOENT);
    r.Err(
        "opendir on file", [&] { return ::open(r.P("file").c_str(), O_RDONLY | O_DIRECTORY); }, ENOTDIR);
    r.Ok("dot-dot traversal", [&] {
      struct stat st;
      return ::stat(r.P("dir/../file").c_str(), &st);
    });
    r.Err(
        "dot-dot through file",
        [&] {
          struct stat st;
          return ::stat(r.P("file/../dir").c_str(), &st);
        },
        ENOTDIR);
  });
}

TEST_P(PosixParityTest, SeekDataAndHole) {
  // Only meaningful if the reference filesystem reports holes.
  {
    std::string probe = PlainRoot() + "/probe";
    int fd = ::open(probe.c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ::pwrite(fd, "x", 1, 4 << 20);
    ::fsync(fd);
    off_t hole = ::lseek(fd, 0, SEEK_HOLE);
    ::close(fd);
    ::unlink(probe.c_str());
    if (hole != 0) GTEST_SKIP() << "plain directory does not report holes (SEEK_HOLE(0)=" << hole << ")";
  }
  RunBoth([](Recorder& r) {
    int fd = ::open(r.P("f").c_str(), O_CREAT | O_RDWR, 0644);
    std::string chunk = Pattern(64 * 1024, 11);
    ::pwrite(fd, chunk.data(), chunk.size(), 0);
    ::pwrite(fd, chunk.data(), chunk.size(), 2 << 20);
    ::ftruncate(fd, 4 << 20);
    r.Ok("fsync", [&] { return ::fsync(fd); });
    r.Ret("DATA from 0", [&] { return ::lseek(fd, 0, SEEK_DATA); });
    r.Ret("HOLE from 0", [&] { return ::lseek(fd, 0, SEEK_HOLE); });
    r.Ret("DATA from 64K", [&] { return ::lseek(fd, 64 * 1024, SEEK_DATA); });
    r.Ret("HOLE from 2M", [&] { return ::lseek(fd, 2 << 20, SEEK_HOLE); });
    r.Ret("DATA from 2M+64K", [&] { return ::lseek(fd, (2 << 20) + 64 * 1024, SEEK_DATA); });
    r.Ret("HOLE from 3M", [&] { return ::lseek(fd, 3 << 20, SEEK_HOLE); });
    r.Ret("DATA at EOF", [&] { return ::lseek(fd, 4 << 20, SEEK_DATA); });
    r.Ret("HOLE at EOF", [&] { return ::lseek(fd, 4 << 20, SEEK_HOLE); });
    r.Ret("DATA past EOF", [&] { return ::lseek(fd, 5 << 20, SEEK_DATA); });
    ::close(fd);
    // A file without holes: the only hole is the virtual one at EOF.
    fd = ::open(r.P("dense").c_str(), O_CREAT | O_RDWR, 0644);
    ::pwrite(fd, chunk.data(), chunk.size(), 0);
    ::fsync(fd);
    r.Ret("dense HOLE from 0", [&] { return ::lseek(fd, 0, SEEK_HOLE); });
    r.Ret("dense DATA from 100", [&] { return ::lseek(fd, 100, SEEK_DATA); });
    ::close(fd);
  });
}

}  // namespace
}  // namespace tempfs::testing
