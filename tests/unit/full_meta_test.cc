// The embedded engine on a full store (issue 10, finding 3): a store that
// filled up must open again, after a clean stop and after a crash that left
// a torn record, and unlinking must still be logged so that the user can
// empty it. FaultEnv.NoSpaceAfter plays the full disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "meta/embedded_meta.h"
#include "meta_test_util.h"
#include "support/fault_env.h"

namespace tempfs {
namespace {

using testing::FaultEnv;
using testutil::TempDir;

class FullMetaTest : public ::testing::Test {
 protected:
  std::string meta_dir() const { return dir_.path() + "/meta"; }

  std::unique_ptr<EmbeddedMeta> OpenWith(Env* env) {
    auto m = EmbeddedMeta::Open(meta_dir(), env);
    EXPECT_TRUE(m.ok()) << "open: " << m.status().ToString();
    return m.ok() ? std::move(*m) : nullptr;
  }

  // A namespace of `n` files, "f0".."f<n-1>", written with room to spare.
  void MakeFiles(int n) {
    auto m = OpenWith(Env::Default());
    ASSERT_NE(m, nullptr);
    for (int i = 0; i < n; i++) {
      NewNode node;
      node.mode = S_IFREG | 0644;
      auto a = m->Create(kRootIno, "f" + std::to_string(i), node);
      ASSERT_TRUE(a.ok()) << a.status().ToString();
    }
  }

