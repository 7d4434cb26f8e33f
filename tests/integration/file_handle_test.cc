// File handles on a real mount (name_to_handle_at / open_by_handle_at, FUSE
// export support): each inode has its own unpredictable generation, a handle
// with a wrong generation is refused with ESTALE, and a real handle still
// opens its file after the daemon restarted.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

// A handle as the kernel encodes FUSE's: node id (two words) and generation.
struct Handle {
  struct file_handle head;
  unsigned char bytes[MAX_HANDLE_SZ];
};
constexpr size_t kGenerationWord = 2;

// name_to_handle_at of `path`; ok false (with errno text in `err`) on failure.
bool HandleOf(const std::string& path, Handle* h, std::string* err) {
  std::memset(h, 0, sizeof *h);
  h->head.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), &h->head, &mount_id, 0) != 0) {
    *err = ErrName(errno);
    return false;
  }
  if (h->head.handle_bytes < (kGenerationWord + 1) * sizeof(uint32_t)) {
    *err = "handle of " + std::to_string(h->head.handle_bytes) + " bytes";
    return false;
  }
  return true;
}

uint32_t GenerationOf(const Handle& h) {
  uint32_t w[kGenerationWord + 1];
  std::memcpy(w, h.head.f_handle, sizeof w);
  return w[kGenerationWord];
}

Handle WithGeneration(Handle h, uint32_t generation) {
  std::memcpy(h.head.f_handle + kGenerationWord * sizeof(uint32_t), &generation, sizeof generation);
  return h;
}

// open_by_handle_at through the mount; returns the content read, or the errno name.
std::string ReadByHandle(const std::string& mnt, Handle h, int flags = O_RDONLY) {
  int mfd = open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mfd < 0) return "open mount: " + ErrName(errno);
  int fd = open_by_handle_at(mfd, &h.head, flags | O_CLOEXEC);
  int e = errno;
  close(mfd);
  if (fd < 0) return ErrName(e);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((flags & O_DIRECTORY) == 0 && (n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return (flags & O_DIRECTORY) ? "dir" : out;
}

bool WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

TEST(FileHandleTest, GenerationsAreUnguessableAndSurviveRestart) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("handles");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  const std::string a = m->mnt() + "/a", b = m->mnt() + "/b", d = m->mnt() + "/d";
  ASSERT_TRUE(WriteFile(a, "content of a"));
  ASSERT_TRUE(WriteFile(b, "content of b"));
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(d + "/gone", "soon removed"));
  Handle ha, hb, hd, hgone;
  std::string err;
  ASSERT_TRUE(HandleOf(a, &ha, &err)) << err;
  ASSERT_TRUE(HandleOf(b, &hb, &err)) << err;
  ASSERT_TRUE(HandleOf(d, &hd, &err)) << err;
  ASSERT_TRUE(HandleOf(d + "/gone", &hgone, &err)) << err;
  EXPECT_NE(GenerationOf(ha), GenerationOf(hb)) << "two files with the same generation";
  for (const Handle* h : {&ha, &hb, &hd}) EXPECT_GT(GenerationOf(*h), 1u) << "a guessable generation";

  EXPECT_EQ(ReadByHandle(m->mnt(), ha), "content of a");
  EXPECT_EQ(ReadByHandle(m->mnt(), WithGeneration(ha, GenerationOf(ha) ^ 1)), "ESTALE");
  EXPECT_EQ(ReadByHandle(m->mnt(), WithGeneration(ha, 1)), "ESTALE") << "the old constant generation";
  EXPECT_EQ(ReadByHandle(m->mnt(), WithGeneration(ha, GenerationOf(hb))), "ESTALE") << "another file's generation";
  ASSERT_EQ(unlink((d + "/gone").c_str()), 0);
  EXPECT_EQ(ReadByHandle(m->mnt(), hgone), "ESTALE") << "a removed file";

  // A new daemon and a new mount: the kernel caches nothing, it asks the daemon.
  CommandResult um = m->Unmount();
  ASSERT_EQ(um.exit_code, 0) << um.err;
  ASSERT_TRUE(m->Remount());
  EXPECT_EQ(ReadByHandle(m->mnt(), ha), "content of a");
  EXPECT_EQ(ReadByHandle(m->mnt(), hb), "content of b");
  EXPECT_EQ(ReadByHandle(m->mnt(), hd, O_RDONLY | O_DIRECTORY), "dir");
  EXPECT_EQ(ReadByHandle(m->mnt(), WithGeneration(hb, GenerationOf(hb) + 1)), "ESTALE");
  EXPECT_EQ(ReadByHandle(m->mnt(), hgone), "ESTALE");
  Handle again;
  ASSERT_TRUE(HandleOf(a, &again, &err)) << err;
  EXPECT_EQ(GenerationOf(again), GenerationOf(ha)) << "the generation is kept by the store";
}

}  // namespace
}  // namespace tempfs::testing
