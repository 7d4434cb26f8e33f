// Metadata damage on a real mount (issue 10, findings 1 and 2): 300 closed
// files, half in the snapshot and half in the journal; the daemon is killed
// or unmounted; the metadata is damaged one way; `tempfs mount` must refuse
// with a one-line message, `tempfs fsck` must recover, and after it every
// file still named is intact and lost+found holds the rest. And a new file
// never reads the bytes of a file a crash lost.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "meta/journal.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

constexpr int kFiles = 300;

std::string Content(int i) { return Pattern(1000 + i, 500 + (i * 997) % 17500); }

void WriteFileAt(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << path;
  ASSERT_EQ(close(fd), 0) << path;
}

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  return out;
}

std::string Slurp(const std::string& path) {
  std::string s;
  ReadWholeFile(path, &s);
  return s;
}

void Overwrite(const std::string& path, size_t off, const std::string& bytes) {
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), off), static_cast<ssize_t>(bytes.size()));
  close(fd);
}

// From `num`/`den` of the journal on, the first record that names one of
// the files: a record that only updates a size loses no name when it is
// damaged, and the case would then damage nothing the test can see.
RecordSpan NamingRecord(const std::string& meta, size_t num, size_t den) {
  std::string j = Slurp(meta + "/journal");
  std::vector<RecordSpan> r = RecordSpans(j);
  EXPECT_GT(r.size(), 10u);
  auto names_a_file = [&](size_t k) {
    std::string_view rec(j.data() + r[k].begin, r[k].end - r[k].begin);
    for (int i = 0; i < kFiles; i++) {
      // A name as the engine encodes it: u32 length, then the bytes.
      std::string name = "f" + std::to_string(i);
      uint32_t len = static_cast<uint32_t>(name.size());
      std::string encoded(reinterpret_cast<const char*>(&len), sizeof len);
      if (rec.find(encoded + name) != std::string_view::npos) return true;
    }
    return false;
  };
  for (size_t k = r.size() * num / den; k < r.size(); k++) {
    if (names_a_file(k)) return r[k];
  }
  ADD_FAILURE() << "no record from " << num << "/" << den << " of the journal on names a file";
  return r.empty() ? RecordSpan{} : r.back();
}

struct DamageCase {
  std::string name;
  bool kill9;  // stop the daemon with SIGKILL (else tempfs umount)
  std::function<void(const std::string& meta)> damage;
  std::string says;  // part of the refusal
};

void PrintTo(const DamageCase& c, std::ostream* os) { *os << c.name; }

std::vector<DamageCase> Cases() {
  auto journal_records = [](const std::string& meta) { return RecordSpans(Slurp(meta + "/journal")); };
  return {
      {"JournalBitFlip", true,
       [=](const std::string& meta) {
         RecordSpan rec;
         ASSERT_NO_FATAL_FAILURE(rec = NamingRecord(meta, 1, 2));
         size_t at = (rec.begin + rec.end) / 2;
         std::string j = Slurp(meta + "/journal");
         Overwrite(meta + "/journal", at, std::string(1, static_cast<char>(j[at] ^ 0x04)));
       },
       "unreadable with valid records after it"},
      {"RecordHeaderOverwritten", false,
       [=](const std::string& meta) {
         RecordSpan rec;
         ASSERT_NO_FATAL_FAILURE(rec = NamingRecord(meta, 1, 3));
         Overwrite(meta + "/journal", rec.begin, std::string(16, '\xee'));
       },
       "unreadable with valid records after it"},
      {"JournalTruncatedAtARecord", true,
       [=](const std::string& meta) {
         auto r = journal_records(meta);
         ASSERT_GT(r.size(), 10u);
         ASSERT_EQ(truncate((meta + "/journal").c_str(), r[r.size() / 2].end), 0);
       },
       "truncated"},
      {"JournalZeroed", false,
       [](const std::string& meta) {
         Overwrite(meta + "/journal", 0, std::string(Slurp(meta + "/journal").size(), '\0'));
       },
       "journal: no valid header"},
      {"JournalDeleted", true, [](const std::string& meta) { ASSERT_EQ(unlink((meta + "/journal").c_str()), 0); },
       "journal: missing"},
      {"SnapshotTruncatedAtARecord", false,
       [](const std::string& meta) {
         auto r = RecordSpans(Slurp(meta + "/snapshot"));
         ASSERT_FALSE(r.empty());
         ASSERT_EQ(truncate((meta + "/snapshot").c_str(), r[0].end), 0);
       },
       "snapshot: truncated"},
      {"SnapshotDeleted", true, [](const std::string& meta) { ASSERT_EQ(unlink((meta + "/snapshot").c_str()), 0); },
       "snapshot: missing"},
  };
}

class MetadataDamage : public ::testing::TestWithParam<DamageCase> {
 protected:
  void SetUp() override {
    TEMPFS_SKIP_IF_NO_FUSE();
    dir_ = std::make_unique<TempDir>("damage");
    mount_ = TempfsMount::Start(dir_->path());
    ASSERT_TRUE(mount_);
  }

