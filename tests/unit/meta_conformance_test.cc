// Conformance suite of the MetaEngine interface: every engine listed in
// testutil::EngineFactories() (embedded; Redis when a redis-server is at hand)
// must pass all of it. The errnos are those of a local Linux filesystem
// (rename(2), renameat2(2), link(2), setxattr(2), ...), checked against the
// kernel where it matters (see meta_model_test.cc). Durability: the engine
// object is destroyed and opened again on the same store.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "meta/journal.h"
#include "meta/meta_engine.h"
#include "meta_test_util.h"

namespace tempfs {
namespace {

using testutil::DumpNamespace;
using testutil::EngineFactory;
using testutil::NamespaceDump;
using testutil::ErrName;
using testutil::TempDir;

#define ASSERT_OK(expr)                                                   \
  do {                                                                    \
    auto&& st_ = (expr);                                                  \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.status().ToString();    \
  } while (0)

class MetaConformance : public ::testing::TestWithParam<EngineFactory> {
 protected:
  void SetUp() override {
    if (std::string why = GetParam().unavailable(); !why.empty()) GTEST_SKIP() << why;
    dir_ = std::make_unique<TempDir>("meta");
    ASSERT_FALSE(dir_->path().empty());
    GetParam().wipe();
    wipe_ = true;
    Open();
  }
  void TearDown() override {
    m_.reset();
    if (wipe_) GetParam().wipe();
    dir_.reset();
  }
  void Open() {
    auto r = GetParam().open(dir_->path());
    ASSERT_TRUE(r.ok()) << "open engine: " << r.status().ToString();
    m_ = std::move(*r);
  }
  // Destroys the engine object and opens it again on the same store.
  void Reopen() {
    m_.reset();
    Open();
  }
  void RequirePersistent() {
    if (!GetParam().persistent) GTEST_SKIP() << GetParam().name << " does not persist";
  }
  MetaEngine& m() { return *m_; }

