// Vfs over a real LocalStore and the embedded metadata engine, in a private
// temp dir: data/metadata lifetime of inodes, setgid directories, names, and
// lost data (a missing data file under a file with content is EIO, never empty).
#include "vfs/vfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/memory.h"
#include "meta/meta_engine.h"
#include "meta_test_util.h"
#include "store/local_store.h"

namespace tempfs {
namespace {

using testutil::ErrName;
using testutil::PathExists;
using testutil::TempDir;

class VfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("vfs");
    ASSERT_FALSE(dir_->path().empty());
    ASSERT_NO_FATAL_FAILURE(MakeVfs());
  }
  void TearDown() override {
    vfs_.reset();
    dir_.reset();
  }
  // (Re)creates the Vfs on the same store, as a daemon restart does.
  void MakeVfs(VfsOptions options = {}) {
    vfs_.reset();
    auto store = LocalStore::Open(dir_->path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto meta = OpenMetaEngine("", dir_->path());
    ASSERT_TRUE(meta.ok()) << meta.status().ToString();
    vfs_ = std::make_unique<Vfs>(std::move(*meta), std::move(*store), options);
  }
  Vfs& v() { return *vfs_; }
  std::string DataPath(Ino ino) const { return dir_->path() + "/data/" + LocalStore::DataName(ino); }

  // Create() + write `data`; returns the open file.
  Vfs::OpenFile CreateWith(Ino parent, const std::string& name, const std::string& data, Caller c = {}) {
    auto f = v().Create(c, parent, name, 0644, O_RDWR);
    EXPECT_TRUE(f.ok()) << "Create " << name << ": " << f.status().ToString();
    if (!f.ok()) return {};
    EXPECT_EQ(pwrite(f->handle->fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    return *f;
  }
  std::vector<Ino> Orphans() {
    auto o = v().meta().Orphans();
    EXPECT_TRUE(o.ok());
    return o.ok() ? *o : std::vector<Ino>{};
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Vfs> vfs_;
};

TEST_F(VfsTest, CreateReturnsWritableFdAndSizeFollowsData) {
  Caller c{1000, 2000};
  auto f = v().Create(c, kRootIno, "f", 0640, O_RDWR);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_GE(f->handle->fd, 0);
  EXPECT_TRUE(S_ISREG(f->attr.mode));
  EXPECT_EQ(f->attr.mode & 07777, 0640u);
  EXPECT_EQ(f->attr.uid, 1000u);
  EXPECT_EQ(f->attr.gid, 2000u);
  EXPECT_EQ(f->attr.size, 0u);
  EXPECT_TRUE(PathExists(DataPath(f->attr.ino)));

  std::string data(12345, 'x');
  ASSERT_EQ(pwrite(f->handle->fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  auto a = v().GetAttr(f->attr.ino);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, data.size());
  EXPECT_GT(a->blocks, 0u);
  auto l = v().Lookup(kRootIno, "f");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->ino, f->attr.ino);
  EXPECT_EQ(l->size, data.size());
  v().Release(f->handle);
  v().Forget(f->attr.ino, 2);

  // Open again: the data is there.
  auto fd = v().Open(Caller{}, f->attr.ino, O_RDONLY);
  ASSERT_TRUE(fd.ok());
  std::string back(data.size(), '\0');
  EXPECT_EQ(pread((*fd)->fd, back.data(), back.size(), 0), static_cast<ssize_t>(data.size()));
  EXPECT_EQ(back, data);
  v().Release(*fd);
  EXPECT_TRUE(PathExists(DataPath(f->attr.ino))) << "releasing a linked file keeps it";
}

TEST_F(VfsTest, CreateExistingIsEEXISTAndLeavesFileAlone) {
  auto f = CreateWith(kRootIno, "f", "keep me");
  v().Release(f.handle);
  EXPECT_ERRNO(v().Create({}, kRootIno, "f", 0644, O_RDWR), EEXIST);
  EXPECT_EQ(v().GetAttr(f.attr.ino)->size, 7u);
  EXPECT_ERRNO(v().Create({}, 99999, "g", 0644, O_RDWR), ENOENT);
}

TEST_F(VfsTest, UnlinkedOpenFileLivesUntilReleaseAndForget) {
  std::string data = "still here after unlink";
  auto f = CreateWith(kRootIno, "f", data);  // one lookup (create) and one open
  Ino ino = f.attr.ino;
  ASSERT_TRUE(v().Unlink(kRootIno, "f").ok());
  EXPECT_ERRNO(v().Lookup(kRootIno, "f"), ENOENT);
  EXPECT_TRUE(PathExists(DataPath(ino)));
  std::string back(data.size(), '\0');
  EXPECT_EQ(pread(f.handle->fd, back.data(), back.size(), 0), static_cast<ssize_t>(data.size()));
  EXPECT_EQ(back, data);
  auto a = v().GetAttr(ino);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->nlink, 0u);
  EXPECT_EQ(a->size, data.size());
  EXPECT_EQ(Orphans(), std::vector<Ino>{ino});

  v().Release(f.handle);
  EXPECT_TRUE(PathExists(DataPath(ino))) << "the kernel still knows the inode";
  EXPECT_TRUE(v().GetAttr(ino).ok());

  v().Forget(ino, 1);
  EXPECT_FALSE(PathExists(DataPath(ino))) << "data of a forgotten unlinked file must go";
  EXPECT_ERRNO(v().GetAttr(ino), ENOENT);
  EXPECT_TRUE(Orphans().empty());
  EXPECT_EQ(v().meta().InodeCount(), 1u);
}

TEST_F(VfsTest, UnlinkedFileDroppedOnLastReleaseAfterForget) {
  auto f = CreateWith(kRootIno, "f", "data");
  Ino ino = f.attr.ino;
  ASSERT_TRUE(v().Unlink(kRootIno, "f").ok());
  v().Forget(ino, 1);
  EXPECT_TRUE(PathExists(DataPath(ino))) << "still open";
  auto fd2 = v().Open(Caller{}, ino, O_RDONLY);
  ASSERT_TRUE(fd2.ok());
  v().Release(f.handle);
  EXPECT_TRUE(PathExists(DataPath(ino))) << "one open file left";
  v().Release(*fd2);
  EXPECT_FALSE(PathExists(DataPath(ino)));
  EXPECT_ERRNO(v().GetAttr(ino), ENOENT);
  EXPECT_TRUE(Orphans().empty());
}

TEST_F(VfsTest, UnlinkOfUnreferencedFileDropsAtOnce) {
  auto f = CreateWith(kRootIno, "f", "data");
  Ino ino = f.attr.ino;
  v().Release(f.handle);
  v().Forget(ino, 1);
  ASSERT_TRUE(v().Unlink(kRootIno, "f").ok());
  EXPECT_FALSE(PathExists(DataPath(ino)));
  EXPECT_ERRNO(v().GetAttr(ino), ENOENT);
  EXPECT_TRUE(Orphans().empty());
}

TEST_F(VfsTest, HardLinkKeepsDataWhenOneNameGoes) {
  auto f = CreateWith(kRootIno, "f", "data");
  Ino ino = f.attr.ino;
  v().Release(f.handle);
  auto l = v().Link(ino, kRootIno, "g");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->nlink, 2u);
  v().Forget(ino, 2);
  ASSERT_TRUE(v().Unlink(kRootIno, "f").ok());
  EXPECT_TRUE(PathExists(DataPath(ino)));
  EXPECT_EQ(v().GetAttr(ino)->size, 4u);
  ASSERT_TRUE(v().Unlink(kRootIno, "g").ok());
  EXPECT_FALSE(PathExists(DataPath(ino)));
}

TEST_F(VfsTest, RenameOverFileDropsReplacedData) {
  auto victim = CreateWith(kRootIno, "victim", "old");
  Ino vino = victim.attr.ino;
  v().Release(victim.handle);
  v().Forget(vino, 1);
  auto src = CreateWith(kRootIno, "src", "new!");
  v().Release(src.handle);
  ASSERT_TRUE(v().Rename(kRootIno, "src", kRootIno, "victim", 0).ok());
  EXPECT_FALSE(PathExists(DataPath(vino)));
  EXPECT_ERRNO(v().GetAttr(vino), ENOENT);
  EXPECT_EQ(v().Lookup(kRootIno, "victim")->size, 4u);
  EXPECT_TRUE(Orphans().empty());
}

// Vfs::Create promises that a create whose open fails "leaves nothing
// behind": the kernel never learns of the inode, so it will never forget it.
TEST_F(VfsTest, FailedCreateLeavesNothingBehind) {
  // Make every backing-file open fail: the data subfolders are gone (the
  // store holds the data folder open, so they must go from inside it).
  auto subdirs = [&](bool make) {
    for (int i = 0; i < 256; i++) {
      char sub[3];
      snprintf(sub, sizeof sub, "%02x", i);
      std::string p = dir_->path() + "/data/" + sub;
      if (make) mkdir(p.c_str(), 0700);
      else rmdir(p.c_str());
    }
  };
  subdirs(false);
  auto f = v().Create({}, kRootIno, "f", 0644, O_RDWR);
  subdirs(true);
  ASSERT_FALSE(f.ok());
  EXPECT_ERRNO(v().Lookup(kRootIno, "f"), ENOENT);
  EXPECT_TRUE(v().ReadDir(kRootIno)->empty());
  EXPECT_TRUE(Orphans().empty()) << "the undone inode must be dropped, not left as an orphan";
  EXPECT_EQ(v().meta().InodeCount(), 1u);
}

TEST_F(VfsTest, RemovedDirectoryDroppedOnForget) {
  auto d = v().MakeNode({}, kRootIno, "d", S_IFDIR | 0755, 0);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(v().Rmdir(kRootIno, "d").ok());
  EXPECT_EQ(Orphans(), std::vector<Ino>{d->ino});
  v().Forget(d->ino, 1);
  EXPECT_TRUE(Orphans().empty());
  EXPECT_ERRNO(v().GetAttr(d->ino), ENOENT);
}

TEST_F(VfsTest, StartDropsOrphansOfPreviousRun) {
  auto f = CreateWith(kRootIno, "f", "left behind");
  Ino ino = f.attr.ino;
  v().Release(f.handle);
  auto d = v().MakeNode({}, kRootIno, "d", S_IFDIR | 0755, 0);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(v().Unlink(kRootIno, "f").ok());  // the kernel still holds a lookup
  ASSERT_TRUE(v().Rmdir(kRootIno, "d").ok());
  auto keep = CreateWith(kRootIno, "keep", "keep");
  v().Release(keep.handle);
  ASSERT_TRUE(PathExists(DataPath(ino)));

  // The daemon goes away without the kernel's forgets.
  ASSERT_NO_FATAL_FAILURE(MakeVfs());
  std::vector<Ino> orphans = Orphans();
  std::sort(orphans.begin(), orphans.end());
  EXPECT_EQ(orphans, (std::vector<Ino>{ino, d->ino}));
  EXPECT_TRUE(PathExists(DataPath(ino)));

  ASSERT_TRUE(v().Start().ok());
  EXPECT_FALSE(PathExists(DataPath(ino)));
  EXPECT_TRUE(Orphans().empty());
  EXPECT_ERRNO(v().GetAttr(ino), ENOENT);
  EXPECT_ERRNO(v().GetAttr(d->ino), ENOENT);
  EXPECT_TRUE(PathExists(DataPath(keep.attr.ino)));
  EXPECT_EQ(v().Lookup(kRootIno, "keep")->size, 4u);

  // And once more: nothing left to drop, nothing else lost.
  ASSERT_NO_FATAL_FAILURE(MakeVfs());
  ASSERT_TRUE(v().Start().ok());
  EXPECT_EQ(v().meta().InodeCount(), 2u);
}

TEST_F(VfsTest, SetgidDirectoryPassesGroupOn) {
  Caller owner{0, 50};
  auto sg = v().MakeNode(owner, kRootIno, "sg", S_IFDIR | 02775, 0);
  ASSERT_TRUE(sg.ok());
  EXPECT_EQ(sg->mode, static_cast<uint32_t>(S_IFDIR | 02775));
  EXPECT_EQ(sg->gid, 50u);

  Caller user{1000, 1000};
  auto file = v().MakeNode(user, sg->ino, "file", S_IFREG | 0644, 0);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->gid, 50u) << "files take the setgid directory's group";
  EXPECT_EQ(file->uid, 1000u);
  EXPECT_EQ(file->mode, static_cast<uint32_t>(S_IFREG | 0644)) << "files do not become setgid";

  auto sub = v().MakeNode(user, sg->ino, "sub", S_IFDIR | 0755, 0);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->gid, 50u);
  EXPECT_EQ(sub->mode, static_cast<uint32_t>(S_IFDIR | S_ISGID | 0755)) << "subdirectories inherit S_ISGID";