  std::string Name(int i) const { return "f" + std::to_string(i); }

  void WriteFiles(int from, int to) {
    for (int i = from; i < to; i++) ASSERT_NO_FATAL_FAILURE(WriteFileAt(mount_->mnt() + "/" + Name(i), Content(i)));
  }

  // Stops the daemon as the case says and leaves nothing mounted.
  void Stop(bool kill9) {
    if (kill9) mount_->KillDaemon(SIGKILL);
    CommandResult r = mount_->Unmount();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_FALSE(IsMountPoint(mount_->mnt()));
  }

  CommandResult MountOnce() {
    return RunCommand({TempfsBin(), "mount", "--store", mount_->store(), mount_->mnt()});
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<TempfsMount> mount_;
};

TEST_P(MetadataDamage, MountRefusesAndFsckRecoversEveryReadableFile) {
  const DamageCase& c = GetParam();
  ASSERT_NO_FATAL_FAILURE(WriteFiles(0, kFiles / 2));
  ASSERT_NO_FATAL_FAILURE(Stop(false));
  ASSERT_TRUE(mount_->Remount());  // the restart compacts: these are in the snapshot now
  ASSERT_NO_FATAL_FAILURE(WriteFiles(kFiles / 2, kFiles));
  ASSERT_NO_FATAL_FAILURE(Stop(c.kill9));
  const std::string meta = mount_->store() + "/meta";
  ASSERT_NO_FATAL_FAILURE(c.damage(meta));

  // Mount refuses, in one line that says what and what to do.
  CommandResult m = MountOnce();
  EXPECT_NE(m.exit_code, 0) << "a damaged store was mounted\n" << m.out << m.err;
  if (m.exit_code == 0) {
    ASSERT_EQ(RunCommand({TempfsBin(), "umount", mount_->mnt()}).exit_code, 0);
  }
  EXPECT_NE(m.err.find("metadata damaged: "), std::string::npos) << m.err;
  EXPECT_NE(m.err.find(c.says), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("run `tempfs fsck " + mount_->store() + "`"), std::string::npos) << m.err;
  EXPECT_EQ(m.err.find('\n'), m.err.size() - 1) << "one line: " << m.err;
  EXPECT_FALSE(IsMountPoint(mount_->mnt()));

  // fsck recovers and says what it did.
  CommandResult f = RunCommand({TempfsBin(), "fsck", mount_->store()});
  ASSERT_EQ(f.exit_code, 0) << f.out << f.err;
  EXPECT_NE(f.out.find("metadata damaged"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("the damaged files are kept in " + meta + "/damaged-"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("done: "), std::string::npos) << f.out;

  // Mounted again: every file named is intact, lost+found holds the rest.
  ASSERT_TRUE(mount_->Remount()) << f.out;
  std::map<std::string, int> by_content;
  for (int i = 0; i < kFiles; i++) by_content[Content(i)] = i;
  std::vector<int> found(kFiles, 0);
  int named = 0, lost = 0;
  for (const std::string& n : List(mount_->mnt())) {
    if (n == "lost+found") continue;
    std::string got;
    ASSERT_TRUE(ReadWholeFile(mount_->mnt() + "/" + n, &got)) << n;
    int i = std::stoi(n.substr(1));
    ASSERT_EQ(got, Content(i)) << n << " was not intact after recovery";
    found[i]++;
    named++;
  }
  for (const std::string& n : List(mount_->mnt() + "/lost+found")) {
    std::string got;
    ASSERT_TRUE(ReadWholeFile(mount_->mnt() + "/lost+found/" + n, &got)) << n;
    auto it = by_content.find(got);
    ASSERT_NE(it, by_content.end()) << "lost+found/" << n << " holds bytes of no file (" << got.size() << " bytes)";
    found[it->second]++;
    lost++;
  }
  for (int i = 0; i < kFiles; i++) EXPECT_EQ(found[i], 1) << Name(i) << " is found " << found[i] << " times";
  EXPECT_LT(named, kFiles) << "the damage lost no name: the case damages nothing";
  EXPECT_EQ(named + lost, kFiles);
  // The recovered store takes new files and keeps them.
  ASSERT_NO_FATAL_FAILURE(WriteFileAt(mount_->mnt() + "/after", "after recovery"));
  ASSERT_NO_FATAL_FAILURE(Stop(true));
  ASSERT_TRUE(mount_->Remount());
  EXPECT_EQ(Slurp(mount_->mnt() + "/after"), "after recovery");
  CommandResult again = RunCommand({TempfsBin(), "fsck", mount_->store()});
  EXPECT_NE(again.exit_code, 0) << "fsck of a mounted store must refuse";
  EXPECT_NE(again.err.find("unmount it first"), std::string::npos) << again.err;
}

INSTANTIATE_TEST_SUITE_P(Cases, MetadataDamage, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<DamageCase>& i) { return i.param.name; });

class MetadataIntact : public MetadataDamage {};

TEST_F(MetadataIntact, FsckOfAnIntactStoreChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(WriteFiles(0, 20));
  ASSERT_NO_FATAL_FAILURE(Stop(true));
  const std::string meta = mount_->store() + "/meta";
  std::string snap = Slurp(meta + "/snapshot"), journal = Slurp(meta + "/journal");
  CommandResult f = RunCommand({TempfsBin(), "fsck", mount_->store()});
  EXPECT_EQ(f.exit_code, 0) << f.out << f.err;
  EXPECT_NE(f.out.find("is intact"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("nothing changed"), std::string::npos) << f.out;
  EXPECT_EQ(Slurp(meta + "/snapshot"), snap);
  EXPECT_EQ(Slurp(meta + "/journal"), journal);
  ASSERT_TRUE(mount_->Remount());
  for (int i = 0; i < 20; i++) EXPECT_EQ(Slurp(mount_->mnt() + "/" + Name(i)), Content(i)) << Name(i);
}

// The other side of the rule: a daemon killed in the middle of a stream of
// creates, renames and unlinks leaves at most a torn last record, which is
// never taken for damage. Rounds and operations are bounded.
TEST_F(MetadataIntact, KillDuringMetadataChurnIsNeverDamage) {
  for (int round = 0; round < 4; round++) {
    std::atomic<int> done{0};
    std::atomic<bool> stop{false};
    std::thread churn([&] {
      for (int i = 0; i < 20000 && !stop; i++) {
        std::string base = mount_->mnt() + "/r" + std::to_string(round) + "-" + std::to_string(i);
        int fd = open(base.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) break;  // the daemon is gone
        bool ok = write(fd, base.data(), base.size()) == static_cast<ssize_t>(base.size());
        ok = close(fd) == 0 && ok;
        if (!ok || rename(base.c_str(), (base + ".r").c_str()) != 0) break;
        if (i % 3 == 0 && unlink((base + ".r").c_str()) != 0) break;
        done++;
      }
    });
    EXPECT_TRUE(WaitFor([&] { return done.load() >= 100 + 37 * round; }, std::chrono::seconds(30)));
    mount_->KillDaemon(SIGKILL);
    stop = true;
    churn.join();
    CommandResult u = mount_->Unmount();
    ASSERT_EQ(u.exit_code, 0) << u.err;
    ASSERT_TRUE(mount_->Remount()) << "round " << round << ": a crash was taken for damage\n" << mount_->LogTail();
    // Every operation acknowledged before the kill is there.
    for (int i = 0; i + 1 < done.load(); i++) {
      std::string base = mount_->mnt() + "/r" + std::to_string(round) + "-" + std::to_string(i);
      struct stat st;
      EXPECT_EQ(stat((base + ".r").c_str(), &st) == 0, i % 3 != 0) << base;
    }
  }
  CommandResult u = mount_->Unmount();
  ASSERT_EQ(u.exit_code, 0) << u.err;
  CommandResult f = RunCommand({TempfsBin(), "fsck", mount_->store()});
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_NE(f.out.find("is intact"), std::string::npos) << f.out;
  ASSERT_TRUE(mount_->Remount());
}

// Finding 2: the crash tore the record of the last create (the journal ends
// inside it) while the file's data was written. The restart drops the torn
// record; a new file must not get the lost file's data through its number.
TEST_F(MetadataIntact, NewFileNeverReadsALostFilesBytes) {
  ASSERT_NO_FATAL_FAILURE(WriteFiles(0, 5));
  const std::string victim = Pattern(77, 17 << 10);
  ASSERT_NO_FATAL_FAILURE(WriteFileAt(mount_->mnt() + "/victim", victim));
  ASSERT_NO_FATAL_FAILURE(Stop(true));
  const std::string journal = mount_->store() + "/meta/journal";
  std::string data = Slurp(journal);
  size_t cut = 0;
  for (const RecordSpan& r : RecordSpans(data)) {
    if (data.substr(r.begin, r.end - r.begin).find("victim") != std::string::npos) {
      cut = r.begin + 10;
      break;
    }
  }
  ASSERT_GT(cut, 0u) << "no record names the victim";
  ASSERT_EQ(truncate(journal.c_str(), cut), 0);
  ASSERT_TRUE(mount_->Remount()) << "a torn last record is a crash, not damage";
  struct stat st;
  EXPECT_NE(stat((mount_->mnt() + "/victim").c_str(), &st), 0) << "the torn create came back";
  for (int i = 0; i < 3; i++) {
    std::string path = mount_->mnt() + "/new" + std::to_string(i);
    if (i % 2 == 0) {
      ASSERT_EQ(mknod(path.c_str(), S_IFREG | 0644, 0), 0) << strerror(errno);
    } else {
      int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
      ASSERT_GE(fd, 0) << strerror(errno);
      close(fd);
    }
    std::string got;
    ASSERT_TRUE(ReadWholeFile(path, &got)) << path;
    EXPECT_EQ(got.size(), 0u) << path << " read " << got.size() << " bytes it never wrote"
                              << (got == victim ? " (the lost file's)" : "");
  }
  EXPECT_NE(mount_->LogTail().find("data files that no inode owns"), std::string::npos) << mount_->LogTail();
}

}  // namespace
}  // namespace tempfs::testing