  Attr Make(Ino parent, const std::string& name, uint32_t mode, const std::string& target = "",
            uint32_t uid = 0, uint32_t gid = 0, uint64_t rdev = 0) {
    NewNode n;
    n.mode = mode;
    n.uid = uid;
    n.gid = gid;
    n.rdev = rdev;
    n.target = target;
    auto r = m().Create(parent, name, n);
    EXPECT_TRUE(r.ok()) << "Create " << name << ": " << r.status().ToString();
    return r.ok() ? *r : Attr{};
  }
  Attr File(Ino parent, const std::string& name, uint32_t perm = 0644) { return Make(parent, name, S_IFREG | perm); }
  Attr Dir(Ino parent, const std::string& name, uint32_t perm = 0755) { return Make(parent, name, S_IFDIR | perm); }
  Attr Symlink(Ino parent, const std::string& name, const std::string& target) {
    return Make(parent, name, S_IFLNK | 0777, target);
  }
  Attr Get(Ino ino) {
    auto r = m().GetAttr(ino);
    EXPECT_TRUE(r.ok()) << "GetAttr " << ino << ": " << r.status().ToString();
    return r.ok() ? *r : Attr{};
  }
  uint32_t Nlink(Ino ino) { return Get(ino).nlink; }
  // Sets mtime and ctime far in the past so that a later change is visible.
  void AgeTimes(Ino ino) {
    SetAttrRequest req;
    req.valid = SetAttrRequest::kMtime | SetAttrRequest::kCtime;
    req.mtime_ns = 1000;
    req.ctime_ns = 1000;
    auto r = m().SetAttr(ino, req);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->mtime_ns, 1000);
    ASSERT_EQ(r->ctime_ns, 1000);
  }
  std::vector<std::string> Names(Ino dir) {
    auto r = m().ReadDir(dir);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> out;
    if (r.ok()) for (auto& e : *r) out.push_back(e.name);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<Ino> SortedOrphans() {
    auto r = m().Orphans();
    EXPECT_TRUE(r.ok());
    std::vector<Ino> v = r.ok() ? *r : std::vector<Ino>{};
    std::sort(v.begin(), v.end());
    return v;
  }
  Ino LookupIno(Ino parent, const std::string& name) {
    auto r = m().Lookup(parent, name);
    EXPECT_TRUE(r.ok()) << "Lookup " << name << ": " << r.status().ToString();
    return r.ok() ? r->ino : 0;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<MetaEngine> m_;
  bool wipe_ = false;
};

// ---------------------------------------------------------------- basics

TEST_P(MetaConformance, FreshEngineHasOnlyTheRoot) {
  Attr root = Get(kRootIno);
  EXPECT_EQ(root.ino, kRootIno);
  EXPECT_TRUE(S_ISDIR(root.mode));
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_TRUE(Names(kRootIno).empty());
  EXPECT_EQ(m().InodeCount(), 1u);
  EXPECT_TRUE(SortedOrphans().empty());
  EXPECT_ERRNO(m().GetAttr(12345), ENOENT);
  EXPECT_TRUE(m().Sync().ok());
}

TEST_P(MetaConformance, LookupErrors) {
  Attr f = File(kRootIno, "f");
  EXPECT_ERRNO(m().Lookup(kRootIno, "missing"), ENOENT);
  EXPECT_ERRNO(m().Lookup(f.ino, "x"), ENOTDIR);
  EXPECT_ERRNO(m().Lookup(999999, "x"), ENOENT);
}

TEST_P(MetaConformance, CreateFileAttributes) {
  int64_t before = NowNs();
  Attr f = Make(kRootIno, "f", S_IFREG | 04751, "", 1234, 5678);
  EXPECT_NE(f.ino, 0u);
  EXPECT_NE(f.ino, kRootIno);
  EXPECT_EQ(f.mode, static_cast<uint32_t>(S_IFREG | 04751));
  EXPECT_EQ(f.uid, 1234u);
  EXPECT_EQ(f.gid, 5678u);
  EXPECT_EQ(f.nlink, 1u);
  EXPECT_EQ(f.size, 0u);
  EXPECT_GE(f.ctime_ns, before);
  EXPECT_GE(f.mtime_ns, before);
  EXPECT_GE(f.atime_ns, before);
  Attr l = *m().Lookup(kRootIno, "f");
  EXPECT_EQ(testutil::AttrString(l), testutil::AttrString(f));
  EXPECT_EQ(testutil::AttrString(Get(f.ino)), testutil::AttrString(f));
  EXPECT_EQ(Nlink(kRootIno), 2u) << "a file does not bump the parent's link count";
}

TEST_P(MetaConformance, CreateSpecialFilesKeepRdev) {
  Attr fifo = Make(kRootIno, "fifo", S_IFIFO | 0600);
  Attr chr = Make(kRootIno, "chr", S_IFCHR | 0600, "", 0, 0, makedev(1, 3));
  Attr sock = Make(kRootIno, "sock", S_IFSOCK | 0600);
  EXPECT_TRUE(S_ISFIFO(Get(fifo.ino).mode));
  EXPECT_TRUE(S_ISCHR(Get(chr.ino).mode));
  EXPECT_EQ(Get(chr.ino).rdev, makedev(1, 3));
  EXPECT_TRUE(S_ISSOCK(Get(sock.ino).mode));
}

TEST_P(MetaConformance, CreateGivesDistinctInodes) {
  std::set<Ino> seen{kRootIno};
  for (int i = 0; i < 50; i++) {
    Attr a = i % 2 ? File(kRootIno, "n" + std::to_string(i)) : Dir(kRootIno, "n" + std::to_string(i));
    EXPECT_TRUE(seen.insert(a.ino).second) << "inode " << a.ino << " handed out twice";
  }
  EXPECT_EQ(m().InodeCount(), 51u);
}

// File handles carry (inode, generation): generations are random per
// inode, never 0 or 1 (the root's and the pre-generation records'), kept by
// every change and by a reopen.
TEST_P(MetaConformance, GenerationsAreRandomAndStable) {
  std::set<uint32_t> low_bits;  // what the kernel keeps
  std::vector<Attr> made;
  for (int i = 0; i < 40; i++) {
    Attr a = i % 2 ? File(kRootIno, "g" + std::to_string(i)) : Dir(kRootIno, "g" + std::to_string(i));
    EXPECT_GT(static_cast<uint32_t>(a.generation), 1u);
    low_bits.insert(static_cast<uint32_t>(a.generation));
    made.push_back(a);
  }
  EXPECT_EQ(low_bits.size(), made.size()) << "generations repeat";
  EXPECT_EQ(Get(kRootIno).generation, 0u);
  SetAttrRequest req;
  req.valid = SetAttrRequest::kMode | SetAttrRequest::kUid;
  req.mode = 0600;
  req.uid = 7;
  ASSERT_OK(m().SetAttr(made[1].ino, req));
  ASSERT_OK(m().Rename(kRootIno, "g1", kRootIno, "renamed", 0));
  ASSERT_OK(m().Link(made[3].ino, kRootIno, "hard"));
  if (GetParam().persistent) {
    ASSERT_NO_FATAL_FAILURE(Reopen());
  }
  for (const Attr& a : made) EXPECT_EQ(Get(a.ino).generation, a.generation) << "inode " << a.ino;
  auto l = m().Lookup(kRootIno, "renamed");
  ASSERT_OK(l);
  EXPECT_EQ(l->generation, made[1].generation);
}

// The kernel's lookups for file handles: "." by inode number, ".." of a directory.
TEST_P(MetaConformance, LookupDotAndDotDotForHandles) {
  Attr d = Dir(kRootIno, "d");
  Attr sub = Dir(d.ino, "sub");
  Attr f = File(sub.ino, "f");
  auto self = m().Lookup(f.ino, ".");
  ASSERT_OK(self);
  EXPECT_EQ(self->ino, f.ino);
  EXPECT_EQ(self->generation, f.generation);
  auto up = m().Lookup(sub.ino, "..");
  ASSERT_OK(up);
  EXPECT_EQ(up->ino, d.ino);
  auto top = m().Lookup(d.ino, "..");
  ASSERT_OK(top);
  EXPECT_EQ(top->ino, kRootIno);
  EXPECT_EQ(m().Lookup(kRootIno, "..")->ino, kRootIno);
  EXPECT_ERRNO(m().Lookup(f.ino, ".."), ENOTDIR);
  EXPECT_ERRNO(m().Lookup(987654, "."), ENOENT);
  ASSERT_OK(m().Unlink(sub.ino, "f"));
  EXPECT_ERRNO(m().Lookup(f.ino, "."), ENOENT) << "an unlinked inode's handles are stale";
}

TEST_P(MetaConformance, CreateExistingNameIsEEXIST) {
  File(kRootIno, "f");
  Dir(kRootIno, "d");
  Symlink(kRootIno, "s", "f");
  NewNode file{S_IFREG | 0644, 0, 0, 0, ""};
  NewNode dir{S_IFDIR | 0755, 0, 0, 0, ""};
  for (const char* name : {"f", "d", "s"}) {
    EXPECT_ERRNO(m().Create(kRootIno, name, file), EEXIST);
    EXPECT_ERRNO(m().Create(kRootIno, name, dir), EEXIST);
  }
  EXPECT_EQ(Nlink(kRootIno), 3u) << "a failed mkdir must not bump the parent";
  EXPECT_EQ(m().InodeCount(), 4u);
}

TEST_P(MetaConformance, CreateInNonDirectoryOrMissingParent) {
  Attr f = File(kRootIno, "f");
  NewNode file{S_IFREG | 0644, 0, 0, 0, ""};
  EXPECT_ERRNO(m().Create(f.ino, "x", file), ENOTDIR);
  EXPECT_ERRNO(m().Create(424242, "x", file), ENOENT);
  Attr d = Dir(kRootIno, "d");
  ASSERT_OK(m().Rmdir(kRootIno, "d"));
  EXPECT_ERRNO(m().Create(d.ino, "x", file), ENOENT) << "creating in a removed directory";
  EXPECT_ERRNO(m().Lookup(d.ino, "x"), ENOENT);
}

TEST_P(MetaConformance, MkdirLinkCounts) {
  Attr d = Dir(kRootIno, "d");
  EXPECT_EQ(d.nlink, 2u);
  EXPECT_EQ(Get(d.ino).nlink, 2u);
  EXPECT_EQ(Nlink(kRootIno), 3u);
  Attr e = Dir(d.ino, "e");
  EXPECT_EQ(e.nlink, 2u);
  EXPECT_EQ(Nlink(d.ino), 3u);
  EXPECT_EQ(Nlink(kRootIno), 3u);
  File(d.ino, "f");
  EXPECT_EQ(Nlink(d.ino), 3u);
  Dir(kRootIno, "d2");
  EXPECT_EQ(Nlink(kRootIno), 4u);
}

TEST_P(MetaConformance, CreateUpdatesParentTimes) {
  Attr d = Dir(kRootIno, "d");
  AgeTimes(d.ino);
  int64_t before = NowNs();
  File(d.ino, "f");
  Attr a = Get(d.ino);
  EXPECT_GE(a.mtime_ns, before);
  EXPECT_GE(a.ctime_ns, before);
  AgeTimes(d.ino);
  Dir(d.ino, "sub");
  a = Get(d.ino);
  EXPECT_GE(a.mtime_ns, before);
  EXPECT_GE(a.ctime_ns, before);
}

TEST_P(MetaConformance, SymlinkTargetAndSize) {
  std::string target = "../some/where/else";
  Attr s = Symlink(kRootIno, "s", target);
  EXPECT_TRUE(S_ISLNK(s.mode));
  EXPECT_EQ(s.size, target.size());
  auto t = m().ReadLink(s.ino);
  ASSERT_OK(t);
  EXPECT_EQ(*t, target);
  std::string long_target(4000, 'x');
  Attr s2 = Symlink(kRootIno, "s2", long_target);
  EXPECT_EQ(*m().ReadLink(s2.ino), long_target);
}

TEST_P(MetaConformance, ReadLinkErrors) {
  Attr f = File(kRootIno, "f");
  Attr d = Dir(kRootIno, "d");
  EXPECT_ERRNO(m().ReadLink(f.ino), EINVAL);
  EXPECT_ERRNO(m().ReadLink(d.ino), EINVAL);
  EXPECT_ERRNO(m().ReadLink(kRootIno), EINVAL);
  EXPECT_ERRNO(m().ReadLink(777777), ENOENT);
}

// ---------------------------------------------------------------- link

TEST_P(MetaConformance, LinkAddsNameAndCountsLinks) {
  Attr f = File(kRootIno, "f");
  Attr d = Dir(kRootIno, "d");
  AgeTimes(d.ino);
  {
    SetAttrRequest req;
    req.valid = SetAttrRequest::kCtime;
    req.ctime_ns = 1000;
    ASSERT_OK(m().SetAttr(f.ino, req));
  }
  int64_t before = NowNs();
  auto l = m().Link(f.ino, d.ino, "g");
  ASSERT_OK(l);
  EXPECT_EQ(l->ino, f.ino);
  EXPECT_EQ(l->nlink, 2u);
  EXPECT_GE(l->ctime_ns, before) << "link changes the inode's ctime";
  EXPECT_EQ(LookupIno(d.ino, "g"), f.ino);
  EXPECT_EQ(LookupIno(kRootIno, "f"), f.ino);
  EXPECT_EQ(Nlink(f.ino), 2u);
  EXPECT_EQ(Nlink(d.ino), 2u) << "a file link does not bump the directory";
  EXPECT_GE(Get(d.ino).mtime_ns, before);
  EXPECT_GE(Get(d.ino).ctime_ns, before);
  ASSERT_OK(m().Link(f.ino, kRootIno, "h"));
  EXPECT_EQ(Nlink(f.ino), 3u);
  EXPECT_EQ(m().InodeCount(), 3u);
}

TEST_P(MetaConformance, LinkErrors) {
  Attr f = File(kRootIno, "f");
  Attr g = File(kRootIno, "g");
  Attr d = Dir(kRootIno, "d");
  EXPECT_ERRNO(m().Link(d.ino, kRootIno, "d2"), EPERM);
  EXPECT_ERRNO(m().Link(kRootIno, d.ino, "root"), EPERM);
  EXPECT_ERRNO(m().Link(f.ino, kRootIno, "g"), EEXIST);
  EXPECT_ERRNO(m().Link(f.ino, kRootIno, "f"), EEXIST);
  EXPECT_ERRNO(m().Link(f.ino, kRootIno, "d"), EEXIST);
  EXPECT_ERRNO(m().Link(f.ino, g.ino, "x"), ENOTDIR);
  EXPECT_ERRNO(m().Link(f.ino, 55555, "x"), ENOENT);
  EXPECT_ERRNO(m().Link(66666, kRootIno, "x"), ENOENT);
  EXPECT_EQ(Nlink(f.ino), 1u) << "failed links must not count";
  EXPECT_EQ(Nlink(d.ino), 2u);
}

// link(2) to an inode whose last name is gone fails with ENOENT (linkat on an
// open fd of an unlinked file): an orphan must not come back to life, or the
// caller (Vfs) would drop the data of a file that has a name again.
TEST_P(MetaConformance, LinkOfUnlinkedInodeIsENOENT) {
  Attr f = File(kRootIno, "f");
  ASSERT_OK(m().Unlink(kRootIno, "f"));
  EXPECT_ERRNO(m().Link(f.ino, kRootIno, "again"), ENOENT);
  EXPECT_EQ(Nlink(f.ino), 0u);
  EXPECT_ERRNO(m().Lookup(kRootIno, "again"), ENOENT);
}

// ---------------------------------------------------------------- unlink

TEST_P(MetaConformance, UnlinkKeepsInodeUntilDrop) {
  Attr f = File(kRootIno, "f");
  ASSERT_OK(m().Link(f.ino, kRootIno, "g"));
  auto u = m().Unlink(kRootIno, "f");
  ASSERT_OK(u);
  EXPECT_EQ(u->ino, f.ino);
  EXPECT_EQ(u->nlink, 1u);
  EXPECT_TRUE(SortedOrphans().empty());
  EXPECT_ERRNO(m().Lookup(kRootIno, "f"), ENOENT);
  EXPECT_ERRNO(m().Drop(f.ino), EBUSY);

  u = m().Unlink(kRootIno, "g");
  ASSERT_OK(u);
  EXPECT_EQ(u->nlink, 0u);
  EXPECT_ERRNO(m().Lookup(kRootIno, "g"), ENOENT);
  EXPECT_TRUE(Names(kRootIno).empty());
  auto a = m().GetAttr(f.ino);
  ASSERT_OK(a);
  EXPECT_EQ(a->nlink, 0u) << "an unlinked inode stays until Drop";
  EXPECT_EQ(SortedOrphans(), std::vector<Ino>{f.ino});
  EXPECT_EQ(m().InodeCount(), 2u);

  ASSERT_OK(m().Drop(f.ino));
  EXPECT_ERRNO(m().GetAttr(f.ino), ENOENT);
  EXPECT_TRUE(SortedOrphans().empty());
  EXPECT_EQ(m().InodeCount(), 1u);
}

TEST_P(MetaConformance, UnlinkErrors) {
  Attr d = Dir(kRootIno, "d");
  Attr f = File(kRootIno, "f");
  EXPECT_ERRNO(m().Unlink(kRootIno, "d"), EISDIR);
  EXPECT_ERRNO(m().Unlink(kRootIno, "missing"), ENOENT);
  EXPECT_ERRNO(m().Unlink(f.ino, "x"), ENOTDIR);
  EXPECT_ERRNO(m().Unlink(31337, "x"), ENOENT);
  EXPECT_EQ(Nlink(d.ino), 2u);
  EXPECT_EQ(LookupIno(kRootIno, "d"), d.ino);
}

TEST_P(MetaConformance, UnlinkUpdatesTimes) {
  Attr d = Dir(kRootIno, "d");
  Attr f = File(d.ino, "f");
  ASSERT_OK(m().Link(f.ino, d.ino, "g"));
  AgeTimes(d.ino);
  AgeTimes(f.ino);
  int64_t before = NowNs();
  ASSERT_OK(m().Unlink(d.ino, "f"));
  EXPECT_GE(Get(d.ino).mtime_ns, before);
  EXPECT_GE(Get(d.ino).ctime_ns, before);
  EXPECT_GE(Get(f.ino).ctime_ns, before) << "unlink changes the inode's ctime";
  EXPECT_EQ(Get(f.ino).mtime_ns, 1000) << "unlink does not change the inode's mtime";
}

TEST_P(MetaConformance, UnlinkSymlinkAndSpecial) {
  Attr s = Symlink(kRootIno, "s", "t");
  Attr p = Make(kRootIno, "p", S_IFIFO | 0600);
  ASSERT_OK(m().Unlink(kRootIno, "s"));
  ASSERT_OK(m().Unlink(kRootIno, "p"));
  EXPECT_EQ(SortedOrphans(), (std::vector<Ino>{std::min(s.ino, p.ino), std::max(s.ino, p.ino)}));
}

// ---------------------------------------------------------------- rmdir

TEST_P(MetaConformance, RmdirErrors) {
  Attr d = Dir(kRootIno, "d");
  File(kRootIno, "f");
  File(d.ino, "x");
  Attr e = Dir(kRootIno, "e");
  Dir(e.ino, "sub");
  EXPECT_ERRNO(m().Rmdir(kRootIno, "f"), ENOTDIR);
  EXPECT_ERRNO(m().Rmdir(kRootIno, "d"), ENOTEMPTY);
  EXPECT_ERRNO(m().Rmdir(kRootIno, "e"), ENOTEMPTY);
  EXPECT_ERRNO(m().Rmdir(kRootIno, "missing"), ENOENT);
  EXPECT_ERRNO(m().Rmdir(d.ino, "x"), ENOTDIR);
  EXPECT_EQ(Nlink(kRootIno), 4u);
  EXPECT_EQ(Nlink(e.ino), 3u);
}

TEST_P(MetaConformance, RmdirRemovesAndDropsParentLink) {
  Attr d = Dir(kRootIno, "d");
  Attr e = Dir(d.ino, "e");
  EXPECT_EQ(Nlink(d.ino), 3u);
  AgeTimes(d.ino);
  int64_t before = NowNs();
  auto r = m().Rmdir(d.ino, "e");
  ASSERT_OK(r);
  EXPECT_EQ(r->ino, e.ino);
  EXPECT_EQ(r->nlink, 0u);
  EXPECT_EQ(Nlink(d.ino), 2u);
  EXPECT_GE(Get(d.ino).mtime_ns, before);
  EXPECT_GE(Get(d.ino).ctime_ns, before);
  EXPECT_ERRNO(m().Lookup(d.ino, "e"), ENOENT);
  EXPECT_EQ(SortedOrphans(), std::vector<Ino>{e.ino});
  EXPECT_EQ(Get(e.ino).nlink, 0u);
  ASSERT_OK(m().Rmdir(kRootIno, "d"));
  EXPECT_EQ(Nlink(kRootIno), 2u);
  ASSERT_OK(m().Drop(e.ino));
  ASSERT_OK(m().Drop(d.ino));
  EXPECT_EQ(m().InodeCount(), 1u);
  EXPECT_TRUE(SortedOrphans().empty());
}

TEST_P(MetaConformance, RemovedDirectoryReadsEmptyAndRefusesNames) {
  Attr d = Dir(kRootIno, "d");
  ASSERT_OK(m().Rmdir(kRootIno, "d"));
  auto r = m().ReadDir(d.ino);
  if (r.ok()) {
    EXPECT_TRUE(r->empty());
  } else {
    EXPECT_EQ(r.err(), ENOENT);
  }
  NewNode dir{S_IFDIR | 0755, 0, 0, 0, ""};
  EXPECT_ERRNO(m().Create(d.ino, "x", dir), ENOENT);
  Attr f = File(kRootIno, "f");
  EXPECT_ERRNO(m().Link(f.ino, d.ino, "x"), ENOENT);
  EXPECT_ERRNO(m().Rename(kRootIno, "f", d.ino, "x", 0), ENOENT);
  EXPECT_EQ(LookupIno(kRootIno, "f"), f.ino);
}

// ---------------------------------------------------------------- rename

TEST_P(MetaConformance, RenameMovesName) {
  Attr a = Dir(kRootIno, "a");
  Attr b = Dir(kRootIno, "b");
  Attr f = File(a.ino, "f");
  AgeTimes(a.ino);
  AgeTimes(b.ino);
  AgeTimes(f.ino);
  int64_t before = NowNs();
  auto r = m().Rename(a.ino, "f", b.ino, "g", 0);
  ASSERT_OK(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_ERRNO(m().Lookup(a.ino, "f"), ENOENT);
  EXPECT_EQ(LookupIno(b.ino, "g"), f.ino);
  EXPECT_EQ(Nlink(f.ino), 1u);
  EXPECT_GE(Get(a.ino).mtime_ns, before);
  EXPECT_GE(Get(a.ino).ctime_ns, before);
  EXPECT_GE(Get(b.ino).mtime_ns, before);
  EXPECT_GE(Get(b.ino).ctime_ns, before);
  EXPECT_GE(Get(f.ino).ctime_ns, before) << "rename changes the moved inode's ctime";
  // Same directory, new name.
  ASSERT_OK(m().Rename(b.ino, "g", b.ino, "h", 0));
  EXPECT_EQ(Names(b.ino), std::vector<std::string>{"h"});
  // Same name: nothing happens.
  auto same = m().Rename(b.ino, "h", b.ino, "h", 0);
  ASSERT_OK(same);
  EXPECT_FALSE(same->has_value());
  EXPECT_EQ(LookupIno(b.ino, "h"), f.ino);
}

TEST_P(MetaConformance, RenameDirectoryAcrossParentsMovesLinkCount) {
  Attr p = Dir(kRootIno, "p");
  Attr q = Dir(kRootIno, "q");
  Attr d = Dir(p.ino, "d");
  Dir(d.ino, "inner");
  EXPECT_EQ(Nlink(p.ino), 3u);
  EXPECT_EQ(Nlink(q.ino), 2u);
  ASSERT_OK(m().Rename(p.ino, "d", q.ino, "d", 0));
  EXPECT_EQ(Nlink(p.ino), 2u);
  EXPECT_EQ(Nlink(q.ino), 3u);
  EXPECT_EQ(Nlink(d.ino), 3u);
  EXPECT_EQ(Nlink(kRootIno), 4u);
  EXPECT_EQ(LookupIno(q.ino, "d"), d.ino);
  // Its new place is what counts for loop checks now.
  EXPECT_ERRNO(m().Rename(kRootIno, "q", d.ino, "q", 0), EINVAL);
  ASSERT_OK(m().Rename(kRootIno, "p", d.ino, "p", 0));
  EXPECT_EQ(Nlink(d.ino), 4u);
  EXPECT_EQ(Nlink(kRootIno), 3u);
}

TEST_P(MetaConformance, RenameReplacesFile) {
  Attr a = File(kRootIno, "a");
  Attr b = File(kRootIno, "b");
  auto r = m().Rename(kRootIno, "a", kRootIno, "b", 0);
  ASSERT_OK(r);
  ASSERT_TRUE(r->has_value()) << "the replaced inode lost its last name";
  EXPECT_EQ((*r)->ino, b.ino);
  EXPECT_EQ((*r)->nlink, 0u);
  EXPECT_EQ(LookupIno(kRootIno, "b"), a.ino);
  EXPECT_ERRNO(m().Lookup(kRootIno, "a"), ENOENT);
  EXPECT_EQ(Nlink(a.ino), 1u);
  EXPECT_EQ(Get(b.ino).nlink, 0u);
  EXPECT_EQ(SortedOrphans(), std::vector<Ino>{b.ino});
  EXPECT_EQ(Names(kRootIno), std::vector<std::string>{"b"});
}

TEST_P(MetaConformance, RenameReplacingOneOfSeveralLinks) {
  Attr a = File(kRootIno, "a");
  Attr b = File(kRootIno, "b");
  ASSERT_OK(m().Link(b.ino, kRootIno, "b2"));
  auto r = m().Rename(kRootIno, "a", kRootIno, "b", 0);
  ASSERT_OK(r);
  if (r->has_value()) {
    EXPECT_EQ((*r)->ino, b.ino);
    EXPECT_EQ((*r)->nlink, 1u) << "a returned replaced inode must show its decreased link count";
  }
  EXPECT_EQ(Nlink(b.ino), 1u);
  EXPECT_EQ(LookupIno(kRootIno, "b2"), b.ino);
  EXPECT_EQ(LookupIno(kRootIno, "b"), a.ino);
  EXPECT_TRUE(SortedOrphans().empty());
}

TEST_P(MetaConformance, RenameReplacesEmptyDirectory) {
  Attr p = Dir(kRootIno, "p");
  Attr q = Dir(kRootIno, "q");
  Attr src = Dir(p.ino, "src");
  Attr dst = Dir(q.ino, "dst");
  EXPECT_EQ(Nlink(kRootIno), 4u);
  auto r = m().Rename(p.ino, "src", q.ino, "dst", 0);
  ASSERT_OK(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->ino, dst.ino);
  EXPECT_EQ((*r)->nlink, 0u);
  EXPECT_EQ(LookupIno(q.ino, "dst"), src.ino);
  EXPECT_EQ(Nlink(p.ino), 2u);
  EXPECT_EQ(Nlink(q.ino), 3u);
  EXPECT_EQ(Nlink(src.ino), 2u);
  EXPECT_EQ(SortedOrphans(), std::vector<Ino>{dst.ino});
  // Same parent.
  Attr x = Dir(q.ino, "x");
  ASSERT_OK(m().Rename(q.ino, "dst", q.ino, "x", 0));
  EXPECT_EQ(Nlink(q.ino), 3u);
  EXPECT_EQ(Get(x.ino).nlink, 0u);
  EXPECT_EQ(Names(q.ino), std::vector<std::string>{"x"});
}

TEST_P(MetaConformance, RenameTypeMismatchesAndNonEmptyTarget) {
  Attr d = Dir(kRootIno, "d");
  Attr full = Dir(kRootIno, "full");
  File(full.ino, "x");
  Attr f = File(kRootIno, "f");
  Symlink(kRootIno, "s", "f");
  Dir(kRootIno, "e");
  EXPECT_ERRNO(m().Rename(kRootIno, "d", kRootIno, "f", 0), ENOTDIR);
  EXPECT_ERRNO(m().Rename(kRootIno, "d", kRootIno, "s", 0), ENOTDIR);
  EXPECT_ERRNO(m().Rename(kRootIno, "f", kRootIno, "d", 0), EISDIR);
  EXPECT_ERRNO(m().Rename(kRootIno, "s", kRootIno, "d", 0), EISDIR);
  EXPECT_ERRNO(m().Rename(kRootIno, "e", kRootIno, "full", 0), ENOTEMPTY);
  EXPECT_ERRNO(m().Rename(kRootIno, "missing", kRootIno, "z", 0), ENOENT);
  EXPECT_ERRNO(m().Rename(f.ino, "x", kRootIno, "z", 0), ENOTDIR);
  EXPECT_ERRNO(m().Rename(kRootIno, "f", f.ino, "z", 0), ENOTDIR);
  EXPECT_ERRNO(m().Rename(kRootIno, "f", 98765, "z", 0), ENOENT);
  EXPECT_ERRNO(m().Rename(kRootIno, "f", kRootIno, "g", 3), EINVAL);
  EXPECT_ERRNO(m().Rename(kRootIno, "f", kRootIno, "g", 4), EINVAL);
  EXPECT_EQ(Names(kRootIno), (std::vector<std::string>{"d", "e", "f", "full", "s"}));
  EXPECT_EQ(Nlink(kRootIno), 5u);
  EXPECT_EQ(Nlink(d.ino), 2u);
}

TEST_P(MetaConformance, RenameNoReplace) {
  Attr a = File(kRootIno, "a");
  Attr b = File(kRootIno, "b");
  Dir(kRootIno, "d");
  EXPECT_ERRNO(m().Rename(kRootIno, "a", kRootIno, "b", kRenameNoReplace), EEXIST);
  EXPECT_ERRNO(m().Rename(kRootIno, "d", kRootIno, "b", kRenameNoReplace), EEXIST);
  EXPECT_ERRNO(m().Rename(kRootIno, "a", kRootIno, "d", kRenameNoReplace), EEXIST);
  EXPECT_EQ(LookupIno(kRootIno, "a"), a.ino);
  EXPECT_EQ(LookupIno(kRootIno, "b"), b.ino);
  auto r = m().Rename(kRootIno, "a", kRootIno, "c", kRenameNoReplace);
  ASSERT_OK(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(LookupIno(kRootIno, "c"), a.ino);
}

// renameat2(RENAME_NOREPLACE) fails with EEXIST whenever the new name exists,
// even when it names the same inode (Linux checks this before anything else).
// Reporting success instead would tell the caller the old name is gone.
TEST_P(MetaConformance, RenameNoReplaceOntoOtherLinkOfSameInodeIsEEXIST) {
  Attr a = File(kRootIno, "a");
  ASSERT_OK(m().Link(a.ino, kRootIno, "b"));
  EXPECT_ERRNO(m().Rename(kRootIno, "a", kRootIno, "b", kRenameNoReplace), EEXIST);
  EXPECT_ERRNO(m().Rename(kRootIno, "a", kRootIno, "a", kRenameNoReplace), EEXIST);
  EXPECT_EQ(LookupIno(kRootIno, "a"), a.ino);
  EXPECT_EQ(LookupIno(kRootIno, "b"), a.ino);
  EXPECT_EQ(Nlink(a.ino), 2u);
}

TEST_P(MetaConformance, RenameBetweenLinksOfSameInodeIsNoop) {
  Attr d = Dir(kRootIno, "d");
  Attr a = File(kRootIno, "a");
  ASSERT_OK(m().Link(a.ino, kRootIno, "b"));
  ASSERT_OK(m().Link(a.ino, d.ino, "c"));
  for (unsigned flags : {0u, kRenameExchange}) {
    auto r = m().Rename(kRootIno, "a", kRootIno, "b", flags);
    ASSERT_OK(r);
    EXPECT_FALSE(r->has_value());
    r = m().Rename(kRootIno, "a", d.ino, "c", flags);
    ASSERT_OK(r);
    EXPECT_FALSE(r->has_value());
  }
  EXPECT_EQ(Names(kRootIno), (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_EQ(LookupIno(d.ino, "c"), a.ino);
  EXPECT_EQ(Nlink(a.ino), 3u);
  EXPECT_TRUE(SortedOrphans().empty());
}

TEST_P(MetaConformance, RenameExchangeFiles) {
  Attr a = File(kRootIno, "a");
  Attr d = Dir(kRootIno, "d");
  Attr b = Symlink(d.ino, "b", "target");
  AgeTimes(a.ino);
  AgeTimes(b.ino);
  int64_t before = NowNs();
  auto r = m().Rename(kRootIno, "a", d.ino, "b", kRenameExchange);
  ASSERT_OK(r);
  EXPECT_FALSE(r->has_value()) << "exchange removes no inode";
  EXPECT_EQ(LookupIno(kRootIno, "a"), b.ino);
  EXPECT_EQ(LookupIno(d.ino, "b"), a.ino);
  EXPECT_EQ(Nlink(a.ino), 1u);
  EXPECT_EQ(Nlink(b.ino), 1u);
  EXPECT_EQ(Nlink(kRootIno), 3u);
  EXPECT_EQ(Nlink(d.ino), 2u);
  EXPECT_GE(Get(a.ino).ctime_ns, before);
  EXPECT_GE(Get(b.ino).ctime_ns, before);
  EXPECT_TRUE(SortedOrphans().empty());
}

TEST_P(MetaConformance, RenameExchangeDirAndFileAcrossParents) {
  Attr p = Dir(kRootIno, "p");
  Attr q = Dir(kRootIno, "q");
  Attr d = Dir(p.ino, "d");
  Attr f = File(q.ino, "f");
  File(d.ino, "inside");
  ASSERT_EQ(Nlink(p.ino), 3u);
  ASSERT_EQ(Nlink(q.ino), 2u);
  ASSERT_OK(m().Rename(p.ino, "d", q.ino, "f", kRenameExchange));
  EXPECT_EQ(LookupIno(p.ino, "d"), f.ino);
  EXPECT_EQ(LookupIno(q.ino, "f"), d.ino);
  EXPECT_EQ(Nlink(p.ino), 2u) << "p lost its subdirectory";
  EXPECT_EQ(Nlink(q.ino), 3u) << "q gained a subdirectory";
  EXPECT_EQ(Nlink(d.ino), 2u);
  EXPECT_EQ(Nlink(f.ino), 1u);
  EXPECT_EQ(Names(d.ino), std::vector<std::string>{"inside"});
  // The directory's parent is now q: q may not move below it, p may.
  EXPECT_ERRNO(m().Rename(kRootIno, "q", d.ino, "q", 0), EINVAL);
  ASSERT_OK(m().Rename(kRootIno, "p", d.ino, "p", 0));
  EXPECT_EQ(Nlink(kRootIno), 3u);
  EXPECT_EQ(Nlink(d.ino), 3u);
  // And the other way round (file in the first parent, dir in the second).
  Attr r1 = Dir(kRootIno, "r1");
  Attr r2 = Dir(kRootIno, "r2");
  Attr g = File(r1.ino, "g");
  Attr e = Dir(r2.ino, "e");
  ASSERT_OK(m().Rename(r1.ino, "g", r2.ino, "e", kRenameExchange));
  EXPECT_EQ(Nlink(r1.ino), 3u);
  EXPECT_EQ(Nlink(r2.ino), 2u);
  EXPECT_EQ(LookupIno(r1.ino, "g"), e.ino);
  EXPECT_EQ(LookupIno(r2.ino, "e"), g.ino);
  EXPECT_ERRNO(m().Rename(kRootIno, "r1", e.ino, "r1", 0), EINVAL);
}

TEST_P(MetaConformance, RenameExchangeTwoDirectories) {
  Attr p = Dir(kRootIno, "p");
  Attr q = Dir(kRootIno, "q");
  Attr a = Dir(p.ino, "a");
  Attr b = Dir(q.ino, "b");
  Dir(b.ino, "bb");
  ASSERT_OK(m().Rename(p.ino, "a", q.ino, "b", kRenameExchange));
  EXPECT_EQ(Nlink(p.ino), 3u);
  EXPECT_EQ(Nlink(q.ino), 3u);
  EXPECT_EQ(Nlink(b.ino), 3u);
  EXPECT_EQ(LookupIno(p.ino, "a"), b.ino);
  EXPECT_EQ(LookupIno(q.ino, "b"), a.ino);
  // An exchange with a non-empty directory is fine (nothing is removed).
  EXPECT_EQ(Names(b.ino), std::vector<std::string>{"bb"});
}

TEST_P(MetaConformance, RenameExchangeErrors) {
  Attr d = Dir(kRootIno, "d");
  Attr sub = Dir(d.ino, "sub");
  Dir(sub.ino, "deeper");
  File(kRootIno, "f");
  EXPECT_ERRNO(m().Rename(kRootIno, "f", kRootIno, "missing", kRenameExchange), ENOENT);
  EXPECT_ERRNO(m().Rename(kRootIno, "missing", kRootIno, "f", kRenameExchange), ENOENT);
  EXPECT_ERRNO(m().Rename(kRootIno, "f", kRootIno, "d", kRenameExchange | kRenameNoReplace), EINVAL);
  // A directory exchanged with something inside it.
  EXPECT_ERRNO(m().Rename(kRootIno, "d", sub.ino, "deeper", kRenameExchange), EINVAL);
  EXPECT_ERRNO(m().Rename(sub.ino, "deeper", kRootIno, "d", kRenameExchange), EINVAL);
  EXPECT_ERRNO(m().Rename(d.ino, "sub", kRootIno, "d", kRenameExchange), EINVAL);
  EXPECT_EQ(LookupIno(kRootIno, "d"), d.ino);
  EXPECT_EQ(LookupIno(d.ino, "sub"), sub.ino);
  EXPECT_EQ(Nlink(kRootIno), 3u);
}

TEST_P(MetaConformance, RenameDirectoryIntoItsOwnSubtreeIsEINVAL) {
  Attr a = Dir(kRootIno, "a");
  Attr b = Dir(a.ino, "b");
  Attr c = Dir(b.ino, "c");
  File(c.ino, "f");
  EXPECT_ERRNO(m().Rename(kRootIno, "a", a.ino, "x", 0), EINVAL);
  EXPECT_ERRNO(m().Rename(kRootIno, "a", b.ino, "x", 0), EINVAL);
  EXPECT_ERRNO(m().Rename(kRootIno, "a", c.ino, "x", 0), EINVAL);
  EXPECT_ERRNO(m().Rename(kRootIno, "a", c.ino, "f", 0), EINVAL) << "loop check comes before the type check";
  EXPECT_ERRNO(m().Rename(a.ino, "b", c.ino, "x", kRenameNoReplace), EINVAL);
  EXPECT_ERRNO(m().Rename(a.ino, "b", b.ino, "x", 0), EINVAL);
  // Onto an ancestor: the target is not empty.
  EXPECT_ERRNO(m().Rename(b.ino, "c", kRootIno, "a", 0), ENOTEMPTY);
  EXPECT_EQ(LookupIno(kRootIno, "a"), a.ino);
  EXPECT_EQ(LookupIno(a.ino, "b"), b.ino);
  EXPECT_EQ(LookupIno(b.ino, "c"), c.ino);
  EXPECT_EQ(Nlink(kRootIno), 3u);
  EXPECT_EQ(Nlink(a.ino), 3u);
  // Moving up is fine.
  ASSERT_OK(m().Rename(b.ino, "c", kRootIno, "c", 0));
  EXPECT_EQ(Nlink(b.ino), 2u);
  EXPECT_EQ(Nlink(kRootIno), 4u);
}

// ---------------------------------------------------------------- setattr

TEST_P(MetaConformance, SetAttrModeKeepsFileType) {
  Attr f = File(kRootIno, "f");
  Attr d = Dir(kRootIno, "d");
  SetAttrRequest req;
  req.valid = SetAttrRequest::kMode;
  req.mode = S_IFDIR | 07755;
  auto r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->mode, static_cast<uint32_t>(S_IFREG | 07755));
  EXPECT_EQ(Get(f.ino).mode, static_cast<uint32_t>(S_IFREG | 07755));
  req.mode = S_IFREG | 0700;
  r = m().SetAttr(d.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->mode, static_cast<uint32_t>(S_IFDIR | 0700));
  req.mode = 0;
  r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->mode, static_cast<uint32_t>(S_IFREG));
  EXPECT_EQ(Nlink(d.ino), 2u);
}

TEST_P(MetaConformance, SetAttrFieldsAndCtime) {
  Attr f = File(kRootIno, "f");
  SetAttrRequest req;
  req.valid = SetAttrRequest::kCtime;
  req.ctime_ns = 1000;
  ASSERT_OK(m().SetAttr(f.ino, req));
  EXPECT_EQ(Get(f.ino).ctime_ns, 1000);

  int64_t before = NowNs();
  req = {};
  req.valid = SetAttrRequest::kUid | SetAttrRequest::kGid | SetAttrRequest::kAtime | SetAttrRequest::kMtime;
  req.uid = 42;
  req.gid = 43;
  req.atime_ns = 111222333;
  req.mtime_ns = 444555666;
  auto r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->uid, 42u);
  EXPECT_EQ(r->gid, 43u);
  EXPECT_EQ(r->atime_ns, 111222333);
  EXPECT_EQ(r->mtime_ns, 444555666);
  EXPECT_GE(r->ctime_ns, before) << "any attribute change updates ctime";
  Attr g = Get(f.ino);
  EXPECT_EQ(testutil::AttrString(g), testutil::AttrString(*r));

  EXPECT_ERRNO(m().SetAttr(4040404, req), ENOENT);
}

TEST_P(MetaConformance, SetAttrSizeBumpsVersion) {
  Attr f = File(kRootIno, "f");
  uint64_t v0 = f.version;
  SetAttrRequest req;
  req.valid = SetAttrRequest::kSize;
  req.size = 12345;
  auto r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->size, 12345u);
  EXPECT_GT(r->version, v0);
  uint64_t v1 = r->version;
  req.size = 10;
  r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->size, 10u);
  EXPECT_GT(r->version, v1);
  EXPECT_EQ(Get(f.ino).size, 10u);
  // A mode change is no content change.
  uint64_t v2 = r->version;
  req = {};
  req.valid = SetAttrRequest::kMode;
  req.mode = 0600;
  r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->version, v2);
}

// ---------------------------------------------------------------- readdir

TEST_P(MetaConformance, ProjectsPersistAreInheritedAndBoundNames) {
  Attr root = Dir(kRootIno, "vol");
  Attr outside = File(kRootIno, "outside");
  AgeTimes(root.ino);
  SetAttrRequest req;
  req.valid = SetAttrRequest::kProject;
  req.project = root.ino;
  auto r = m().SetAttr(root.ino, req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->project, root.ino);
  EXPECT_EQ(r->ctime_ns, 1000) << "tagging is not a change users see";
  Attr sub = Dir(root.ino, "sub");
  Attr f = File(sub.ino, "f");
  EXPECT_EQ(sub.project, root.ino);
  EXPECT_EQ(f.project, root.ino);
  EXPECT_EQ(outside.project, 0u);
  EXPECT_ERRNO(m().Rename(sub.ino, "f", kRootIno, "f", 0), EXDEV);
  EXPECT_ERRNO(m().Rename(kRootIno, "outside", sub.ino, "outside", 0), EXDEV);
  EXPECT_ERRNO(m().Rename(sub.ino, "f", kRootIno, "outside", kRenameExchange), EXDEV);
  EXPECT_ERRNO(m().Link(f.ino, kRootIno, "f"), EXDEV);
  EXPECT_ERRNO(m().Link(outside.ino, sub.ino, "outside"), EXDEV);
  EXPECT_TRUE(m().Rename(sub.ino, "f", root.ino, "f", 0).ok());
  EXPECT_TRUE(m().Rename(kRootIno, "vol", kRootIno, "vol2", 0).ok()) << "a root moves among unlimited directories";
  if (!GetParam().persistent) return;
  Reopen();
  EXPECT_EQ(Get(f.ino).project, root.ino);
  EXPECT_EQ(Get(root.ino).project, root.ino);
}

TEST_P(MetaConformance, ReadDirContentAndOrder) {
  Attr d = Dir(kRootIno, "d");
  std::map<std::string, std::pair<Ino, uint32_t>> want;
  for (int i = 0; i < 40; i++) {
    std::string name = "e" + std::to_string((i * 7919) % 1000);
    Attr a = i % 3 == 0 ? Dir(d.ino, name) : i % 3 == 1 ? File(d.ino, name) : Symlink(d.ino, name, "t");
    want[name] = {a.ino, a.mode & S_IFMT};
  }
  auto r1 = m().ReadDir(d.ino);
  ASSERT_OK(r1);
  ASSERT_EQ(r1->size(), want.size());
  for (auto& e : *r1) {
    EXPECT_NE(e.name, ".");
    EXPECT_NE(e.name, "..");
    ASSERT_EQ(want.count(e.name), 1u) << e.name;
    EXPECT_EQ(e.ino, want[e.name].first) << e.name;
    EXPECT_EQ(e.mode & S_IFMT, want[e.name].second) << e.name;
  }
  auto r2 = m().ReadDir(d.ino);
  ASSERT_OK(r2);
  ASSERT_EQ(r2->size(), r1->size());
  for (size_t i = 0; i < r1->size(); i++) {
    EXPECT_EQ((*r1)[i].name, (*r2)[i].name) << "order must be stable across calls";
  }
  EXPECT_TRUE(m().ReadDir(kRootIno)->size() == 1);
}

TEST_P(MetaConformance, ReadDirErrors) {
  Attr f = File(kRootIno, "f");
  Attr s = Symlink(kRootIno, "s", "f");
  EXPECT_ERRNO(m().ReadDir(f.ino), ENOTDIR);
  EXPECT_ERRNO(m().ReadDir(s.ino), ENOTDIR);
  EXPECT_ERRNO(m().ReadDir(8888888), ENOENT);
}

// ---------------------------------------------------------------- xattrs

TEST_P(MetaConformance, XattrSemantics) {
  Attr f = File(kRootIno, "f");
  EXPECT_ERRNO(m().GetXattr(f.ino, "user.a"), ENODATA);
  EXPECT_ERRNO(m().RemoveXattr(f.ino, "user.a"), ENODATA);
  EXPECT_ERRNO(m().SetXattr(f.ino, "user.a", "v", XATTR_REPLACE), ENODATA);
  auto l = m().ListXattr(f.ino);
  ASSERT_OK(l);
  EXPECT_TRUE(l->empty());

  ASSERT_TRUE(m().SetXattr(f.ino, "user.a", "one", XATTR_CREATE).ok());
  EXPECT_ERRNO(m().SetXattr(f.ino, "user.a", "two", XATTR_CREATE), EEXIST);
  EXPECT_EQ(*m().GetXattr(f.ino, "user.a"), "one");
  ASSERT_TRUE(m().SetXattr(f.ino, "user.a", "two", XATTR_REPLACE).ok());
  EXPECT_EQ(*m().GetXattr(f.ino, "user.a"), "two");
  ASSERT_TRUE(m().SetXattr(f.ino, "user.a", "three", 0).ok());
  EXPECT_EQ(*m().GetXattr(f.ino, "user.a"), "three");

  std::string binary("\0\x01\xff" "abc\0", 7);
  ASSERT_TRUE(m().SetXattr(f.ino, "user.bin", binary, 0).ok());
  ASSERT_TRUE(m().SetXattr(f.ino, "trusted.empty", "", 0).ok());
  EXPECT_EQ(*m().GetXattr(f.ino, "user.bin"), binary);
  EXPECT_EQ(*m().GetXattr(f.ino, "trusted.empty"), "");

  l = m().ListXattr(f.ino);
  ASSERT_OK(l);
  std::vector<std::string> names = *l;
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"trusted.empty", "user.a", "user.bin"}));

  ASSERT_TRUE(m().RemoveXattr(f.ino, "user.a").ok());
  EXPECT_ERRNO(m().GetXattr(f.ino, "user.a"), ENODATA);
  EXPECT_ERRNO(m().RemoveXattr(f.ino, "user.a"), ENODATA);
  EXPECT_EQ(m().ListXattr(f.ino)->size(), 2u);

  // Directories and symlinks carry xattrs too, independently.
  Attr d = Dir(kRootIno, "d");
  ASSERT_TRUE(m().SetXattr(d.ino, "user.a", "dir", 0).ok());
  EXPECT_EQ(*m().GetXattr(d.ino, "user.a"), "dir");
  EXPECT_ERRNO(m().GetXattr(f.ino, "user.a"), ENODATA);

  EXPECT_ERRNO(m().GetXattr(5050505, "user.a"), ENOENT);
  EXPECT_ERRNO(m().ListXattr(5050505), ENOENT);
  EXPECT_ERRNO(m().SetXattr(5050505, "user.a", "x", 0), ENOENT);
  EXPECT_ERRNO(m().RemoveXattr(5050505, "user.a"), ENOENT);
}