  auto deeper = v().MakeNode(user, sub->ino, "deeper", S_IFREG | 0600, 0);
  ASSERT_TRUE(deeper.ok());
  EXPECT_EQ(deeper->gid, 50u) << "inheritance continues below";

  auto link = v().MakeNode(user, sg->ino, "link", S_IFLNK | 0777, 0, "file");
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->gid, 50u);

  auto created = v().Create(user, sg->ino, "created", 0600, O_RDWR);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->attr.gid, 50u);
  v().Release(created->handle);

  // Without setgid the caller's group is used.
  auto plain = v().MakeNode(owner, kRootIno, "plain", S_IFDIR | 0775, 0);
  ASSERT_TRUE(plain.ok());
  auto pf = v().MakeNode(user, plain->ino, "f", S_IFREG | 0644, 0);
  ASSERT_TRUE(pf.ok());
  EXPECT_EQ(pf->gid, 1000u);
  auto pd = v().MakeNode(user, plain->ino, "d", S_IFDIR | 0755, 0);
  ASSERT_TRUE(pd.ok());
  EXPECT_EQ(pd->gid, 1000u);
  EXPECT_EQ(pd->mode & S_ISGID, 0u);
  // The group is read from the directory as it is now.
  SetAttrRequest req;
  req.valid = SetAttrRequest::kGid;
  req.gid = 777;
  ASSERT_TRUE(v().SetAttr(sg->ino, req, -1).ok());
  auto later = v().MakeNode(user, sg->ino, "later", S_IFREG | 0644, 0);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->gid, 777u);
}

