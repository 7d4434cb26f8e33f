// Writes through the daemon on a full store (issue 10, finding 4): a short
// write of the data file is continued, and data that cannot be stored is an
// errno, never a short count (the kernel's writeback drops the rest of a
// short write without telling anyone). The store's Env is a FaultEnv.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "meta/meta_engine.h"
#include "meta_test_util.h"
#include "store/local_store.h"
#include "support/fault_env.h"
#include "vfs/quota.h"
#include "vfs/vfs.h"

namespace tempfs {
namespace {

using testing::FaultEnv;
using testutil::TempDir;

class VfsFullTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(MakeVfs(false)); }
  void TearDown() override {
    Close();
    vfs_.reset();
  }
  // (Re)creates the Vfs on the same store, with a new open file `name`.
  void MakeVfs(bool writeback, const std::string& name = "f") {
    auto store = LocalStore::Open(dir_.path(), &env_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto meta = OpenMetaEngine("", dir_.path());
    ASSERT_TRUE(meta.ok()) << meta.status().ToString();
    VfsOptions o;
    o.writeback_cache = writeback;
    vfs_ = std::make_unique<Vfs>(std::move(*meta), std::move(*store), o);
    auto f = vfs_->Create({}, kRootIno, name, 0644, O_RDWR);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    file_ = *f;
  }
  void Close() {
    if (file_.handle != nullptr) vfs_->Release(file_.handle);
    file_.handle = nullptr;
  }
  std::string Stored() {
    auto r = ReadWholeFile(Env::Default(), dir_.path() + "/data/" + LocalStore::DataName(file_.attr.ino));
    return r.ok() ? *r : "<" + r.status().ToString() + ">";
  }

  TempDir dir_{"vfsfull"};
  FaultEnv env_;
  std::unique_ptr<Vfs> vfs_;
  Vfs::OpenFile file_;
};

TEST_F(VfsFullTest, ShortWritesOfTheDataFileAreContinued) {
  const std::string data = std::string(1 << 20, 'a') + "tail";
  env_.ShortWrites(4096, "/data/");
  auto n = vfs_->Write(file_.handle, 0, data);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, data.size());
  EXPECT_GT(env_.writes(), 256) << "the write did not go through the store's Env";
  EXPECT_TRUE(Stored() == data) << "stored " << Stored().size() << " bytes of " << data.size();
}

TEST_F(VfsFullTest, DataThatDoesNotFitIsEnospcNotAShortCount) {
  const std::string data(1 << 20, 'b');
  env_.NoSpaceAfter(1036288, "/data/");  // what the real store took in the report
  auto n = vfs_->Write(file_.handle, 0, data);
  EXPECT_FALSE(n.ok()) << "a write that stored " << Stored().size() << " of " << data.size() << " bytes returned "
                       << (n.ok() ? std::to_string(*n) : "");
  if (!n.ok()) {
    EXPECT_EQ(n.err(), ENOSPC);
  }
  // Later writes fail too, and nothing that was reported written is lost.
  env_.Reset();
  env_.NoSpaceAfter(0, "/data/");
  EXPECT_EQ(vfs_->Write(file_.handle, 1 << 20, "x").status().err(), ENOSPC);
  // Room again: the same write succeeds whole.
  env_.Reset();
  n = vfs_->Write(file_.handle, 0, data);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, data.size());
  EXPECT_TRUE(Stored() == data);
}

// With the writeback cache the kernel does not retry the rest of a short
// write: a capacity limit that takes only part of a write must say ENOSPC.
TEST_F(VfsFullTest, WritebackWriteBeyondCapacityIsEnospcNotShort) {
  Close();
  vfs_.reset();
  ASSERT_NO_FATAL_FAILURE(MakeVfs(true, "f2"));
  auto vol = vfs_->MakeNode({}, kRootIno, "vol", S_IFDIR | 0777, 0);
  ASSERT_TRUE(vol.ok());
  ASSERT_TRUE(vfs_->SetXattr(vol->ino, kCapacityXattr, std::to_string(2 * kQuotaBlock), 0).ok());
  auto f = vfs_->Create({}, vol->ino, "g", 0644, O_RDWR);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto n = vfs_->Write(f->handle, 0, std::string(3 * kQuotaBlock, 'c'));
  EXPECT_FALSE(n.ok()) << "short count " << (n.ok() ? std::to_string(*n) : "") << " the kernel would drop";
  if (!n.ok()) {
    EXPECT_EQ(n.err(), ENOSPC);
  }
  vfs_->Release(f->handle);
}

}  // namespace
}  // namespace tempfs
