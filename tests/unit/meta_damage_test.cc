// Damaged metadata of the embedded engine (issue 10, finding 1): every kind of
// damage is refused with a message that says what and what to do, a torn tail
// from a crash is still accepted, and recovery (what `tempfs fsck` runs) keeps
// every readable record and names every data file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "meta/embedded_meta.h"
#include "meta/journal.h"
#include "meta_test_util.h"
#include "store/local_store.h"
#include "support/fault_env.h"

namespace tempfs {
namespace {

using testutil::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

class MetaDamage : public ::testing::Test {
 protected:
  static constexpr int kFiles = 300;

  void SetUp() override {
    store_ = dir_.path();
    meta_ = store_ + "/meta";
    auto s = LocalStore::Open(store_);
    ASSERT_TRUE(s.ok());
    local_ = std::move(*s);
    // Half of the files reach the snapshot (the reopen compacts), half stay in the journal.
    ASSERT_NO_FATAL_FAILURE(MakeFiles(0, kFiles / 2));
    ASSERT_NO_FATAL_FAILURE(MakeFiles(kFiles / 2, kFiles));
    ASSERT_EQ(RecordsOf("journal").size(), static_cast<size_t>(kFiles / 2)) << "one record per create";
  }

  // Creates files f<i> in the root, each with a data file holding its name.
  void MakeFiles(int from, int to) {
    auto m = OpenMetaEngine("", store_);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    for (int i = from; i < to; i++) {
      std::string name = "f" + std::to_string(i);
      NewNode n;
      n.mode = S_IFREG | 0644;
      auto a = (*m)->Create(kRootIno, name, n);
      ASSERT_TRUE(a.ok()) << a.status().ToString();
      ASSERT_TRUE(local_->CreateData(a->ino).ok());
      auto fd = local_->OpenData(a->ino, O_WRONLY);
      ASSERT_TRUE(fd.ok());
      ASSERT_EQ(pwrite(*fd, name.data(), name.size(), 0), static_cast<ssize_t>(name.size()));
      close(*fd);
      inos_[name] = a->ino;
    }
  }

  std::vector<RecordSpan> RecordsOf(const std::string& file) { return RecordSpans(ReadFile(meta_ + "/" + file)); }

  void Overwrite(const std::string& file, size_t off, const std::string& bytes) {
    int fd = open((meta_ + "/" + file).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), off), static_cast<ssize_t>(bytes.size()));
    close(fd);
  }