TEST_F(VfsTest, ValidateName) {
  EXPECT_TRUE(ValidateName("a").ok());
  EXPECT_TRUE(ValidateName(std::string(255, 'n')).ok());
  EXPECT_TRUE(ValidateName("...").ok());
  EXPECT_TRUE(ValidateName(".hidden").ok());
  EXPECT_ERRNO(ValidateName(std::string(256, 'n')), ENAMETOOLONG);
  EXPECT_ERRNO(ValidateName(std::string(4096, 'n')), ENAMETOOLONG);
  EXPECT_ERRNO(ValidateName("a/b"), EINVAL);
  EXPECT_ERRNO(ValidateName("/"), EINVAL);
  EXPECT_ERRNO(ValidateName("."), EINVAL);
  EXPECT_ERRNO(ValidateName(".."), EINVAL);
  EXPECT_ERRNO(ValidateName(std::string("a\0b", 3)), EINVAL);
  EXPECT_FALSE(ValidateName("").ok());
}

TEST_F(VfsTest, NameLengthLimitsOnOperations) {
  std::string ok(255, 'n'), longer(256, 'n');
  EXPECT_TRUE(v().MakeNode({}, kRootIno, ok, S_IFREG | 0644, 0).ok());
  EXPECT_TRUE(v().Lookup(kRootIno, ok).ok());
  EXPECT_ERRNO(v().MakeNode({}, kRootIno, longer, S_IFREG | 0644, 0), ENAMETOOLONG);
  EXPECT_ERRNO(v().MakeNode({}, kRootIno, "a/b", S_IFDIR | 0755, 0), EINVAL);
  EXPECT_ERRNO(v().Create({}, kRootIno, longer, 0644, O_RDWR), ENAMETOOLONG);
  EXPECT_ERRNO(v().Lookup(kRootIno, longer), ENAMETOOLONG);
  EXPECT_ERRNO(v().Unlink(kRootIno, longer), ENAMETOOLONG);
  EXPECT_ERRNO(v().Rmdir(kRootIno, longer), ENAMETOOLONG);
  EXPECT_ERRNO(v().Rename(kRootIno, ok, kRootIno, longer, 0), ENAMETOOLONG);
  auto a = v().Lookup(kRootIno, ok);
  ASSERT_TRUE(a.ok());
  EXPECT_ERRNO(v().Link(a->ino, kRootIno, longer), ENAMETOOLONG);
  EXPECT_EQ(v().ReadDir(kRootIno)->size(), 1u);
}