TEST_P(MetaConformance, XattrChangesCtime) {
  Attr f = File(kRootIno, "f");
  SetAttrRequest req;
  req.valid = SetAttrRequest::kCtime;
  req.ctime_ns = 1000;
  ASSERT_OK(m().SetAttr(f.ino, req));
  int64_t before = NowNs();
  ASSERT_TRUE(m().SetXattr(f.ino, "user.a", "x", 0).ok());
  EXPECT_GE(Get(f.ino).ctime_ns, before);
  ASSERT_OK(m().SetAttr(f.ino, req));
  ASSERT_TRUE(m().RemoveXattr(f.ino, "user.a").ok());
  EXPECT_GE(Get(f.ino).ctime_ns, before);
}

TEST_P(MetaConformance, XattrsOfUnlinkedInodeStayUntilDrop) {
  Attr f = File(kRootIno, "f");
  ASSERT_TRUE(m().SetXattr(f.ino, "user.k", "v", 0).ok());
  ASSERT_OK(m().Unlink(kRootIno, "f"));
  EXPECT_EQ(*m().GetXattr(f.ino, "user.k"), "v");
  ASSERT_OK(m().Drop(f.ino));
  EXPECT_ERRNO(m().GetXattr(f.ino, "user.k"), ENOENT);
}