  uint64_t FileSize(const std::string& name) {
    struct stat st;
    return stat((meta_dir() + "/" + name).c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }

  // A crash in the middle of an append: part of a record right after the
  // valid ones.
  void AppendTornRecord() {
    std::string journal = meta_dir() + "/journal";
    auto data = ReadWholeFile(Env::Default(), journal);
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    size_t valid = ForEachRecord(*data, [](std::string_view) {});
    std::string torn = FrameRecord(std::string(100, 'x')).substr(0, 60);
    int fd = open(journal.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ssize_t n = pwrite(fd, torn.data(), torn.size(), static_cast<off_t>(valid));
    close(fd);
    ASSERT_EQ(n, static_cast<ssize_t>(torn.size()));
  }

  // Opens the store through env_ (as full as the test made it), unlinks
  // `victim`, and opens it again: the unlink was kept, `other` is still there.
  void ExpectUnlinkKeptWhenFull(const std::string& victim, const std::string& other) {
    {
      auto m = OpenWith(&env_);
      ASSERT_NE(m, nullptr);
      EXPECT_TRUE(m->Lookup(kRootIno, other).ok());
      auto u = m->Unlink(kRootIno, victim);
      ASSERT_TRUE(u.ok()) << "unlink on a full store: " << u.status().ToString();
      EXPECT_TRUE(m->Drop(u->ino).ok());
    }
    auto m = OpenWith(&env_);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->Lookup(kRootIno, victim).status().err(), ENOENT) << "the unlink was lost";
    EXPECT_TRUE(m->Lookup(kRootIno, other).ok());
  }

  TempDir dir_{"fullmeta"};
  FaultEnv env_;
};

TEST_F(FullMetaTest, OpensWithNoSpaceLeftAndUnlinkIsKept) {
  ASSERT_NO_FATAL_FAILURE(MakeFiles(50));
  env_.NoSpaceAfter(0);
  ExpectUnlinkKeptWhenFull("f7", "f49");
}

TEST_F(FullMetaTest, OpensWithNoSpaceLeftAfterATornRecord) {
  ASSERT_NO_FATAL_FAILURE(MakeFiles(20));
  ASSERT_NO_FATAL_FAILURE(AppendTornRecord());
  env_.NoSpaceAfter(0);
  ExpectUnlinkKeptWhenFull("f3", "f19");
}

// If even the torn record cannot be overwritten, the journal is cut there.
TEST_F(FullMetaTest, TornRecordThatCannotBeClearedIsCutOff) {
  ASSERT_NO_FATAL_FAILURE(MakeFiles(20));
  ASSERT_NO_FATAL_FAILURE(AppendTornRecord());
  env_.FailWrite(1, ENOSPC, "/journal");
  env_.NoSpaceAfter(0, "/snapshot");
  {
    auto m = OpenWith(&env_);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(m->Lookup(kRootIno, "f19").ok());
  }
  auto data = ReadWholeFile(Env::Default(), meta_dir() + "/journal");
  ASSERT_TRUE(data.ok());
  size_t valid = ForEachRecord(*data, [](std::string_view) {});
  EXPECT_EQ(data->find_first_not_of('\0', valid), std::string::npos) << "torn bytes left in the journal";
  env_.Reset();
  ExpectUnlinkKeptWhenFull("f3", "f19");
}

// Compaction rewrites the snapshot and empties the journal; the space the
// journal kept in reserve must survive that, or a store that fills right
// after a compaction can no longer log an unlink.
TEST_F(FullMetaTest, CompactionKeepsTheJournalReserve) {
  ASSERT_NO_FATAL_FAILURE(MakeFiles(50));
  ASSERT_GE(FileSize("journal"), Journal::kReserve);
  // Room for the new snapshot (a few KiB), not for allocating a new reserve.
  env_.NoSpaceAfter(256 << 10);
  auto m = OpenWith(&env_);  // compacts
  ASSERT_NE(m, nullptr);
  EXPECT_GE(FileSize("journal"), Journal::kReserve) << "the journal's reserve was given away by compaction";
  env_.NoSpaceAfter(0);
  for (int i = 0; i < 50; i++) {
    auto u = m->Unlink(kRootIno, "f" + std::to_string(i));
    ASSERT_TRUE(u.ok()) << "unlink f" << i << " on a full store: " << u.status().ToString();
  }
}

// A compaction that finds no room is not tried again at once: on a full
// store every change would otherwise rewrite the whole namespace first.
TEST_F(FullMetaTest, FailedCompactionWaitsBeforeTryingAgain) {
  auto j = Journal::Open(
      meta_dir(), [](std::string_view) {}, &env_);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  const std::string record(1 << 20, 'r');
  while (!(*j)->NeedsCompaction()) ASSERT_TRUE((*j)->Append(record, false).ok());
  env_.NoSpaceAfter(0, "/snapshot");
  auto dump = [&](const Journal::RecordFn& emit) { emit(record); };
  EXPECT_EQ((*j)->Compact(dump).err(), ENOSPC);
  EXPECT_FALSE((*j)->NeedsCompaction()) << "a failed compaction is due again at once";
  for (uint64_t n = 0; n <= Journal::kChunk && !(*j)->NeedsCompaction(); n += record.size()) {
    ASSERT_TRUE((*j)->Append(record, false).ok());
  }
  EXPECT_TRUE((*j)->NeedsCompaction()) << "never tried again";
  env_.Reset();
  EXPECT_TRUE((*j)->Compact(dump).ok());
  EXPECT_FALSE((*j)->NeedsCompaction());
}

// Names that fill a store, with no data to delete that would give room
// back: the journal keeps allocated what removing every one of them logs,
// so a disk that then fills to the last byte still lets them all go.
TEST_F(FullMetaTest, EveryNameCanBeRemovedFromAFullDisk) {
  FaultEnv env;
  auto m = OpenWith(&env);
  ASSERT_NE(m, nullptr);
  // Their removals log about 6 MiB: more than the fixed reserve and the
  // chunk allocated ahead together.
  const int kNames = 14000;
  for (int i = 0; i < kNames; i++) {
    NewNode node;
    node.mode = S_IFREG | 0644;
    auto a = m->Create(kRootIno, std::string(200, 'n') + std::to_string(i), node);
    ASSERT_TRUE(a.ok()) << i << ": " << a.status().ToString();
  }
  env.NoSpaceAfter(0);  // the rest of the store fills up
  for (int i = 0; i < kNames; i++) {
    auto a = m->Unlink(kRootIno, std::string(200, 'n') + std::to_string(i));
    ASSERT_TRUE(a.ok()) << "unlink " << i << " of " << kNames << " on a full disk: " << a.status().ToString();
  }
}

}  // namespace
}  // namespace tempfs