TEST_F(VfsTest, SetAttrSizeTruncatesBackingFile) {
  auto f = CreateWith(kRootIno, "f", std::string(10000, 'd'));
  Ino ino = f.attr.ino;
  v().Release(f.handle);
  SetAttrRequest req;
  req.valid = SetAttrRequest::kSize;
  req.size = 100;
  auto r = v().SetAttr(ino, req, -1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size, 100u);
  struct stat st;
  ASSERT_EQ(stat(DataPath(ino).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 100);
  EXPECT_EQ(v().GetAttr(ino)->size, 100u);

  // Through an open file, growing.
  auto fd = v().Open(Caller{}, ino, O_RDWR);
  ASSERT_TRUE(fd.ok());
  req.size = 50000;
  r = v().SetAttr(ino, req, (*fd)->fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size, 50000u);
  ASSERT_EQ(stat(DataPath(ino).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 50000);
  char c = 'x';
  EXPECT_EQ(pread((*fd)->fd, &c, 1, 99), 1);
  EXPECT_EQ(c, 'd');
  EXPECT_EQ(pread((*fd)->fd, &c, 1, 100), 1);
  EXPECT_EQ(c, '\0') << "bytes past the old end read as zeros";
  v().Release(*fd);

  // To zero.
  req.size = 0;
  ASSERT_TRUE(v().SetAttr(ino, req, -1).ok());
  EXPECT_EQ(v().GetAttr(ino)->size, 0u);
}

TEST_F(VfsTest, SetAttrSizeOnNonFiles) {
  auto d = v().MakeNode({}, kRootIno, "d", S_IFDIR | 0755, 0);
  auto s = v().MakeNode({}, kRootIno, "s", S_IFLNK | 0777, 0, "target");
  ASSERT_TRUE(d.ok() && s.ok());
  SetAttrRequest req;
  req.valid = SetAttrRequest::kSize;
  req.size = 0;
  EXPECT_ERRNO(v().SetAttr(d->ino, req, -1), EISDIR);
  EXPECT_ERRNO(v().SetAttr(s->ino, req, -1), EINVAL);
  EXPECT_ERRNO(v().SetAttr(4242, req, -1), ENOENT);
}

// chown of any non-directory drops S_ISUID, and S_ISGID where group execute
// is set (pjdfstest chown/00.t, Linux's chown_common); directories keep both.
TEST_F(VfsTest, ChownDropsSetIdBitsOfEveryNonDirectory) {
  struct Case {
    const char* name;
    uint32_t type;
    uint32_t mode;
    uint32_t after;
  };
  const Case cases[] = {
      {"reg", S_IFREG, 06555, 0555},        {"fifo", S_IFIFO, 06555, 0555},
      {"sock", S_IFSOCK, 06555, 0555},      {"chr", S_IFCHR, 06555, 0555},
      {"blk", S_IFBLK, 06555, 0555},        {"fifo_sgid_noexec", S_IFIFO, 06545, 02545},
      {"chr_suid", S_IFCHR, 04755, 0755},   {"dir", S_IFDIR, 06555, 06555},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto n = v().MakeNode({}, kRootIno, c.name, c.type | c.mode, c.type == S_IFCHR ? 0x103 : 0);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(n->mode & 07777, c.mode);
    for (uint32_t valid : {SetAttrRequest::kUid | SetAttrRequest::kGid, uint32_t{SetAttrRequest::kGid}}) {
      SetAttrRequest mode;
      mode.valid = SetAttrRequest::kMode;
      mode.mode = c.mode;
      ASSERT_TRUE(v().SetAttr(n->ino, mode, -1).ok());
      SetAttrRequest req;
      req.valid = valid;
      req.uid = 65534;
      req.gid = 65533;
      auto r = v().SetAttr(n->ino, req, -1);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->mode, c.type | c.after) << "valid=" << valid;
      auto stored = v().GetAttr(n->ino);
      ASSERT_TRUE(stored.ok());
      EXPECT_EQ(stored->mode, c.type | c.after) << "valid=" << valid;
      EXPECT_EQ(stored->gid, 65533u);
    }
  }
}

// After many inodes are gone their tables give their buckets back (an
// unordered_map keeps them on erase), so `rm -rf` of a large tree lets the
// daemon shrink again.
TEST_F(VfsTest, TablesShrinkWhenManyInodesGo) {
  constexpr int kInodes = 6000;
  const VfsTables start = v().Tables();
  std::vector<Ino> inos;
  for (int i = 0; i < kInodes; i++) {
    auto a = v().MakeNode({}, kRootIno, "n" + std::to_string(i), S_IFREG | 0644, 0);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    inos.push_back(a->ino);
  }
  const VfsTables peak = v().Tables();
  EXPECT_EQ(peak.kernel_inodes, start.kernel_inodes + kInodes);
  EXPECT_EQ(peak.meta_inodes, start.meta_inodes + kInodes);
  EXPECT_GE(peak.kernel_inode_buckets, static_cast<uint64_t>(kInodes));
  EXPECT_GE(peak.meta_buckets, static_cast<uint64_t>(kInodes));
  for (int i = 0; i < kInodes; i++) {
    ASSERT_TRUE(v().Unlink(kRootIno, "n" + std::to_string(i)).ok());
    v().Forget(inos[i], 1);  // as the kernel does once the name is gone
  }
  const VfsTables after = v().Tables();
  EXPECT_EQ(after.kernel_inodes, start.kernel_inodes);
  EXPECT_EQ(after.meta_inodes, start.meta_inodes);
  EXPECT_LE(after.kernel_inode_buckets, 2 * kMinShrinkBuckets);
  EXPECT_LE(after.meta_buckets, 2 * kMinShrinkBuckets);
}

TEST_F(VfsTest, SetAttrTimesGoToTheData) {
  auto f = CreateWith(kRootIno, "f", "x");
  v().Release(f.handle);
  SetAttrRequest req;
  req.valid = SetAttrRequest::kAtime | SetAttrRequest::kMtime;
  req.atime_ns = 1'000'000'000LL * 1000 + 5;
  req.mtime_ns = 1'000'000'000LL * 2000 + 7;
  auto r = v().SetAttr(f.attr.ino, req, -1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->atime_ns, req.atime_ns);
  EXPECT_EQ(r->mtime_ns, req.mtime_ns);
  auto a = v().GetAttr(f.attr.ino);
  EXPECT_EQ(a->mtime_ns, req.mtime_ns);
}

TEST_F(VfsTest, StatFs) {
  auto s = v().StatFs();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->f_namemax, 255u);
  EXPECT_GT(s->f_blocks, 0u);
  EXPECT_GE(s->f_files, v().meta().InodeCount());
}