// ---------------------------------------------------------------- drop, counts

TEST_P(MetaConformance, DropRefusesLinkedInodes) {
  Attr f = File(kRootIno, "f");
  Attr d = Dir(kRootIno, "d");
  EXPECT_ERRNO(m().Drop(f.ino), EBUSY);
  EXPECT_ERRNO(m().Drop(d.ino), EBUSY);
  EXPECT_ERRNO(m().Drop(kRootIno), EBUSY);
  EXPECT_EQ(LookupIno(kRootIno, "f"), f.ino);
  EXPECT_EQ(m().InodeCount(), 3u);
}

TEST_P(MetaConformance, InodeCountFollowsCreateAndDrop) {
  EXPECT_EQ(m().InodeCount(), 1u);
  Attr d = Dir(kRootIno, "d");
  Attr f = File(d.ino, "f");
  Symlink(d.ino, "s", "f");
  ASSERT_OK(m().Link(f.ino, kRootIno, "f2"));
  EXPECT_EQ(m().InodeCount(), 4u) << "a hard link is no new inode";
  ASSERT_OK(m().Unlink(d.ino, "f"));
  ASSERT_OK(m().Unlink(kRootIno, "f2"));
  EXPECT_EQ(m().InodeCount(), 4u) << "unlinked inodes count until dropped";
  ASSERT_OK(m().Drop(f.ino));
  EXPECT_EQ(m().InodeCount(), 3u);
}

