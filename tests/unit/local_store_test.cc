// LocalStore (backing files of inodes) and StoreLock (one daemon per store).
#include "store/local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "meta_test_util.h"

namespace tempfs {
namespace {

using testutil::ErrName;
using testutil::PathExists;
using testutil::TempDir;

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("store");
    ASSERT_FALSE(dir_->path().empty());
    auto s = LocalStore::Open(dir_->path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    dir_.reset();
  }
  std::string DataPath(Ino ino) const { return dir_->path() + "/data/" + LocalStore::DataName(ino); }
  std::string ReadFile(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<LocalStore> store_;
};

TEST(LocalStoreName, DataNameFormat) {
  EXPECT_EQ(LocalStore::DataName(0x12a), "2a/000000000000012a");
  EXPECT_EQ(LocalStore::DataName(1), "01/0000000000000001");
  EXPECT_EQ(LocalStore::DataName(0x100), "00/0000000000000100");
  EXPECT_EQ(LocalStore::DataName(0xff), "ff/00000000000000ff");
  EXPECT_EQ(LocalStore::DataName(0xfedcba9876543210ull), "10/fedcba9876543210");
  EXPECT_EQ(LocalStore::DataName(~0ull), "ff/ffffffffffffffff");
}

TEST(LocalStoreOpen, MissingDirectoryIsENOENT) {
  TempDir dir("store");
  EXPECT_ERRNO(LocalStore::Open(dir.path() + "/does-not-exist"), ENOENT);
  EXPECT_FALSE(PathExists(dir.path() + "/does-not-exist"));
}

TEST(LocalStoreOpen, RegularFileIsENOTDIR) {
  TempDir dir("store");
  std::string file = dir.path() + "/file";
  std::ofstream(file) << "x";
  EXPECT_ERRNO(LocalStore::Open(file), ENOTDIR);
}

TEST_F(LocalStoreTest, OpenCreatesDataFolders) {
  EXPECT_EQ(store_->root(), dir_->path());
  for (int i = 0; i < 256; i++) {
    char sub[3];
    snprintf(sub, sizeof sub, "%02x", i);
    struct stat st;
    ASSERT_EQ(stat((dir_->path() + "/data/" + sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
  }
  // Opening again is fine.
  auto again = LocalStore::Open(dir_->path());
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST_F(LocalStoreTest, CreateDataMakesEmptyFileAndEmptiesExisting) {
  Ino ino = 0x1234;
  ASSERT_TRUE(store_->CreateData(ino).ok());
  struct stat st;
  ASSERT_EQ(stat(DataPath(ino).c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 0);
  std::ofstream(DataPath(ino)) << "some content";
  ASSERT_TRUE(store_->CreateData(ino).ok());
  ASSERT_EQ(stat(DataPath(ino).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
}

TEST_F(LocalStoreTest, OpenDataReadsAndWrites) {
  Ino ino = 77;
  ASSERT_TRUE(store_->CreateData(ino).ok());
  auto fd = store_->OpenData(ino, O_RDWR);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  ASSERT_EQ(pwrite(*fd, "hello", 5, 0), 5);
  close(*fd);
  EXPECT_EQ(ReadFile(DataPath(ino)), "hello");
  auto st = store_->StatData(ino);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->st_size, 5);
  // O_EXCL and friends are ignored: the file exists already.
  fd = store_->OpenData(ino, O_RDONLY | O_EXCL);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  char buf[5];
  EXPECT_EQ(pread(*fd, buf, 5, 0), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(fcntl(*fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  close(*fd);
  // O_TRUNC is honoured.
  fd = store_->OpenData(ino, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(fd.ok());
  close(*fd);
  EXPECT_EQ(store_->StatData(ino)->st_size, 0);
}

TEST_F(LocalStoreTest, OpenDataOfMissingFileIsENOENTUnlessCreated) {
  // Missing may mean lost: the store never makes an empty file on its own.
  Ino ino = 0x5000;
  ASSERT_FALSE(PathExists(DataPath(ino)));
  EXPECT_ERRNO(store_->OpenData(ino, O_RDONLY), ENOENT);
  EXPECT_ERRNO(store_->OpenData(ino, O_RDWR | O_TRUNC), ENOENT);
  EXPECT_FALSE(PathExists(DataPath(ino)));
  auto fd = store_->OpenData(ino, O_RDONLY | O_CREAT);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  char c;
  EXPECT_EQ(read(*fd, &c, 1), 0);
  close(*fd);
  EXPECT_TRUE(PathExists(DataPath(ino)));
}

TEST_F(LocalStoreTest, RemoveAndStatData) {
  Ino ino = 300;
  ASSERT_TRUE(store_->CreateData(ino).ok());
  ASSERT_TRUE(store_->StatData(ino).ok());
  ASSERT_TRUE(store_->RemoveData(ino).ok());
  EXPECT_FALSE(PathExists(DataPath(ino)));
  EXPECT_ERRNO(store_->StatData(ino), ENOENT);
  EXPECT_TRUE(store_->RemoveData(ino).ok()) << "removing a missing file is fine";
  EXPECT_TRUE(store_->RemoveData(987654).ok());
}

TEST_F(LocalStoreTest, Times) {
  Ino ino = 9;
  ASSERT_TRUE(store_->CreateData(ino).ok());
  struct timespec times[2] = {{1000, 5}, {2000, 7}};
  ASSERT_TRUE(store_->SetDataTimes(ino, times).ok());
  auto st = store_->StatData(ino);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->st_atim.tv_sec, 1000);
  EXPECT_EQ(st->st_mtim.tv_sec, 2000);
  EXPECT_EQ(st->st_mtim.tv_nsec, 7);
  EXPECT_ERRNO(store_->SetDataTimes(31337, times), ENOENT);
}

TEST_F(LocalStoreTest, StatFs) {
  auto s = store_->StatFs();
  ASSERT_TRUE(s.ok());
  EXPECT_GT(s->f_blocks, 0u);
  EXPECT_GT(s->f_bsize, 0u);
}

// ------------------------------------------------------------------ StoreLock

TEST(StoreLock, AcquireWritesPidAndIsHeld) {
  TempDir dir("lock");
  pid_t pid = -1;
  EXPECT_FALSE(StoreLock::IsHeld(dir.path(), &pid)) << "no lock file yet";
  {
    auto lock = StoreLock::Acquire(dir.path());
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
    std::ifstream in(dir.path() + "/tempfs.lock");
    std::string content((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(content, std::to_string(getpid()) + "\n");
    pid = -1;
    EXPECT_TRUE(StoreLock::IsHeld(dir.path(), &pid));
    EXPECT_EQ(pid, getpid());
    EXPECT_TRUE(StoreLock::IsHeld(dir.path(), nullptr));
  }
  EXPECT_FALSE(StoreLock::IsHeld(dir.path(), &pid)) << "released with the object";
  auto again = StoreLock::Acquire(dir.path());
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST(StoreLock, SecondAcquireIsEBUSYNamingTheHolder) {
  TempDir dir("lock");
  auto first = StoreLock::Acquire(dir.path());
  ASSERT_TRUE(first.ok());
  // flock() locks belong to open file descriptions: a second open conflicts
  // even inside the same process.
  auto second = StoreLock::Acquire(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(ErrName(second.err()), "EBUSY");
  EXPECT_NE(second.status().message().find("pid " + std::to_string(getpid())), std::string::npos)
      << second.status().message();
  // The failed attempt must not have released or rewritten the lock.
  pid_t pid = 0;
  EXPECT_TRUE(StoreLock::IsHeld(dir.path(), &pid));
  EXPECT_EQ(pid, getpid());
  EXPECT_FALSE(StoreLock::Acquire(dir.path()).ok());
}

TEST(StoreLock, HeldByAnotherProcess) {
  TempDir dir("lock");
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = StoreLock::Acquire(dir.path());
    char ok = lock.ok() ? 'y' : 'n';
    if (write(to_parent[1], &ok, 1) != 1) _exit(2);
    char c;
    if (read(to_child[0], &c, 1) != 1) _exit(3);
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(to_parent[0], &ok, 1), 1);
  EXPECT_EQ(ok, 'y');
  pid_t pid = 0;
  EXPECT_TRUE(StoreLock::IsHeld(dir.path(), &pid));
  EXPECT_EQ(pid, child);
  auto mine = StoreLock::Acquire(dir.path());
  EXPECT_EQ(ErrName(mine.err()), "EBUSY");
  EXPECT_NE(mine.status().message().find("pid " + std::to_string(child)), std::string::npos)
      << mine.status().message();
  char go = 'x';
  ASSERT_EQ(write(to_child[1], &go, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) close(fd);
  // The holder is gone: the lock is free (its pid may linger in the file).
  EXPECT_FALSE(StoreLock::IsHeld(dir.path(), &pid));
  auto now = StoreLock::Acquire(dir.path());
  EXPECT_TRUE(now.ok()) << now.status().ToString();
}

TEST(StoreLock, MissingStoreIsENOENT) {
  TempDir dir("lock");
  EXPECT_ERRNO(StoreLock::Acquire(dir.path() + "/missing"), ENOENT);
  EXPECT_FALSE(StoreLock::IsHeld(dir.path() + "/missing", nullptr));
}

}  // namespace
}  // namespace tempfs
