// Fetch: a copy of another node's file, with a transport that answers from
// memory at once, so the copy can be complete before anyone reads it.
#include "vfs/fetch.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <memory>
#include <string>

#include "meta_test_util.h"
#include "support/fault_env.h"

namespace tempfs {
namespace {

using testutil::TempDir;

class MemoryPeer final : public PeerTransport {
 public:
  explicit MemoryPeer(std::string content) : content_(std::move(content)) {}
  Status Fetch(uint32_t, Ino, uint64_t, uint64_t offset, uint64_t length, const Sink& sink) override {
    if (offset + length > content_.size()) return Status::Err(ESTALE);
    return sink(content_.data() + offset, length);
  }
  std::string NodeName(uint32_t node) override { return "#" + std::to_string(node); }
  Status Adopt(uint32_t, Ino, uint64_t) override { return Status::Err(ENOSYS); }
  Result<std::vector<uint32_t>> LiveNodes() override { return std::vector<uint32_t>{}; }

 private:
  std::string content_;
};

// What the namespace says of `content`, owned by node 2.
Attr RemoteAttr(Ino ino, uint64_t version, const std::string& content) {
  Attr attr;
  attr.ino = ino;
  attr.mode = S_IFREG | 0644;
  attr.size = content.size();
  attr.version = version;
  attr.owner = 2;
  attr.checksum = XXH64(content.data(), content.size(), 0);
  return attr;
}

// A reader that asks for the copy only after it is complete (renamed into
// place) still gets it: the copy's descriptor does not depend on its name.
TEST(FetchTest, ReadersOpeningAfterTheCopyCompletedGetIt) {
  TempDir dir("fetch");
  auto store = LocalStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  const std::string content(4096 + 123, 'x');
  MemoryPeer peer(content);
  Attr attr = RemoteAttr(42, 3, content);
  auto f = std::make_shared<Fetch>(**store, peer, attr, [](const Fetch&) {});
  ASSERT_TRUE(f->Start().ok());
  ASSERT_TRUE(f->WaitDone(std::chrono::seconds(10)).ok());
  ASSERT_TRUE(f->finished());
  auto lv = (*store)->LocalVersion(attr.ino);
  ASSERT_TRUE(lv.ok());
  EXPECT_EQ(*lv, attr.version) << "the copy was not renamed into place";

  auto fd = f->OpenForRead();
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  std::string got(content.size(), '\0');
  EXPECT_EQ(pread(*fd, got.data(), got.size(), 0), static_cast<ssize_t>(content.size()));
  EXPECT_TRUE(got == content);
  close(*fd);
}

// The copy is written through the store's Env: short writes are continued,
// and a store that fills up ends the copy (it bypassed the Env, and would
// have spun on a write that stores nothing; issue 10, finding 4).
class FetchFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = LocalStore::Open(dir_.path(), &env_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }
  Status CopyAll() {
    auto f = std::make_shared<Fetch>(*store_, peer_, attr_, [](const Fetch&) {});
    TEMPFS_RETURN_IF_ERROR(f->Start());
    return f->WaitDone(std::chrono::seconds(10));
  }

  TempDir dir_{"fetchfull"};
  testing::FaultEnv env_;
  std::unique_ptr<LocalStore> store_;
  const std::string content_ = std::string(100000, 'y') + "end";
  MemoryPeer peer_{content_};
  Attr attr_ = RemoteAttr(43, 5, content_);
};

TEST_F(FetchFullTest, ShortWritesOfTheCopyAreContinued) {
  env_.ShortWrites(1000, ".part");
  Status st = CopyAll();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_GT(env_.writes(), 100) << "the copy was not written through the store's Env";
  auto got = ReadWholeFile(Env::Default(), dir_.path() + "/data/" + LocalStore::DataName(attr_.ino));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == content_) << "copy has " << got->size() << " bytes";
}

TEST_F(FetchFullTest, FullStoreEndsTheCopyWithEnospc) {
  env_.NoSpaceAfter(4096, ".part");
  // Readers of a copy that failed get EIO; the reason is kept in the message.
  Status st = CopyAll();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find(strerror(ENOSPC)), std::string::npos) << st.ToString();
  auto lv = store_->LocalVersion(attr_.ino);
  ASSERT_TRUE(lv.ok());
  EXPECT_NE(*lv, attr_.version) << "a copy that did not fit was put in place";
}

}  // namespace
}  // namespace tempfs