TEST_P(MetaConformance, ContentVersionsAreCompareAndSwap) {
  Attr f = File(kRootIno, "f");
  SetAttrRequest req;
  req.valid = SetAttrRequest::kContent | SetAttrRequest::kSize;
  req.base_version = f.version;
  req.size = 4096;
  req.owner = 3;
  req.checksum = 0xfeedface;
  auto r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->version, f.version + 1) << "one new version, however many fields changed";
  EXPECT_EQ(r->size, 4096u);
  EXPECT_EQ(r->owner, 3u);
  EXPECT_EQ(r->checksum, 0xfeedfaceu);
  Attr now = Get(f.ino);
  EXPECT_EQ(testutil::AttrString(now), testutil::AttrString(*r));

  // A writer that started from the old version loses.
  req.owner = 4;
  req.checksum = 1;
  req.size = 1;
  EXPECT_ERRNO(m().SetAttr(f.ino, req), ESTALE);
  Attr after = Get(f.ino);
  EXPECT_EQ(after.version, now.version);
  EXPECT_EQ(after.owner, 3u);
  EXPECT_EQ(after.size, 4096u);
  EXPECT_EQ(after.checksum, 0xfeedfaceu);

  // From the current version it wins.
  req.base_version = now.version;
  r = m().SetAttr(f.ino, req);
  ASSERT_OK(r);
  EXPECT_EQ(r->version, now.version + 1);
  EXPECT_EQ(r->owner, 4u);
}