TEST_F(VfsTest, WritebackCacheOpensWriteOnlyAsReadWriteWithoutAppend) {
  auto f = CreateWith(kRootIno, "f", "abc");
  v().Release(f.handle);
  auto plain = v().Open(Caller{}, f.attr.ino, O_WRONLY | O_APPEND);
  ASSERT_TRUE(plain.ok());
  int fl = fcntl((*plain)->fd, F_GETFL);
  EXPECT_EQ(fl & O_ACCMODE, O_WRONLY);
  EXPECT_NE(fl & O_APPEND, 0);
  v().Release(*plain);

  v().set_writeback_cache(true);
  auto wb = v().Open(Caller{}, f.attr.ino, O_WRONLY | O_APPEND);
  ASSERT_TRUE(wb.ok());
  fl = fcntl((*wb)->fd, F_GETFL);
  EXPECT_EQ(fl & O_ACCMODE, O_RDWR);
  EXPECT_EQ(fl & O_APPEND, 0);
  v().Release(*wb);
}

TEST_F(VfsTest, XattrsAndSymlinksPassThrough) {
  auto s = v().MakeNode({}, kRootIno, "s", S_IFLNK | 0777, 0, "../t");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*v().ReadLink(s->ino), "../t");
  ASSERT_TRUE(v().SetXattr(s->ino, "user.k", "v", 0).ok());
  EXPECT_EQ(*v().GetXattr(s->ino, "user.k"), "v");
  EXPECT_EQ(v().ListXattr(s->ino)->size(), 1u);
  ASSERT_TRUE(v().RemoveXattr(s->ino, "user.k").ok());
  EXPECT_ERRNO(v().GetXattr(s->ino, "user.k"), ENODATA);
  ASSERT_TRUE(v().Fsync(nullptr, false).ok());
}

