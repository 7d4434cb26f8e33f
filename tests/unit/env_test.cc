// Env and the fault-injecting FaultEnv that the fault tests are built on:
// each fault must really happen, and WriteFully must carry on after short
// writes and report a write that stores nothing.
#include "store/env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "meta_test_util.h"
#include "support/fault_env.h"

namespace tempfs {
namespace {

using testing::FaultEnv;
using testutil::TempDir;

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
  int OpenFile(const std::string& name) {
    return env_.Open(dir_.path() + "/" + name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  }
  std::string Contents(const std::string& name) {
    auto r = ReadWholeFile(&env_, dir_.path() + "/" + name);
    return r.ok() ? *r : "<" + r.status().ToString() + ">";
  }
  TempDir dir_{"env"};
  FaultEnv env_;
};

TEST_F(EnvTest, WriteFullyCarriesOnAfterShortWrites) {
  env_.ShortWrites(3);
  int fd = OpenFile("f");
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteFully(&env_, fd, "0123456789", 0).ok());
  EXPECT_EQ(env_.writes(), 4);  // 3 + 3 + 3 + 1
  env_.Close(fd);
  EXPECT_EQ(Contents("f"), "0123456789");
}

TEST_F(EnvTest, FailWriteFailsTheNthMatchingWriteOnce) {
  env_.FailWrite(2, EIO, "/b");
  int a = OpenFile("a"), b = OpenFile("b");
  ASSERT_TRUE(WriteFully(&env_, a, "x", 0).ok());  // not matched
  ASSERT_TRUE(WriteFully(&env_, b, "1", 0).ok());
  Status st = WriteFully(&env_, b, "2", 1);
  EXPECT_EQ(st.err(), EIO);
  EXPECT_TRUE(WriteFully(&env_, b, "3", 1).ok());
  env_.Close(a);
  env_.Close(b);
  EXPECT_EQ(Contents("b"), "13");
}

TEST_F(EnvTest, NoSpaceAfterGivesAShortWriteThenEnospc) {
  env_.NoSpaceAfter(4);
  int fd = OpenFile("f");
  char buf[8] = "abcdefg";
  EXPECT_EQ(env_.PWrite(fd, buf, 6, 0), 4);
  errno = 0;
  EXPECT_EQ(env_.PWrite(fd, buf, 2, 4), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(WriteFully(&env_, fd, "zz", 4).err(), ENOSPC);
  EXPECT_EQ(env_.Fallocate(fd, 0, 0, 1 << 20), -1);
  env_.Close(fd);
  EXPECT_EQ(Contents("f"), "abcd");
}

TEST_F(EnvTest, CorruptWriteFlipsOneByte) {
  env_.CorruptWrite(1, 2);
  int fd = OpenFile("f");
  ASSERT_TRUE(WriteFully(&env_, fd, "aaaa", 0).ok());
  ASSERT_TRUE(WriteFully(&env_, fd, "bbbb", 4).ok());
  env_.Close(fd);
  EXPECT_EQ(Contents("f"), std::string("aa`abbbb"));
}

TEST_F(EnvTest, DropUnsyncedCutsBackToTheSyncedLength) {
  int fd = OpenFile("f");
  ASSERT_TRUE(WriteFully(&env_, fd, "synced", 0).ok());
  ASSERT_EQ(env_.Fdatasync(fd), 0);
  ASSERT_TRUE(WriteFully(&env_, fd, "-lost", 6).ok());
  int g = OpenFile("g");
  ASSERT_TRUE(WriteFully(&env_, g, "never synced", 0).ok());
  EXPECT_EQ(env_.DropUnsynced(), 2);
  env_.Close(fd);
  env_.Close(g);
  EXPECT_EQ(Contents("f"), "synced");
  EXPECT_EQ(Contents("g"), "");
}

TEST_F(EnvTest, MissingFileIsEnoent) {
  EXPECT_EQ(ReadWholeFile(&env_, dir_.path() + "/none").err(), ENOENT);
}

}  // namespace
}  // namespace tempfs