// MetaTxn::NewIno: "a fresh inode number, never handed out before" -- also
// not after the inode was dropped, and not after the engine was reopened.
TEST_P(MetaConformance, InodeNumbersAreNeverReused) {
  std::set<Ino> handed_out{kRootIno};
  auto fresh = [&](const std::string& name) {
    Attr a = File(kRootIno, name);
    EXPECT_TRUE(handed_out.insert(a.ino).second) << "inode " << a.ino << " handed out again for " << name;
    return a;
  };
  fresh("a");
  fresh("b");
  ASSERT_OK(m().Unlink(kRootIno, "b"));
  ASSERT_OK(m().Drop(*handed_out.rbegin()));
  fresh("c");
  if (!GetParam().persistent) return;
  Attr d = fresh("d");
  ASSERT_OK(m().Unlink(kRootIno, "d"));
  ASSERT_OK(m().Drop(d.ino));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  fresh("e");
  Attr g = fresh("g");
  ASSERT_OK(m().Unlink(kRootIno, "g"));
  ASSERT_OK(m().Drop(g.ino));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  fresh("h");
}

// ---------------------------------------------------------------- concurrency
// "All methods may be called concurrently": racing changes must neither lose
// updates of shared records (a parent's link count) nor let two callers win
// one name.

TEST_P(MetaConformance, ConcurrentCreatesKeepCountsAndOneWinnerPerName) {
  constexpr int kThreads = 4, kRounds = 40;
  uint64_t count_before = m().InodeCount();
  std::vector<int> wins(kRounds, 0), eexist(kRounds, 0);
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; i++) {
        NewNode dir{S_IFDIR | 0755, 0, 0, 0, ""};
        auto d = m().Create(kRootIno, "t" + std::to_string(t) + "-" + std::to_string(i), dir);
        EXPECT_TRUE(d.ok()) << d.status().ToString();
        NewNode file{S_IFREG | 0644, 0, 0, 0, ""};
        auto f = m().Create(kRootIno, "shared-" + std::to_string(i), file);
        std::lock_guard lock(mu);
        if (f.ok()) wins[i]++;
        else if (f.err() == EEXIST) eexist[i]++;
        else ADD_FAILURE() << f.status().ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < kRounds; i++) {
    EXPECT_EQ(wins[i], 1) << "shared-" << i;
    EXPECT_EQ(eexist[i], kThreads - 1) << "shared-" << i;
  }
  EXPECT_EQ(Nlink(kRootIno), 2u + kThreads * kRounds) << "lost updates of the parent's link count";
  EXPECT_EQ(Names(kRootIno).size(), static_cast<size_t>(kThreads * kRounds + kRounds));
  EXPECT_EQ(m().InodeCount() - count_before, static_cast<uint64_t>(kThreads * kRounds + kRounds));
}