// Finding 2 of issue 10: a new inode must never see bytes it did not write,
// whatever data file a crash or a metadata loss left under its number.
class VfsStaleData : public VfsTest {
 protected:
  // Leaves `bytes` in the data file of `ino`, as a lost file's data.
  void PlantData(Ino ino, const std::string& bytes) {
    int fd = open(DataPath(ino).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0) << DataPath(ino);
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    close(fd);
  }
  // Reads the whole file `ino` through an open, as an application would.
  std::string ReadThrough(Ino ino) {
    auto h = v().Open(Caller{}, ino, O_RDONLY);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    if (!h.ok()) return "<open failed>";
    std::string out(64 << 10, '\0');
    ssize_t n = pread((*h)->fd, out.data(), out.size(), 0);
    v().Release(*h);
    out.resize(n > 0 ? n : 0);
    return out;
  }
  // The number the next new inode gets (made and removed now).
  Ino NextIno() {
    auto a = v().MakeNode(Caller{}, kRootIno, "probe", S_IFDIR | 0755, 0);
    EXPECT_TRUE(a.ok());
    EXPECT_TRUE(v().Rmdir(kRootIno, "probe").ok());
    v().Forget(a->ino, 1);
    return a->ino + 1;
  }
};

TEST_F(VfsStaleData, MknodOfARegularFileStartsEmpty) {
  Ino next = NextIno();
  PlantData(next, std::string(17 << 10, 's'));
  auto a = v().MakeNode(Caller{}, kRootIno, "new", S_IFREG | 0644, 0);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->ino, next) << "the test plants data under the wrong number";
  EXPECT_EQ(ReadThrough(a->ino), "");
  auto attr = v().GetAttr(a->ino);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, 0u);
}

