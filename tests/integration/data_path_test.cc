// Which data path serves open files: with kernel passthrough the daemon never
// sees a READ or WRITE (the kernel goes to the store file itself); in the
// fallback path it does. Counted from the daemon's --debug request log.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

size_t CountOpcode(const std::string& log_path, const std::string& opcode) {
  std::ifstream in(log_path);
  std::string line;
  size_t n = 0;
  const std::string needle = "opcode: " + opcode + " (";
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) n++;
  }
  return n;
}

std::string LogPath(const TempfsMount& m) { return m.store() + "/tempfs.log"; }

bool ModeIs(const TempfsMount& m, const std::string& mode) {
  std::ifstream in(LogPath(m));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str().find("serving in " + mode) != std::string::npos;
}

// Writes 8 MiB, reads it back three ways (read, pread, mmap); returns the
// content read so the caller can compare it.
std::string WriteAndReadBack(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
  fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::string got(data.size(), '\0');
  EXPECT_EQ(pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  void* map = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0);
  EXPECT_NE(map, MAP_FAILED);
  if (map != MAP_FAILED) {
    EXPECT_EQ(memcmp(map, data.data(), data.size()), 0) << "mmap view differs";
    munmap(map, data.size());
  }
  close(fd);
  return got;
}

TEST(DataPathTest, PassthroughServesReadsAndWritesWithoutTheDaemon) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("datapath-pt");
  auto m = TempfsMount::Start(dir.path(), {"--debug"});
  ASSERT_NE(m, nullptr);
  if (!ModeIs(*m, "passthrough")) GTEST_SKIP() << "kernel or libfuse without passthrough: " << m->LogTail(400);
  const std::string data = Pattern(3, 8 << 20);
  EXPECT_EQ(WriteAndReadBack(m->mnt() + "/f", data), data);
  EXPECT_EQ(CountOpcode(LogPath(*m), "READ"), 0u) << "the daemon served reads";
  EXPECT_EQ(CountOpcode(LogPath(*m), "WRITE"), 0u) << "the daemon served writes";
  // The request log is live: the open did reach the daemon.
  EXPECT_GE(CountOpcode(LogPath(*m), "OPEN"), 1u);
}

// A directory with a capacity: its files go through the daemon (so that it
// can refuse writes), with mmap still working; the rest of the mount keeps
// passthrough.
TEST(DataPathTest, CappedFilesGoThroughTheDaemonOthersKeepPassthrough) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("datapath-cap");
  auto m = TempfsMount::Start(dir.path(), {"--debug"});
  ASSERT_NE(m, nullptr);
  if (!ModeIs(*m, "passthrough")) GTEST_SKIP() << "kernel or libfuse without passthrough: " << m->LogTail(400);
  const std::string vol = m->mnt() + "/vol";
  ASSERT_EQ(mkdir(vol.c_str(), 0755), 0);
  const std::string cap = std::to_string(64 << 20);
  ASSERT_EQ(setxattr(vol.c_str(), "trusted.tempfs.capacity", cap.data(), cap.size(), 0), 0) << strerror(errno);
  const std::string data = Pattern(5, 8 << 20);
  EXPECT_EQ(WriteAndReadBack(vol + "/f", data), data);
  // Shared mappings work; the size they can write into was checked.
  int fd = open((vol + "/mapped").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ftruncate(fd, 128 << 20), -1) << "beyond the capacity";
  EXPECT_EQ(errno, ENOSPC);
  ASSERT_EQ(ftruncate(fd, 1 << 20), 0) << strerror(errno);
  void* map = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << strerror(errno);
  memcpy(map, data.data(), 1 << 20);
  EXPECT_EQ(msync(map, 1 << 20, MS_SYNC), 0) << strerror(errno);
  munmap(map, 1 << 20);
  std::string got(1 << 20, '\0');
  EXPECT_EQ(pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, data.substr(0, 1 << 20));
  close(fd);
  size_t writes = CountOpcode(LogPath(*m), "WRITE");
  EXPECT_GE(writes, 1u) << "capped writes must reach the daemon";
  EXPECT_EQ(WriteAndReadBack(m->mnt() + "/free", data), data);
  EXPECT_EQ(CountOpcode(LogPath(*m), "WRITE"), writes) << "uncapped writes left passthrough";
}

TEST(DataPathTest, FallbackServesReadsAndWritesThroughTheDaemon) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("datapath-fb");
  auto m = TempfsMount::Start(dir.path(), {"--debug", "--no-passthrough"});
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(ModeIs(*m, "fallback")) << m->LogTail(400);
  const std::string data = Pattern(4, 8 << 20);
  EXPECT_EQ(WriteAndReadBack(m->mnt() + "/f", data), data);
  // Drop the kernel's cached pages so reads must ask the daemon.
  int fd = open((m->mnt() + "/f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::string again(data.size(), '\0');
  EXPECT_EQ(pread(fd, again.data(), again.size(), 0), static_cast<ssize_t>(again.size()));
  close(fd);
  EXPECT_EQ(again, data);
  EXPECT_GE(CountOpcode(LogPath(*m), "WRITE"), 1u);
  EXPECT_GE(CountOpcode(LogPath(*m), "READ"), 1u);
}

}  // namespace
}  // namespace tempfs::testing