TEST_P(MetaConformance, ConcurrentDirectoryMovesKeepParentLinkCounts) {
  constexpr int kThreads = 4, kMoves = 60;
  Attr a = Dir(kRootIno, "a");
  Attr b = Dir(kRootIno, "b");
  for (int t = 0; t < kThreads; t++) Dir(a.ino, "d" + std::to_string(t));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::string name = "d" + std::to_string(t);
      for (int i = 0; i < kMoves; i++) {
        Ino from = i % 2 == 0 ? a.ino : b.ino, to = i % 2 == 0 ? b.ino : a.ino;
        auto r = m().Rename(from, name, to, name, 0);
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        // And a file racing on the shared parents' times and entries.
        NewNode file{S_IFREG | 0644, 0, 0, 0, ""};
        std::string fname = "f" + std::to_string(t) + "-" + std::to_string(i);
        EXPECT_TRUE(m().Create(to, fname, file).ok());
        EXPECT_TRUE(m().Unlink(to, fname).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  size_t in_a = Names(a.ino).size(), in_b = Names(b.ino).size();
  EXPECT_EQ(in_a, static_cast<size_t>(kThreads)) << "every directory made an even number of moves";
  EXPECT_EQ(in_b, 0u);
  EXPECT_EQ(Nlink(a.ino), 2u + in_a);
  EXPECT_EQ(Nlink(b.ino), 2u + in_b);
  EXPECT_EQ(Nlink(kRootIno), 4u);
}

// ---------------------------------------------------------------- durability

// Builds a namespace using every kind of change.
void BuildRichNamespace(MetaEngine& m) {
  auto mk = [&](Ino p, const std::string& name, uint32_t mode, const std::string& target = "") {
    NewNode n{mode, 1000, 1001, S_ISCHR(mode) ? makedev(5, 7) : 0, target};
    auto r = m.Create(p, name, n);
    EXPECT_TRUE(r.ok()) << name;
    return r.ok() ? r->ino : 0;
  };
  Ino a = mk(kRootIno, "a", S_IFDIR | 0755);
  Ino b = mk(a, "b", S_IFDIR | 02775);
  Ino c = mk(b, "c", S_IFDIR | 0700);
  Ino f = mk(a, "file", S_IFREG | 0644);
  mk(b, "link", S_IFLNK | 0777, "../file");
  mk(kRootIno, "dev", S_IFCHR | 0600);
  mk(kRootIno, "fifo", S_IFIFO | 0600);
  Ino g = mk(c, "g", S_IFREG | 0600);
  EXPECT_TRUE(m.Link(f, c, "file-link").ok());
  EXPECT_TRUE(m.Link(f, kRootIno, "file-link2").ok());
  EXPECT_TRUE(m.SetXattr(f, "user.text", "hello", 0).ok());
  EXPECT_TRUE(m.SetXattr(f, "user.bin", std::string("\0\1\2", 3), 0).ok());
  EXPECT_TRUE(m.SetXattr(c, "trusted.dir", "d", 0).ok());
  SetAttrRequest req;
  req.valid = SetAttrRequest::kSize | SetAttrRequest::kUid | SetAttrRequest::kMtime | SetAttrRequest::kMode;
  req.size = 777;
  req.uid = 55;
  req.mtime_ns = 123456789;
  req.mode = 04711;
  EXPECT_TRUE(m.SetAttr(g, req).ok());
  SetAttrRequest content;
  content.valid = SetAttrRequest::kContent | SetAttrRequest::kSize;
  content.size = 5;
  content.owner = 2;
  content.checksum = 0x123456789abcdefull;
  content.base_version = m.GetAttr(f)->version;
  EXPECT_TRUE(m.SetAttr(f, content).ok());
  // An orphan file (with an xattr) and an orphan directory.
  Ino o = mk(kRootIno, "orphan", S_IFREG | 0644);
  EXPECT_TRUE(m.SetXattr(o, "user.o", "x", 0).ok());
  EXPECT_TRUE(m.Unlink(kRootIno, "orphan").ok());
  mk(a, "gone-dir", S_IFDIR | 0755);
  EXPECT_TRUE(m.Rmdir(a, "gone-dir").ok());
  // A dropped inode.
  Ino dropped = mk(kRootIno, "dropped", S_IFREG | 0644);
  EXPECT_TRUE(m.Unlink(kRootIno, "dropped").ok());
  EXPECT_TRUE(m.Drop(dropped).ok());
  // Moves: a dir across parents, a replace, an exchange of dir and file.
  mk(kRootIno, "x", S_IFDIR | 0755);
  EXPECT_TRUE(m.Rename(b, "c", kRootIno, "c-moved", 0).ok());
  mk(kRootIno, "victim", S_IFREG | 0644);
  mk(kRootIno, "replacer", S_IFREG | 0644);
  EXPECT_TRUE(m.Rename(kRootIno, "replacer", kRootIno, "victim", 0).ok());
  EXPECT_TRUE(m.Rename(kRootIno, "x", a, "file", kRenameExchange).ok());
  EXPECT_TRUE(m.RemoveXattr(f, "user.text").ok());
}

TEST_P(MetaConformance, ReopenPreservesWholeNamespace) {
  RequirePersistent();
  BuildRichNamespace(m());
  NamespaceDump before = DumpNamespace(m());
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(before.orphans.size(), 3u) << before;  // orphan, gone-dir, victim
  ASSERT_NO_FATAL_FAILURE(Reopen());
  NamespaceDump after = DumpNamespace(m());
  EXPECT_EQ(before, after) << "before:\n" << before << "after:\n" << after;
  ASSERT_NO_FATAL_FAILURE(Reopen());
  NamespaceDump again = DumpNamespace(m());
  EXPECT_EQ(before, again) << "before:\n" << before << "after a second reopen:\n" << again;
}

TEST_P(MetaConformance, ReopenKeepsWorkingNamespace) {
  RequirePersistent();
  BuildRichNamespace(m());
  NamespaceDump before = DumpNamespace(m());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  // Parent links of directories survive: loop checks still work.
  Ino a = LookupIno(kRootIno, "a");
  Ino x = LookupIno(a, "file");  // the directory exchanged into a
  ASSERT_TRUE(S_ISDIR(Get(x).mode));
  EXPECT_ERRNO(m().Rename(kRootIno, "a", x, "a", 0), EINVAL);
  Ino cm = LookupIno(kRootIno, "c-moved");
  EXPECT_ERRNO(m().Rename(kRootIno, "c-moved", cm, "y", 0), EINVAL);
  // New inodes do not collide with anything that exists.
  Attr n = File(kRootIno, "new");
  EXPECT_EQ(before.nodes.count(n.ino), 0u) << "inode " << n.ino << " reused after reopen";
  Attr nd = Dir(cm, "newdir");
  EXPECT_EQ(before.nodes.count(nd.ino), 0u);
  // Orphans can still be dropped, and stay dropped.
  for (Ino o : before.orphans) ASSERT_OK(m().Drop(o));
  NamespaceDump mid = DumpNamespace(m());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  NamespaceDump after = DumpNamespace(m());
  EXPECT_TRUE(after.orphans.empty());
  EXPECT_EQ(mid, after) << "before:\n" << mid << "after:\n" << after;
}

TEST_P(MetaConformance, ReopenAfterHundredsOfOperations) {
  RequirePersistent();
  std::vector<Ino> dirs{kRootIno};
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 150; i++) {
      std::string name = "r" + std::to_string(round) + "-" + std::to_string(i);
      Ino parent = dirs[(i * 31 + round) % dirs.size()];
      switch (i % 6) {
        case 0:
          dirs.push_back(Dir(parent, name).ino);
          break;
        case 1: {
          Attr f = File(parent, name);
          ASSERT_TRUE(m().SetXattr(f.ino, "user.i", std::to_string(i), 0).ok());
          break;
        }
        case 2:
          Symlink(parent, name, std::string(i, 'l'));
          break;
        case 3: {
          Attr f = File(parent, name);
          ASSERT_OK(m().Link(f.ino, kRootIno, name + "-hl"));
          ASSERT_OK(m().Unlink(parent, name));
          break;
        }
        case 4: {
          File(parent, name);
          ASSERT_OK(m().Rename(parent, name, kRootIno, "r" + std::to_string(round) + "-" + std::to_string(i - 1) + "-hl", 0));
          break;
        }
        case 5: {
          Attr f = File(parent, name);
          SetAttrRequest req;
          req.valid = SetAttrRequest::kSize | SetAttrRequest::kMode;
          req.size = i;
          req.mode = 0600 + i % 8;
          ASSERT_OK(m().SetAttr(f.ino, req));
          break;
        }
      }
    }
    NamespaceDump before = DumpNamespace(m());
    ASSERT_NO_FATAL_FAILURE(Reopen());
    NamespaceDump after = DumpNamespace(m());
    ASSERT_EQ(before, after) << "round " << round << "\nbefore:\n" << before << "after:\n" << after;
    ASSERT_NO_FATAL_FAILURE(Reopen());
    NamespaceDump again = DumpNamespace(m());
    ASSERT_EQ(before, again) << "round " << round << " second reopen";
  }
}