  // Open must refuse with EUCLEAN and a message naming `what` and fsck.
  void ExpectRefused(const std::string& what) {
    auto m = OpenMetaEngine("", store_);
    ASSERT_FALSE(m.ok()) << "damaged metadata was accepted (" << what << ")";
    EXPECT_EQ(m.err(), EUCLEAN) << m.status().ToString();
    const std::string msg = m.status().message();
    EXPECT_EQ(msg.rfind("metadata damaged: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_NE(msg.find("run `tempfs fsck " + store_ + "`"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }

  // What fsck does: replay what is readable, repair, name unowned data, write.
  // Returns the names of the repaired root and of lost+found.
  void Recover(ReplayReport* report, TreeRepair* repair, std::vector<Ino>* adopted) {
    EmbeddedOptions o;
    o.mode = JournalOptions::Mode::kRecover;
    o.store_has_data = true;
    auto data = local_->ListData();
    ASSERT_TRUE(data.ok());
    for (Ino ino : *data) o.min_next_ino = std::max(o.min_next_ino, ino + 1);
    auto m = EmbeddedMeta::Open(meta_, Env::Default(), o, report);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    *repair = (*m)->RepairTree();
    for (Ino ino : *data) {
      if ((*m)->GetAttr(ino).ok()) continue;
      auto st = local_->StatData(ino);
      ASSERT_TRUE(st.ok());
      ASSERT_TRUE((*m)->AdoptData(ino, st->st_size).ok());
      adopted->push_back(ino);
    }
    ASSERT_TRUE((*m)->Commit().ok());
  }

  // After recovery: the store opens, every data file is named (by its own
  // name or in lost+found), every name kept points to its own data, and the
  // link counts are right.
  void ExpectRecovered(size_t want_lost_at_most) {
    ReplayReport report;
    TreeRepair repair;
    std::vector<Ino> adopted;
    ASSERT_NO_FATAL_FAILURE(Recover(&report, &repair, &adopted));
    EXPECT_FALSE(report.kept_in.empty());
    EXPECT_TRUE(testutil::PathExists(report.kept_in)) << report.kept_in;
    auto m = OpenMetaEngine("", store_);
    ASSERT_TRUE(m.ok()) << "after recovery: " << m.status().ToString();
    std::set<Ino> named;
    auto root = (*m)->ReadDir(kRootIno);
    ASSERT_TRUE(root.ok());
    size_t kept = 0;
    for (auto& e : *root) {
      if (e.name == "lost+found") continue;
      auto it = inos_.find(e.name);
      ASSERT_NE(it, inos_.end()) << "unknown name " << e.name;
      EXPECT_EQ(e.ino, it->second) << e.name;
      named.insert(e.ino);
      kept++;
    }
    auto lf = (*m)->Lookup(kRootIno, "lost+found");
    if (kept < inos_.size()) {
      ASSERT_TRUE(lf.ok()) << "files were lost but there is no lost+found";
      auto lost = (*m)->ReadDir(lf->ino);
      ASSERT_TRUE(lost.ok());
      for (auto& e : *lost) {
        EXPECT_EQ(e.name, "#" + std::to_string(e.ino));
        auto a = (*m)->GetAttr(e.ino);
        ASSERT_TRUE(a.ok());
        EXPECT_EQ(a->nlink, 1u);
        named.insert(e.ino);
      }
    }
    EXPECT_LE(inos_.size() - kept, want_lost_at_most);
    for (auto& [name, ino] : inos_) EXPECT_EQ(named.count(ino), 1u) << name << " (inode " << ino << ") is nowhere";
    auto r = (*m)->GetAttr(kRootIno);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->nlink, lf.ok() ? 3u : 2u);
    // Recovery wrote a consistent store: a second look finds nothing to do.
    m->reset();
    EmbeddedOptions check;
    check.mode = JournalOptions::Mode::kCheck;
    check.store_has_data = true;
    auto again = EmbeddedMeta::Open(meta_, Env::Default(), check);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_FALSE((*again)->RepairTree().changed());
  }

  // Without either file, half of the files lose their names (not their data).
  void ExpectDeletionRefused(const std::string& file) {
    ASSERT_EQ(unlink((meta_ + "/" + file).c_str()), 0);
    ExpectRefused(file + ": missing");
    ExpectRecovered(kFiles / 2);
  }

  // The store opens and its root holds `files` names.
  void ExpectOpensWith(size_t files) {
    auto m = OpenMetaEngine("", store_);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    auto root = (*m)->ReadDir(kRootIno);
    ASSERT_TRUE(root.ok());
    EXPECT_EQ(root->size(), files);
  }

  TempDir dir_{"damage"};
  std::string store_, meta_;
  std::unique_ptr<LocalStore> local_;
  std::map<std::string, Ino> inos_;
};

TEST_F(MetaDamage, IntactStoreOpensWithEveryFile) { ExpectOpensWith(kFiles); }

TEST_F(MetaDamage, BitFlippedInTheMiddleOfTheJournal) {
  auto recs = RecordsOf("journal");
  const RecordSpan& r = recs[recs.size() / 2];
  std::string j = ReadFile(meta_ + "/journal");
  size_t at = (r.begin + r.end) / 2;
  ASSERT_NO_FATAL_FAILURE(Overwrite("journal", at, std::string(1, static_cast<char>(j[at] ^ 0x10))));
  ExpectRefused("journal: record 76 unreadable with valid records after it");
  ExpectRecovered(1);
}

TEST_F(MetaDamage, RecordHeaderOverwritten) {
  auto recs = RecordsOf("journal");
  ASSERT_NO_FATAL_FAILURE(Overwrite("journal", recs[40].begin, std::string(16, 'X')));
  ExpectRefused("journal: record 41 unreadable with valid records after it");
  ExpectRecovered(1);
}

TEST_F(MetaDamage, JournalTruncatedAtARecordBoundary) {
  auto recs = RecordsOf("journal");
  ASSERT_EQ(truncate((meta_ + "/journal").c_str(), recs[99].end), 0);
  ExpectRefused("journal: ends right after record 100 (truncated");
  ExpectRecovered(50);
}

TEST_F(MetaDamage, JournalTruncatedAfterItsLastRecord) {
  auto recs = RecordsOf("journal");
  ASSERT_EQ(truncate((meta_ + "/journal").c_str(), recs.back().end), 0);
  ExpectRefused("journal: ends right after record 150");
  ExpectRecovered(0);
}

TEST_F(MetaDamage, JournalZeroed) {
  size_t size = ReadFile(meta_ + "/journal").size();
  ASSERT_NO_FATAL_FAILURE(Overwrite("journal", 0, std::string(size, '\0')));
  ExpectRefused("journal: no valid header");
  ExpectRecovered(kFiles / 2);
}

TEST_F(MetaDamage, JournalEmptied) {
  ASSERT_EQ(truncate((meta_ + "/journal").c_str(), 0), 0);
  ExpectRefused("journal: no valid header");
  ExpectRecovered(kFiles / 2);
}

TEST_F(MetaDamage, JournalDeleted) { ExpectDeletionRefused("journal"); }

TEST_F(MetaDamage, SnapshotTruncatedAtARecordBoundary) {
  auto recs = RecordsOf("snapshot");
  ASSERT_GE(recs.size(), 2u);
  ASSERT_EQ(truncate((meta_ + "/snapshot").c_str(), recs[0].end), 0);
  ExpectRefused("snapshot: truncated after record 1 (its trailer is missing)");
  // The snapshot's inode records come first, names after: the names are gone,
  // the journal's files keep theirs, every data file is named.
  ExpectRecovered(kFiles / 2);
}

TEST_F(MetaDamage, SnapshotTruncatedRightBeforeItsTrailer) {
  auto recs = RecordsOf("snapshot");
  ASSERT_EQ(truncate((meta_ + "/snapshot").c_str(), recs.back().end), 0);
  ExpectRefused("snapshot: truncated after record " + std::to_string(recs.size()));
  ExpectRecovered(0);
}

TEST_F(MetaDamage, SnapshotDeleted) { ExpectDeletionRefused("snapshot"); }

TEST_F(MetaDamage, SnapshotBitFlipped) {
  auto recs = RecordsOf("snapshot");
  std::string s = ReadFile(meta_ + "/snapshot");
  size_t at = (recs[0].begin + recs[0].end) / 2;
  ASSERT_NO_FATAL_FAILURE(Overwrite("snapshot", at, std::string(1, static_cast<char>(s[at] ^ 1))));
  ExpectRefused("snapshot: record 1 unreadable");
  ExpectRecovered(kFiles / 2);
}

TEST_F(MetaDamage, BothFilesDeletedWhileDataRemains) {
  ASSERT_EQ(unlink((meta_ + "/snapshot").c_str()), 0);
  ASSERT_EQ(unlink((meta_ + "/journal").c_str()), 0);
  ExpectRefused("snapshot and journal are missing, but the store holds data files");
  ExpectRecovered(kFiles);
}

TEST_F(MetaDamage, JournalOfAnotherGeneration) {
  std::string old = ReadFile(meta_ + "/journal");
  // Two more starts: two compactions.
  for (int i = 0; i < 2; i++) ASSERT_TRUE(OpenMetaEngine("", store_).ok());
  WriteFile(meta_ + "/journal", old);
  ExpectRefused("journal: continues snapshot generation");
}

TEST_F(MetaDamage, JournalOfAnotherStore) {
  TempDir other("other");
  ASSERT_TRUE(OpenMetaEngine("", other.path()).ok());
  WriteFile(meta_ + "/journal", ReadFile(other.path() + "/meta/journal"));
  ExpectRefused("journal: belongs to another store");
}

// The crash between a compaction's renames leaves the previous journal beside
// the new snapshot: its records are in the snapshot, nothing is lost.
TEST_F(MetaDamage, PreviousJournalBesideItsCompactionIsAccepted) {
  std::string old = ReadFile(meta_ + "/journal");
  ASSERT_TRUE(OpenMetaEngine("", store_).ok());  // compacts: snapshot G+1
  WriteFile(meta_ + "/journal", old);            // journal G
  ExpectOpensWith(kFiles);
}

// A crash mid-append: the last record is torn. Only that operation is lost.
TEST_F(MetaDamage, TornLastRecordIsDroppedNotRefused) {
  auto recs = RecordsOf("journal");
  const RecordSpan& last = recs.back();
  size_t size = ReadFile(meta_ + "/journal").size();
  // Its second half never reached the file (zeros, as in preallocated space)...
  size_t half = (last.begin + last.end) / 2;
  ASSERT_NO_FATAL_FAILURE(Overwrite("journal", half, std::string(size - half, '\0')));
  ExpectOpensWith(kFiles - 1);
  // ... or the file ends inside it (the write stopped there).
  ASSERT_NO_FATAL_FAILURE(MakeFiles(kFiles, kFiles + 1));
  recs = RecordsOf("journal");
  ASSERT_EQ(truncate((meta_ + "/journal").c_str(), recs.back().end - 3), 0);
  ExpectOpensWith(kFiles - 1);
}

TEST_F(MetaDamage, IntactAfterManyCompactions) {
  for (int round = 0; round < 30; round++) {
    auto m = EmbeddedMeta::Open(meta_, Env::Default(), EmbeddedOptions{JournalOptions::Mode::kServe, true, 0});
    ASSERT_TRUE(m.ok()) << "round " << round << ": " << m.status().ToString();
    NewNode n;
    n.mode = S_IFREG | 0600;
    ASSERT_TRUE((*m)->Create(kRootIno, "r" + std::to_string(round), n).ok());
    if (round % 2 == 0) {
      ASSERT_TRUE((*m)->Unlink(kRootIno, "f" + std::to_string(round)).ok());
    }
    ASSERT_TRUE((*m)->Commit().ok());  // a compaction while serving, too
    auto root = (*m)->ReadDir(kRootIno);
    ASSERT_TRUE(root.ok());
    EXPECT_EQ(root->size(), static_cast<size_t>(kFiles + round + 1 - (round / 2 + 1)));
  }
  EmbeddedOptions check{JournalOptions::Mode::kCheck, true, 0};
  auto m = EmbeddedMeta::Open(meta_, Env::Default(), check);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FALSE((*m)->RepairTree().changed());
}

// A failed append (the store is full, or the disk fails) leaves the journal
// as it was: no half record, and the file still ends with zeros.
TEST_F(MetaDamage, FailedAppendLeavesNoDamage) {
  testing::FaultEnv env;
  auto m = EmbeddedMeta::Open(meta_, &env, EmbeddedOptions{JournalOptions::Mode::kServe, true, 0});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  env.ShortWrites(20, "journal");
  env.FailWrite(2, EIO, "journal");  // the record's first 20 bytes land, then the rest fails
  NewNode n;
  n.mode = S_IFREG | 0600;
  EXPECT_FALSE((*m)->Create(kRootIno, "lost-write", n).ok());
  env.Reset();
  ASSERT_TRUE((*m)->Create(kRootIno, "after", n).ok());
  m->reset();
  auto again = OpenMetaEngine("", store_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE((*again)->Lookup(kRootIno, "after").ok());
  EXPECT_FALSE((*again)->Lookup(kRootIno, "lost-write").ok());
}

// A store of the format before headers: refused with a word on what to do,
// and fsck converts it without losing a file.
TEST_F(MetaDamage, StoreOfTheOlderFormatIsConvertedByRecovery) {
  for (const char* f : {"snapshot", "journal"}) {
    std::string data = ReadFile(meta_ + "/" + f);
    auto recs = RecordSpans(data);
    ASSERT_FALSE(recs.empty());
    WriteFile(meta_ + "/" + f, data.substr(recs.front().begin, recs.back().end - recs.front().begin));
  }
  ExpectRefused("snapshot: written by an older tempfs (no header); fsck converts it");
  ExpectRecovered(0);
}

// A compaction that fails half-way (here: writing the new journal) leaves
// the previous snapshot and journal in charge, and appends go on.
TEST_F(MetaDamage, FailedCompactionKeepsThePreviousPair) {
  testing::FaultEnv env;
  auto m = EmbeddedMeta::Open(meta_, &env, EmbeddedOptions{JournalOptions::Mode::kServe, true, 0});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  env.FailWrite(1, ENOSPC, "journal.tmp");
  EXPECT_FALSE((*m)->Commit().ok());
  env.Reset();
  EXPECT_FALSE(testutil::PathExists(meta_ + "/journal.tmp"));
  EXPECT_FALSE(testutil::PathExists(meta_ + "/snapshot.tmp"));
  NewNode n;
  n.mode = S_IFREG | 0600;
  ASSERT_TRUE((*m)->Create(kRootIno, "after", n).ok());
  m->reset();
  ExpectOpensWith(kFiles + 1);
}

// A compaction stopped between its two renames: the new snapshot is in
// place, the old journal still beside it. No change may be acknowledged into
// that journal (a restart would not replay it), and the restart keeps all.
TEST_F(MetaDamage, CompactionStoppedBetweenItsRenames) {
  testing::FaultEnv env;
  auto m = EmbeddedMeta::Open(meta_, &env, EmbeddedOptions{JournalOptions::Mode::kServe, true, 0});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  NewNode n;
  n.mode = S_IFREG | 0600;
  ASSERT_TRUE((*m)->Create(kRootIno, "before", n).ok());
  env.FailRename(EIO, "journal.tmp");
  EXPECT_FALSE((*m)->Commit().ok());
  EXPECT_FALSE((*m)->Create(kRootIno, "refused", n).ok()) << "a change went to a journal no one replays";
  m->reset();
  ExpectOpensWith(kFiles + 1);
  auto again = OpenMetaEngine("", store_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->Lookup(kRootIno, "before").ok());
}

// Corruption on the way to the disk (one byte of one append) with valid
// records after it: refused, and recovery keeps every other record.
TEST_F(MetaDamage, ByteCorruptedOnItsWayIsRefused) {
  testing::FaultEnv env;
  {
    auto m = EmbeddedMeta::Open(meta_, &env, EmbeddedOptions{JournalOptions::Mode::kServe, true, 0});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    env.CorruptWrite(3, 30, "journal");
    NewNode n;
    n.mode = S_IFREG | 0600;
    for (int i = 0; i < 6; i++) ASSERT_TRUE((*m)->Create(kRootIno, "c" + std::to_string(i), n).ok());
  }
  ExpectRefused("journal: record 3 unreadable with valid records after it");
  ReplayReport report;
  TreeRepair repair;
  std::vector<Ino> adopted;
  ASSERT_NO_FATAL_FAILURE(Recover(&report, &repair, &adopted));
  EXPECT_EQ(report.journal_records, 5u);
  ExpectOpensWith(kFiles + 5);  // c2 is lost (it had no data file to keep)
}

TEST(MetaFreshStore, NewStoreIsCreatedAndAnEmptyOneReopens) {
  TempDir dir("fresh");
  ASSERT_TRUE(OpenMetaEngine("", dir.path()).ok());
  EXPECT_TRUE(testutil::PathExists(dir.path() + "/meta/snapshot"));
  EXPECT_TRUE(testutil::PathExists(dir.path() + "/meta/journal"));
  auto m = OpenMetaEngine("", dir.path());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE((*m)->GetAttr(kRootIno).ok());
}

// A stale data file must never be handed to a new inode: numbers start above it.
TEST(MetaFreshStore, NewInodesNumberAboveEveryDataFile) {
  TempDir dir("above");
  {
    auto s = LocalStore::Open(dir.path());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(OpenMetaEngine("", dir.path()).ok());
    ASSERT_TRUE((*s)->CreateData(500).ok());
  }
  auto m = OpenMetaEngine("", dir.path());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  NewNode n;
  n.mode = S_IFREG | 0600;
  auto a = (*m)->Create(kRootIno, "new", n);
  ASSERT_TRUE(a.ok());
  EXPECT_GT(a->ino, 500u);
}

}  // namespace
}  // namespace tempfs