TEST_F(VfsStaleData, CreateStartsEmptyAndCarriesNoStaleXattr) {
  Ino next = NextIno();
  PlantData(next, std::string(17 << 10, 's'));
  ASSERT_EQ(setxattr(DataPath(next).c_str(), "user.stale", "1", 1, 0), 0);
  auto f = v().Create(Caller{}, kRootIno, "new", 0644, O_RDWR);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_EQ(f->attr.ino, next);
  EXPECT_EQ(f->attr.size, 0u);
  v().Release(f->handle);
  EXPECT_EQ(ReadThrough(next), "");
  EXPECT_LT(getxattr(DataPath(next).c_str(), "user.stale", nullptr, 0), 0) << "the old data file was reused";
}

TEST_F(VfsStaleData, StartRemovesDataFilesNoInodeOwns) {
  auto kept = CreateWith(kRootIno, "kept", "mine");
  v().Release(kept.handle);
  PlantData(kept.attr.ino + 1000, "lost file's bytes");
  ASSERT_NO_FATAL_FAILURE(MakeVfs());
  ASSERT_TRUE(v().Start().ok());
  EXPECT_FALSE(PathExists(DataPath(kept.attr.ino + 1000)));
  EXPECT_TRUE(PathExists(DataPath(kept.attr.ino)));
  EXPECT_EQ(ReadThrough(kept.attr.ino), "mine");
  // And the next inode numbers stay above the number the stray file had.
  auto a = v().MakeNode(Caller{}, kRootIno, "after", S_IFREG | 0644, 0);
  ASSERT_TRUE(a.ok());
  EXPECT_GT(a->ino, kept.attr.ino + 1000);
}

// Lost data: a file whose record says it holds data but whose data file is
// gone (removed by hand, a wiped store) opens with EIO, every time, and never
// reads as an empty file; an empty file without a data file opens empty.