// Journal damage: only for the engine that keeps a journal file in the store.
class JournalFile {
 public:
  explicit JournalFile(std::string path) : path_(std::move(path)) {}
  std::string Read() const {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void WriteAt(size_t off, const std::string& bytes) const {
    int fd = open(path_.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << path_;
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), off), static_cast<ssize_t>(bytes.size()));
    close(fd);
  }
  // Byte offsets where the valid records end.
  std::vector<size_t> RecordEnds() const {
    std::vector<size_t> ends;
    for (const RecordSpan& s : RecordSpans(Read())) ends.push_back(s.end);
    return ends;
  }

 private:
  std::string path_;
};

class EmbeddedJournal : public MetaConformance {
 protected:
  JournalFile journal() { return JournalFile(dir_->path() + "/meta/journal"); }
};

TEST_P(EmbeddedJournal, GarbageAfterValidRecordsIsIgnored) {
  Attr d = Dir(kRootIno, "d");
  File(d.ino, "f");
  ASSERT_TRUE(m().SetXattr(d.ino, "user.x", "y", 0).ok());
  NamespaceDump before = DumpNamespace(m());
  m_.reset();
  auto ends = journal().RecordEnds();
  ASSERT_FALSE(ends.empty());
  std::string garbage = "this is not a record \x01\x02\x03";
  garbage += std::string(100, '\xab');
  journal().WriteAt(ends.back(), garbage);
  ASSERT_NO_FATAL_FAILURE(Open());
  NamespaceDump after = DumpNamespace(m());
  EXPECT_EQ(before, after) << "before:\n" << before << "after:\n" << after;
  // Life goes on, and the garbage does not come back to bite.
  File(kRootIno, "later");
  NamespaceDump later = DumpNamespace(m());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(later, DumpNamespace(m()));
}

TEST_P(EmbeddedJournal, TornLastRecordLosesOnlyThatOperation) {
  Attr d = Dir(kRootIno, "d");
  File(d.ino, "f");
  NamespaceDump before_last = DumpNamespace(m());
  File(d.ino, "g");  // the operation whose record gets torn
  m_.reset();
  auto ends = journal().RecordEnds();
  ASSERT_GE(ends.size(), 2u);
  // Tear the create of g, the last record: keep its first half, then zeros
  // (as a crash mid-write into preallocated space leaves it).
  size_t g_start = ends[ends.size() - 2];
  size_t g_end = ends.back();
  size_t half = (g_end - g_start) / 2;
  journal().WriteAt(g_start + half, std::string(g_end - g_start - half, '\0'));
  ASSERT_NO_FATAL_FAILURE(Open());
  NamespaceDump after = DumpNamespace(m());
  EXPECT_EQ(before_last, after) << "before:\n" << before_last << "after:\n" << after;
  EXPECT_ERRNO(m().Lookup(d.ino, "g"), ENOENT);
  // The name is free again and the engine keeps working across reopens.
  File(d.ino, "g");
  NamespaceDump later = DumpNamespace(m());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(later, DumpNamespace(m()));
}

// A crash tears only the last record: a hole with a valid record after it is
// damage, refused rather than replayed around (or silently cut there).
TEST_P(EmbeddedJournal, HoleBeforeAValidRecordIsRefused) {
  Attr d = Dir(kRootIno, "d");
  Attr g = File(d.ino, "g");
  ASSERT_TRUE(m().SetXattr(g.ino, "user.big", std::string(300, 'v'), 0).ok());
  m_.reset();
  auto ends = journal().RecordEnds();
  ASSERT_GE(ends.size(), 3u);
  size_t g_start = ends[ends.size() - 3];
  size_t g_end = ends[ends.size() - 2];
  journal().WriteAt(g_start + (g_end - g_start) / 2, std::string(g_end - g_start - (g_end - g_start) / 2, '\0'));
  auto reopened = OpenMetaEngine("", dir_->path());
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.err(), EUCLEAN);
  EXPECT_NE(reopened.status().message().find("unreadable with valid records after it"), std::string::npos)
      << reopened.status().message();
  EXPECT_NE(reopened.status().message().find("tempfs fsck"), std::string::npos) << reopened.status().message();
}

TEST_P(EmbeddedJournal, TruncatedJournalRecoversPrefix) {
  std::vector<NamespaceDump> states;
  states.push_back(DumpNamespace(m()));
  for (int i = 0; i < 5; i++) {
    File(kRootIno, "f" + std::to_string(i));
    states.push_back(DumpNamespace(m()));
  }
  m_.reset();
  auto ends = journal().RecordEnds();
  ASSERT_EQ(ends.size(), 5u) << "one record per operation";
  // Cut the file in the middle of record 3 (index 2): state after 2 creates.
  size_t cut = ends[1] + 7;
  ASSERT_EQ(truncate((dir_->path() + "/meta/journal").c_str(), cut), 0);
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(states[2], DumpNamespace(m()));
}

INSTANTIATE_TEST_SUITE_P(Engines, MetaConformance, ::testing::ValuesIn(testutil::EngineFactories()),
                         testutil::FactoryName);
std::vector<EngineFactory> JournalEngines() {
  std::vector<EngineFactory> v;
  for (auto& f : testutil::EngineFactories()) {
    if (f.name == "embedded") v.push_back(f);
  }
  return v;
}
INSTANTIATE_TEST_SUITE_P(Engines, EmbeddedJournal, ::testing::ValuesIn(JournalEngines()), testutil::FactoryName);

}  // namespace
}  // namespace tempfs
