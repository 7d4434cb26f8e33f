// Capacity limits in the Vfs (quota.h): a directory with kCapacityXattr is a
// quota root; writes, truncates and fallocate beyond its room fail with
// ENOSPC (or are shortened), freed space can be used again, rename and link
// across projects are EXDEV, new and existing inodes carry the project, and
// inode records written before projects existed still decode.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "meta/meta_engine.h"
#include "meta/txn.h"
#include "meta_test_util.h"
#include "store/local_store.h"
#include "vfs/vfs.h"

namespace tempfs {
namespace {

using testutil::TempDir;

constexpr uint64_t kBlock = kQuotaBlock;

class QuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("quota");
    auto store = LocalStore::Open(dir_->path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto meta = OpenMetaEngine("", dir_->path());
    ASSERT_TRUE(meta.ok()) << meta.status().ToString();
    vfs_ = std::make_unique<Vfs>(std::move(*meta), std::move(*store), VfsOptions{});
  }
  void TearDown() override {
    vfs_.reset();
    dir_.reset();
  }
  Vfs& v() { return *vfs_; }

  Ino Mkdir(Ino parent, const std::string& name) {
    auto a = v().MakeNode({}, parent, name, S_IFDIR | 0777, 0);
    EXPECT_TRUE(a.ok()) << name << ": " << a.status().ToString();
    return a.ok() ? a->ino : 0;
  }
  // A directory with a capacity.
  Ino Volume(const std::string& name, uint64_t capacity) {
    Ino ino = Mkdir(kRootIno, name);
    Status st = v().SetXattr(ino, kCapacityXattr, std::to_string(capacity), 0);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return ino;
  }
  Vfs::OpenFile Create(Ino parent, const std::string& name) {
    auto f = v().Create({}, parent, name, 0644, O_RDWR);
    EXPECT_TRUE(f.ok()) << name << ": " << f.status().ToString();
    return f.ok() ? *f : Vfs::OpenFile{};
  }
  // Writes `n` bytes at `off` through the daemon; the count written or -errno.
  int64_t Write(FileHandle* h, uint64_t off, size_t n) {
    auto r = v().Write(h, off, std::string(n, 'q'));
    return r.ok() ? static_cast<int64_t>(*r) : -r.err();
  }
  uint64_t Usage(Ino root) {
    auto u = v().QuotaUsage(root);
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    return u.ok() ? *u : 0;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Vfs> vfs_;
};

TEST_F(QuotaTest, WritesBeyondCapacityAreShortThenENOSPC) {
  Ino vol = Volume("vol", 3 * kBlock + 100);  // room for three whole blocks
  auto f = Create(vol, "f");
  ASSERT_NE(f.handle, nullptr);
  EXPECT_TRUE(f.handle->quota != nullptr);
  EXPECT_FALSE(f.handle->passthrough_ok) << "capped files must be written through the daemon";
  EXPECT_EQ(Write(f.handle, 0, 2 * kBlock), static_cast<int64_t>(2 * kBlock));
  EXPECT_EQ(Write(f.handle, 2 * kBlock, 10000), static_cast<int64_t>(kBlock)) << "shortened to what fits";
  EXPECT_EQ(Write(f.handle, 3 * kBlock, 1), -ENOSPC);
  EXPECT_EQ(Write(f.handle, 0, kBlock), static_cast<int64_t>(kBlock)) << "overwriting needs no room";
  EXPECT_EQ(Usage(vol), 3 * kBlock);
  EXPECT_EQ(v().GetAttr(f.attr.ino)->size, 3 * kBlock);

  // df in the volume: its capacity, nothing left.
  auto s = v().StatFs(f.attr.ino);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->f_blocks * s->f_frsize, (3 * kBlock + 100) / s->f_frsize * s->f_frsize);
  EXPECT_EQ(s->f_bavail, 0u);
  auto whole = v().StatFs(kRootIno);
  ASSERT_TRUE(whole.ok());
  EXPECT_GT(whole->f_bavail, 0u) << "outside the volume: the store's space";
  v().Release(f.handle);
}

TEST_F(QuotaTest, AppendsAreCheckedAtTheEnd) {
  Ino vol = Volume("vol", 2 * kBlock);
  auto f = Create(vol, "f");
  ASSERT_EQ(Write(f.handle, 0, kBlock + 1), static_cast<int64_t>(kBlock + 1));
  v().Release(f.handle);
  auto h = v().Open({}, f.attr.ino, O_WRONLY | O_APPEND);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(Write(*h, 0, kBlock), static_cast<int64_t>(kBlock - 1));
  EXPECT_EQ(Write(*h, 0, 1), -ENOSPC);
  v().Release(*h);
}

TEST_F(QuotaTest, TruncateAndFallocateBeyondCapacityAreENOSPC) {
  Ino vol = Volume("vol", 4 * kBlock);
  auto f = Create(vol, "f");
  SetAttrRequest grow;
  grow.valid = SetAttrRequest::kSize;
  grow.size = 1 << 20;
  EXPECT_ERRNO(v().SetAttr(f.attr.ino, grow, f.handle->fd), ENOSPC);
  EXPECT_ERRNO(v().SetAttr(f.attr.ino, grow, -1), ENOSPC);
  grow.size = 4 * kBlock;
  ASSERT_TRUE(v().SetAttr(f.attr.ino, grow, f.handle->fd).ok());
  EXPECT_EQ(Usage(vol), 4 * kBlock);
  grow.size = kBlock;
  ASSERT_TRUE(v().SetAttr(f.attr.ino, grow, -1).ok()) << "shrinking always works";
  EXPECT_EQ(Usage(vol), kBlock);

  EXPECT_ERRNO(v().Fallocate(f.handle, 0, 0, 1 << 20), ENOSPC);
  EXPECT_ERRNO(v().Fallocate(f.handle, FALLOC_FL_KEEP_SIZE, 0, 1 << 20), ENOSPC);
  EXPECT_TRUE(v().Fallocate(f.handle, 0, 0, 3 * kBlock).ok());
  EXPECT_EQ(Usage(vol), 3 * kBlock);
  EXPECT_TRUE(v().Fallocate(f.handle, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kBlock).ok());
  // Room kept past the end of the file would not be counted: refused, even
  // when it fits, so that many files cannot each keep a volume's worth.
  EXPECT_ERRNO(v().Fallocate(f.handle, FALLOC_FL_KEEP_SIZE, 2 * kBlock, 2 * kBlock), EOPNOTSUPP);
  EXPECT_TRUE(v().Fallocate(f.handle, FALLOC_FL_KEEP_SIZE, 0, 2 * kBlock).ok()) << "within the size is fine";
  EXPECT_EQ(Usage(vol), 3 * kBlock);
  v().Release(f.handle);

  // Outside any volume nothing is checked.
  auto g = Create(kRootIno, "free");
  EXPECT_TRUE(g.handle->quota == nullptr);
  EXPECT_TRUE(g.handle->passthrough_ok);
  grow.size = 1 << 20;
  EXPECT_TRUE(v().SetAttr(g.attr.ino, grow, g.handle->fd).ok());
  v().Release(g.handle);
}

TEST_F(QuotaTest, FreedSpaceCanBeWrittenAgain) {
  Ino vol = Volume("vol", 2 * kBlock);
  auto f = Create(vol, "f");
  ASSERT_EQ(Write(f.handle, 0, 2 * kBlock), static_cast<int64_t>(2 * kBlock));
  v().Release(f.handle);
  auto g = Create(vol, "g");
  EXPECT_EQ(Write(g.handle, 0, 1), -ENOSPC);

  // Unlinked while open: the space is held until the last reference goes.
  auto held = v().Open({}, f.attr.ino, O_RDONLY);
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(v().Unlink(vol, "f").ok());
  EXPECT_EQ(Write(g.handle, 0, 1), -ENOSPC);
  v().Release(*held);
  // Closed and nameless, the space is back at once, even though the kernel
  // forgets the inode only later (the FUSE forget is asynchronous).
  EXPECT_EQ(Usage(vol), 0u);
  EXPECT_EQ(Write(g.handle, 0, 2 * kBlock), static_cast<int64_t>(2 * kBlock));
  v().Forget(f.attr.ino, 1);
  EXPECT_EQ(Usage(vol), 2 * kBlock) << "the forget took the space back twice";
  v().Release(g.handle);

  // Unlinked while only known to the kernel (not open): back at once too.
  ASSERT_TRUE(v().Unlink(vol, "g").ok());
  EXPECT_EQ(Usage(vol), 0u);
  v().Forget(g.attr.ino, 1);
  EXPECT_EQ(Usage(vol), 0u);
  g = Create(vol, "g");
  v().Release(g.handle);

  // O_TRUNC frees it too.
  auto t = v().Open({}, g.attr.ino, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(Usage(vol), 0u);
  EXPECT_EQ(Write(*t, 0, kBlock), static_cast<int64_t>(kBlock));
  v().Release(*t);
}

TEST_F(QuotaTest, UsageIsCountedAgainAfterRecount) {
  Ino vol = Volume("vol", 8 * kBlock);
  auto f = Create(vol, "f");
  ASSERT_EQ(Write(f.handle, 0, kBlock), static_cast<int64_t>(kBlock));
  // Written behind the daemon's back (as another node would).
  ASSERT_EQ(pwrite(f.handle->fd, std::string(3 * kBlock, 'x').data(), 3 * kBlock, 0), static_cast<ssize_t>(3 * kBlock));
  EXPECT_EQ(Usage(vol), kBlock);
  v().RecountQuotas();
  EXPECT_EQ(Usage(vol), 3 * kBlock);
  v().Release(f.handle);
}

// A limit lifted and set again while a file is open: the open file and new
// ones share one count.
TEST_F(QuotaTest, LimitSetAgainCountsOpenFilesOnce) {
  Ino vol = Volume("vol", 2 * kBlock);
  auto f = Create(vol, "f");
  ASSERT_TRUE(v().RemoveXattr(vol, kCapacityXattr).ok());
  ASSERT_TRUE(v().SetXattr(vol, kCapacityXattr, std::to_string(2 * kBlock), 0).ok());
  auto g = Create(vol, "g");
  ASSERT_EQ(Write(g.handle, 0, 1), 1);
  EXPECT_EQ(Write(f.handle, 0, 2 * kBlock), static_cast<int64_t>(kBlock)) << "one block was left";
  EXPECT_EQ(Write(g.handle, kBlock, 1), -ENOSPC) << "two counts for one volume";
  EXPECT_EQ(Usage(vol), 2 * kBlock);
  v().Release(f.handle);
  v().Release(g.handle);
}

TEST_F(QuotaTest, RenameAndLinkAcrossProjectsAreEXDEV) {
  Ino a = Volume("a", 1 << 20), b = Volume("b", 1 << 20);
  Ino sub = Mkdir(a, "sub");
  auto f = Create(a, "f");
  v().Release(f.handle);
  auto free_file = Create(kRootIno, "free");
  v().Release(free_file.handle);

  EXPECT_ERRNO(v().Rename(a, "f", b, "f", 0), EXDEV);
  EXPECT_ERRNO(v().Rename(a, "f", kRootIno, "f", 0), EXDEV);
  EXPECT_ERRNO(v().Rename(kRootIno, "free", a, "free", 0), EXDEV);
  EXPECT_ERRNO(v().Rename(a, "sub", b, "sub", 0), EXDEV);
  EXPECT_ERRNO(v().Rename(a, "f", kRootIno, "free", kRenameExchange), EXDEV);
  EXPECT_ERRNO(v().Link(f.attr.ino, b, "f"), EXDEV);
  EXPECT_ERRNO(v().Link(f.attr.ino, kRootIno, "f"), EXDEV);
  EXPECT_ERRNO(v().Link(free_file.attr.ino, a, "free"), EXDEV);

  // Within a project, and the roots themselves between unlimited directories.
  EXPECT_TRUE(v().Rename(a, "f", sub, "f", 0).ok());
  EXPECT_TRUE(v().Link(f.attr.ino, a, "f2").ok());
  Ino outside = Mkdir(kRootIno, "outside");
  EXPECT_TRUE(v().Rename(kRootIno, "b", outside, "b", 0).ok());
  EXPECT_ERRNO(v().Rename(outside, "b", a, "b", 0), EXDEV) << "no root inside another";
}

TEST_F(QuotaTest, ProjectsAreInheritedAndTagExistingTrees) {
  // A tree with data before it gets a capacity.
  Ino top = Mkdir(kRootIno, "top");
  Ino deep = Mkdir(Mkdir(top, "x"), "y");
  auto f = Create(deep, "f");
  ASSERT_EQ(pwrite(f.handle->fd, "12345", 5, 0), 5);
  EXPECT_TRUE(f.handle->quota == nullptr);
  ASSERT_TRUE(v().Link(f.attr.ino, top, "f-again").ok());
  EXPECT_EQ(v().GetAttr(deep)->project, 0u);

  ASSERT_TRUE(v().SetXattr(top, kCapacityXattr, "10000", 0).ok());
  EXPECT_EQ(v().GetAttr(top)->project, top);
  EXPECT_EQ(v().GetAttr(deep)->project, top);
  EXPECT_EQ(v().GetAttr(f.attr.ino)->project, top);
  EXPECT_EQ(Usage(top), kBlock) << "existing data counted once, hard links too";
  EXPECT_EQ(*v().GetXattr(top, kCapacityXattr), "10000");

  auto g = Create(deep, "g");
  EXPECT_EQ(g.attr.project, top) << "new inodes inherit";
  EXPECT_TRUE(g.handle->quota != nullptr);
  EXPECT_EQ(v().MakeNode({}, deep, "d", S_IFDIR | 0755, 0)->project, top);
  v().Release(g.handle);
  v().Release(f.handle);

  // A new capacity replaces the old; removing it lifts the limit.
  ASSERT_TRUE(v().SetXattr(top, kCapacityXattr, "4096", XATTR_REPLACE).ok());
  auto h = v().Open({}, g.attr.ino, O_WRONLY);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(Write(*h, 0, 1), -ENOSPC);
  v().Release(*h);
  ASSERT_TRUE(v().RemoveXattr(top, kCapacityXattr).ok());
  h = v().Open({}, g.attr.ino, O_WRONLY);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE((*h)->quota == nullptr);
  EXPECT_TRUE((*h)->passthrough_ok);
  v().Release(*h);
}

TEST_F(QuotaTest, CapacityValuesAndPlacesAreChecked) {
  Ino top = Mkdir(kRootIno, "top");
  for (const char* bad : {"", "1Gi", "-1", " 1", "1.5", "99999999999999999999999"}) {
    EXPECT_ERRNO(v().SetXattr(top, kCapacityXattr, bad, 0), EINVAL) << bad;
  }
  auto f = Create(top, "f");
  v().Release(f.handle);
  EXPECT_ERRNO(v().SetXattr(f.attr.ino, kCapacityXattr, "4096", 0), ENOTDIR);
  Ino inner = Mkdir(top, "inner");
  ASSERT_TRUE(v().SetXattr(inner, kCapacityXattr, "4096", 0).ok());
  EXPECT_ERRNO(v().SetXattr(top, kCapacityXattr, "4096", 0), EBUSY) << "contains a root";
  EXPECT_ERRNO(v().SetXattr(Mkdir(inner, "deeper"), kCapacityXattr, "4096", 0), EBUSY) << "inside a root";
  EXPECT_ERRNO(v().SetXattr(inner, kCapacityXattr, "8192", XATTR_CREATE), EEXIST);
  EXPECT_EQ(v().GetAttr(top)->project, 0u) << "a refused root tags nothing";
}

TEST(InodeRecordTest, ProjectsRoundTripAndOldRecordsDecode) {
  InodeRecord rec;
  rec.attr.ino = 42;
  rec.attr.mode = S_IFREG | 0644;
  rec.attr.size = 7;
  rec.attr.project = 9;
  rec.attr.generation = 0x1234567890abcdefull;
  rec.target = "t";
  std::string data = EncodeInodeRecord(rec);
  InodeRecord back;
  ASSERT_TRUE(DecodeInodeRecord(data, &back));
  EXPECT_EQ(back.attr.project, 9u);
  EXPECT_EQ(back.attr.generation, 0x1234567890abcdefull);
  EXPECT_EQ(back.target, "t");
  // A record from before generations: without the last field. Its handles
  // carried generation 1, so that is what it reads as.
  InodeRecord before_gen;
  ASSERT_TRUE(DecodeInodeRecord(std::string_view(data).substr(0, data.size() - 8), &before_gen));
  EXPECT_EQ(before_gen.attr.project, 9u);
  EXPECT_EQ(before_gen.attr.generation, 1u);
  // A record from before projects: the same bytes without the last two fields.
  InodeRecord old;
  old.attr.project = 123;
  ASSERT_TRUE(DecodeInodeRecord(std::string_view(data).substr(0, data.size() - 16), &old));
  EXPECT_EQ(old.attr.ino, 42u);
  EXPECT_EQ(old.attr.size, 7u);
  EXPECT_EQ(old.target, "t");
  EXPECT_EQ(old.attr.project, 0u);
  EXPECT_EQ(old.attr.generation, 1u);
  EXPECT_FALSE(DecodeInodeRecord(std::string_view(data).substr(0, data.size() - 3), &old)) << "torn field";
  // The kernel's root inode has generation 0: the root's record always reads so.
  rec.attr.ino = kRootIno;
  ASSERT_TRUE(DecodeInodeRecord(EncodeInodeRecord(rec), &back));
  EXPECT_EQ(back.attr.generation, 0u);
}

}  // namespace
}  // namespace tempfs