// create, write `data`, close (flush and release), as an application does.
Ino WriteClosed(Vfs& v, const std::string& name, const std::string& data) {
  auto f = v.Create({}, kRootIno, name, 0644, O_RDWR);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return 0;
  EXPECT_EQ(pwrite(f->handle->fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  EXPECT_TRUE(v.Flush(f->handle).ok());
  v.Release(f->handle);
  return f->attr.ino;
}

std::string ReadClosed(Vfs& v, Ino ino) {
  auto h = v.Open({}, ino, O_RDONLY);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  if (!h.ok()) return "<open failed>";
  std::string out(1 << 16, '\0');
  ssize_t n = pread((*h)->fd, out.data(), out.size(), 0);
  v.Release(*h);
  out.resize(n < 0 ? 0 : n);
  return out;
}

TEST_F(VfsTest, MissingDataFileOfWrittenFileIsEIOEveryTimeAndNothingIsCreated) {
  Ino ino = WriteClosed(v(), "f", std::string(5000, 'd'));
  ASSERT_NE(ino, 0u);
  ASSERT_NO_FATAL_FAILURE(MakeVfs());  // a restart: nothing of the data is in memory
  ASSERT_EQ(unlink(DataPath(ino).c_str()), 0);
  for (int flags : {O_RDONLY, O_RDWR, O_WRONLY | O_APPEND, O_RDONLY}) {
    auto h = v().Open({}, ino, flags);
    ASSERT_FALSE(h.ok()) << "flags " << flags << ": a lost file opened (it would read as empty)";
    EXPECT_EQ(h.err(), EIO);
    EXPECT_NE(h.status().ToString().find(std::to_string(ino)), std::string::npos) << h.status().ToString();
    EXPECT_NE(h.status().ToString().find(DataPath(ino)), std::string::npos) << h.status().ToString();
    EXPECT_FALSE(PathExists(DataPath(ino))) << "an empty data file would make it look valid later";
  }
  // Growing it would make zeros of its data.
  SetAttrRequest req;
  req.valid = SetAttrRequest::kSize;
  req.size = 100;
  EXPECT_ERRNO(v().SetAttr(ino, req, -1), EIO);
  EXPECT_FALSE(PathExists(DataPath(ino)));
  // Still lost after another restart.
  ASSERT_NO_FATAL_FAILURE(MakeVfs());
  EXPECT_ERRNO(v().Open({}, ino, O_RDONLY), EIO);
  // The name still stats (with the recorded size) and goes away.
  auto a = v().Lookup(kRootIno, "f");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size, 5000u);
  v().Forget(ino, 1);
  ASSERT_TRUE(v().Rename(kRootIno, "f", kRootIno, "g", 0).ok());
  ASSERT_TRUE(v().Unlink(kRootIno, "g").ok());
  EXPECT_ERRNO(v().Lookup(kRootIno, "g"), ENOENT);
  EXPECT_ERRNO(v().GetAttr(ino), ENOENT);
}

TEST_F(VfsTest, LostFileMayBeEmptiedOnPurpose) {
  Ino ino = WriteClosed(v(), "f", "content");
  ASSERT_EQ(unlink(DataPath(ino).c_str()), 0);
  // O_TRUNC (": > f") and truncate to 0 drop the content anyway: they work.
  auto h = v().Open({}, ino, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(pwrite((*h)->fd, "new", 3, 0), 3);
  ASSERT_TRUE(v().Flush(*h).ok());
  v().Release(*h);
  EXPECT_EQ(ReadClosed(v(), ino), "new");
  ASSERT_EQ(unlink(DataPath(ino).c_str()), 0);
  SetAttrRequest req;
  req.valid = SetAttrRequest::kSize;
  req.size = 0;
  auto r = v().SetAttr(ino, req, -1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ReadClosed(v(), ino), "");
}

TEST_F(VfsTest, EmptyFileWithoutDataFileOpensEmptyAsBefore) {
  // A record made just before a crash that came before the data file.
  Ino ino = WriteClosed(v(), "empty", "");
  ASSERT_EQ(unlink(DataPath(ino).c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(MakeVfs());
  EXPECT_EQ(ReadClosed(v(), ino), "");
  auto h = v().Open({}, ino, O_RDWR);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(pwrite((*h)->fd, "abc", 3, 0), 3);
  ASSERT_TRUE(v().Flush(*h).ok());
  v().Release(*h);
  EXPECT_EQ(ReadClosed(v(), ino), "abc");
}

TEST_F(VfsTest, CloseRecordsSizeSoThatATruncatedToZeroFileIsNotLost) {
  Ino ino = WriteClosed(v(), "f", "some data");
  EXPECT_EQ(v().meta().GetAttr(ino)->size, 9u) << "the record must know the file holds data";
  auto a = v().GetAttr(ino);
  ASSERT_TRUE(a.ok());
  EXPECT_LE(a->ctime_ns, a->mtime_ns) << "recording the size is no change of the inode";
  // Emptied through an open with O_TRUNC and closed: the record follows.
  auto h = v().Open({}, ino, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(v().Flush(*h).ok());
  v().Release(*h);
  EXPECT_EQ(v().meta().GetAttr(ino)->size, 0u);
  // Appends to a file that already holds data need no record each time.
  Ino other = WriteClosed(v(), "g", "x");
  uint64_t version = v().meta().GetAttr(other)->version;
  h = v().Open({}, other, O_WRONLY | O_APPEND);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(pwrite((*h)->fd, "yz", 2, 1), 2);
  v().Release(*h);
  EXPECT_EQ(v().meta().GetAttr(other)->version, version) << "a record per append";
  ASSERT_EQ(unlink(DataPath(ino).c_str()), 0);
  EXPECT_EQ(ReadClosed(v(), ino), "");
}

TEST_F(VfsTest, ClusterOwnerAnswersPeersEIOForItsLostFile) {
  VfsOptions o;
  o.cluster.self = 1;  // no transport: this node owns every file it writes
  ASSERT_NO_FATAL_FAILURE(MakeVfs(o));
  Ino ino = WriteClosed(v(), "f", std::string(3000, 'c'));
  auto a = v().meta().GetAttr(ino);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->owner, 1u);
  auto served = v().OpenForPeer(ino, a->version);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  EXPECT_EQ(served->second, 3000u);
  close(served->first);
  ASSERT_EQ(unlink(DataPath(ino).c_str()), 0);
  // Never an empty stream that would pass for the content.
  served = v().OpenForPeer(ino, a->version);
  ASSERT_FALSE(served.ok());
  EXPECT_EQ(served.err(), EIO) << served.status().ToString();
  EXPECT_ERRNO(v().Open({}, ino, O_RDONLY), EIO);
  EXPECT_FALSE(PathExists(DataPath(ino)));
  ASSERT_TRUE(v().Unlink(kRootIno, "f").ok());
}

}  // namespace
}  // namespace tempfs
