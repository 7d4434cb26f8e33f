// Fetch: a copy of another node's file, with a transport that answers from
// memory at once, so the copy can be complete before anyone reads it.
#include "vfs/fetch.h"

#include <unistd.h>
#include <xxhash.h>

#include <string>

#include <gtest/gtest.h>

#include "meta_test_util.h"

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

// A reader that asks for the copy only after it is complete (renamed into
// place) still gets it: the copy's descriptor does not depend on its name.
TEST(FetchTest, ReadersOpeningAfterTheCopyCompletedGetIt) {
  TempDir dir("fetch");
  auto store = LocalStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  const std::string content(4096 + 123, 'x');
  MemoryPeer peer(content);
  Attr attr;
  attr.ino = 42;
  attr.mode = S_IFREG | 0644;
  attr.size = content.size();
  attr.version = 3;
  attr.owner = 2;
  attr.checksum = XXH64(content.data(), content.size(), 0);
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

}  // namespace
}  // namespace tempfs
