// Lost data on one node, through a real mount: a file whose data file went
// missing from the store (removed by hand, disk damage) fails to open with
// EIO, again and again, in both data-path modes, never reads as an empty
// file, and can still be listed, renamed and deleted; an empty file without
// a data file still reads empty. A node rebooted with a tmpfs store (a real
// tmpfs, unmounted and mounted again) comes back as an empty file system,
// with nothing in the log that speaks of loss or damage.
//
// Run: build/bin/tempfs_integration_tests --gtest_filter='*LostData*'
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

std::string Err(int e) { return e == 0 ? "OK" : strerrorname_np(e); }

// 0, or the errno of the first failing call, close(2) included.
int Write(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) ? 0 : errno;
  if (close(fd) != 0 && err == 0) err = errno;
  return err;
}

// 0 with the content in *out, or the errno of open or read.
int Read(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  out->clear();
  char buf[1 << 16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  int err = n < 0 ? errno : 0;
  close(fd);
  return err;
}

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return {"<opendir: " + Err(errno) + ">"};
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  return out;
}

std::string DataFile(const std::string& store, uint64_t ino) {
  char buf[64];
  snprintf(buf, sizeof buf, "/data/%02x/%016llx", static_cast<unsigned>(ino & 0xff),
           static_cast<unsigned long long>(ino));
  return store + buf;
}

size_t LinesWith(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

std::string ReadLog(const std::string& store) {
  std::string log;
  (void)ReadWholeFile(store + "/tempfs.log", &log);
  return log;
}

class LostDataTest : public ::testing::TestWithParam<bool> {
 protected:
  std::vector<std::string> Args() const {
    return GetParam() ? std::vector<std::string>{"--no-passthrough"} : std::vector<std::string>{};
  }
};

TEST_P(LostDataTest, MissingDataFileIsEioEveryTimeNeverEmpty) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("lostdata");
  auto m = TempfsMount::Start(dir.path(), Args());
  ASSERT_NE(m, nullptr);
  const std::string data = Pattern(7, 300 * 1024);
  ASSERT_EQ(Err(Write(m->mnt() + "/f", data)), "OK");
  ASSERT_EQ(Err(Write(m->mnt() + "/empty", "")), "OK");
  struct stat st;
  ASSERT_EQ(stat((m->mnt() + "/f").c_str(), &st), 0);
  const uint64_t ino = st.st_ino;
  ASSERT_EQ(stat((m->mnt() + "/empty").c_str(), &st), 0);
  const uint64_t empty_ino = st.st_ino;
  ASSERT_EQ(m->Unmount().exit_code, 0);

  // The data files go while the daemon is away (no page cache to hide it).
  ASSERT_EQ(unlink(DataFile(m->store(), ino).c_str()), 0) << strerror(errno);
  ASSERT_EQ(unlink(DataFile(m->store(), empty_ino).c_str()), 0) << strerror(errno);
  ASSERT_TRUE(m->Remount());
  std::string got;
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(Err(Read(m->mnt() + "/f", &got)), "EIO") << "try " << i << ": read " << got.size() << " bytes";
    EXPECT_EQ(Err(open((m->mnt() + "/f").c_str(), O_WRONLY | O_APPEND) < 0 ? errno : 0), "EIO");
    EXPECT_NE(access(DataFile(m->store(), ino).c_str(), F_OK), 0) << "an empty data file was made for it";
  }
  EXPECT_EQ(truncate((m->mnt() + "/f").c_str(), 4096) == 0 ? "OK" : Err(errno), "EIO")
      << "growing a lost file would make zeros of it";
  // One line names the inode and the store path, not one per open.
  EXPECT_EQ(LinesWith(ReadLog(m->store()), DataFile(m->store(), ino) + " is missing"), 1u) << m->LogTail();
  // An empty file that has no data file is just empty.
  EXPECT_EQ(Err(Read(m->mnt() + "/empty", &got)), "OK");
  EXPECT_EQ(got, "");
  // The name is there (with its size) and goes away.
  ASSERT_EQ(stat((m->mnt() + "/f").c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
  ASSERT_EQ(rename((m->mnt() + "/f").c_str(), (m->mnt() + "/g").c_str()), 0) << strerror(errno);
  ASSERT_EQ(unlink((m->mnt() + "/g").c_str()), 0) << strerror(errno);
  EXPECT_EQ(List(m->mnt()), std::vector<std::string>{"empty"});
  // New files work as before.
  ASSERT_EQ(Err(Write(m->mnt() + "/new", data)), "OK");
  EXPECT_EQ(Err(Read(m->mnt() + "/new", &got)), "OK");
  EXPECT_TRUE(got == data);
}

INSTANTIATE_TEST_SUITE_P(DataPath, LostDataTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Fallback" : "Passthrough"; });

// A tmpfs store after a reboot: the tmpfs is new and empty.
TEST(LostDataRebootTest, TmpfsStoreAfterRebootMountsEmptyAndSaysNothingOfLoss) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("lostdata-reboot");
  const std::string store = dir.path() + "/store";
  ASSERT_EQ(mkdir(store.c_str(), 0755), 0);
  ASSERT_EQ(mount("tmpfs", store.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=64m"), 0) << strerror(errno);
  struct Unmounter {
    std::string path;
    ~Unmounter() { umount2(path.c_str(), MNT_DETACH); }
  } tmpfs{store};
  auto m = TempfsMount::Start(dir.path(), {}, store);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(mkdir((m->mnt() + "/d").c_str(), 0755), 0);
  ASSERT_EQ(Err(Write(m->mnt() + "/d/f", Pattern(3, 100000))), "OK");
  ASSERT_EQ(Err(Write(m->mnt() + "/g", "x")), "OK");
  ASSERT_EQ(m->Unmount().exit_code, 0);

  // The reboot: the tmpfs and everything on it are gone; a new one is there.
  // (The daemon may still be closing its files a moment after umount.)
  ASSERT_TRUE(WaitFor([&] { return umount2(store.c_str(), 0) == 0; }, std::chrono::seconds(10))) << strerror(errno);
  ASSERT_EQ(mount("tmpfs", store.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=64m"), 0) << strerror(errno);
  ASSERT_EQ(List(store), std::vector<std::string>{});
  ASSERT_TRUE(m->Remount());
  EXPECT_EQ(List(m->mnt()), std::vector<std::string>{}) << "a wiped store is an empty file system";
  std::string log = ReadLog(store);
  for (const char* word : {" lost", "missing", "damage", "corrupt", "Z warn ", "Z error "}) {
    EXPECT_EQ(LinesWith(log, word), 0u) << "misleading log after a reboot (" << word << "):\n" << log;
  }
  ASSERT_EQ(Err(Write(m->mnt() + "/g", "after")), "OK");
  std::string got;
  EXPECT_EQ(Err(Read(m->mnt() + "/g", &got)), "OK");
  EXPECT_EQ(got, "after");
  m.reset();  // unmounts before the tmpfs goes
}

}  // namespace
}  // namespace tempfs::testing
