// The Redis engine against a real redis-server (testutil::TestRedis):
//
//   - namespace identity: a new store with an empty Redis just works and
//     records the namespace; a Redis flushed under a running engine fences
//     it (EIO, never ENOENT; nothing written to Redis, nothing removed by
//     the garbage collector); opening again is refused with a message that
//     says what to do, as is a foreign namespace; --join-new-namespace
//     joins and sets the old data aside;
//   - node registry: the number must be the one the store recorded, a live
//     heartbeat of another store is refused, this store's own is taken
//     over, heartbeats stop when the namespace is gone;
//   - consistency: a name removed by another client between a
//     transaction's reads (through the engine's read hook, and by a
//     concurrent churner) gives ENOENT, never EIO.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "cluster/registry.h"
#include "meta/namespace_identity.h"
#include "meta/redis_meta.h"
#include "meta_test_util.h"
#include "store/local_store.h"
#include "vfs/vfs.h"

namespace tempfs {
namespace {

using testutil::ErrName;
using testutil::PathExists;
using testutil::TempDir;
using testutil::TestRedis;

NewNode Node(uint32_t mode) {
  NewNode n;
  n.mode = mode;
  return n;
}

class RedisNamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRedis::Get().unavailable().empty()) GTEST_SKIP() << TestRedis::Get().unavailable();
    TestRedis::Get().Wipe();
  }
  void TearDown() override {
    if (TestRedis::Get().unavailable().empty()) TestRedis::Get().Wipe();
  }
  static Result<std::unique_ptr<RedisMeta>> Open(const std::string& store, bool join_new = false) {
    MetaOpenOptions o;
    o.join_new_namespace = join_new;
    return RedisMeta::Open(TestRedis::Get().uri(), std::chrono::seconds(5), store, o);
  }
  static RedisClient Client() {
    return RedisClient(*RedisAddress::Parse(TestRedis::Get().uri()), std::chrono::seconds(5));
  }
  static long long DbSize() {
    auto r = Client().Command({"DBSIZE"});
    return r.ok() ? r->integer : -1;
  }
  // A Vfs of node 1 (cluster mode: the background pass runs) over a store in
  // `dir` and this Redis, started; null if any step failed.
  static std::unique_ptr<Vfs> ClusterVfs(const std::string& dir) {
    auto store = LocalStore::Open(dir);
    auto meta = Open(dir);
    if (!store.ok() || !meta.ok()) return nullptr;
    VfsOptions vo;
    vo.cluster.self = 1;
    auto v = std::make_unique<Vfs>(std::move(*meta), std::move(*store), vo);
    if (!v->Start().ok()) return nullptr;
    return v;
  }
  static std::string RedisNamespace() {
    auto r = Client().Command({"GET", "tfs:namespace"});
    return r.ok() && !r->nil() ? r->str : "";
  }
};

TEST_F(RedisNamespaceTest, NewStoreAndEmptyRedisJustWorkAndRecordTheNamespace) {
  TempDir store("ns");
  auto m = Open(store.path());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  NamespaceState s = (*m)->Namespace();
  EXPECT_TRUE(s.intact);
  EXPECT_EQ(s.id.size(), 32u);
  EXPECT_EQ(s.id, RedisNamespace());
  auto rec = ReadStoreIdentity(store.path());
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->ns, s.id);
  EXPECT_EQ((*rec)->store_id.size(), 32u);
  auto a = (*m)->Create(kRootIno, "d", Node(S_IFDIR | 0755));
  ASSERT_TRUE(a.ok());
  m->reset();
  // Opening again: same namespace, same record, the namespace is there.
  auto again = Open(store.path());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->Namespace().id, s.id);
  EXPECT_TRUE((*again)->Lookup(kRootIno, "d").ok());
  // A second store joins the same namespace.
  TempDir other("ns");
  auto m2 = Open(other.path());
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  EXPECT_EQ((*m2)->Namespace().id, s.id);
}

TEST_F(RedisNamespaceTest, FlushedRedisFencesARunningEngineWithEioAndWritesNothing) {
  TempDir store("ns");
  auto m = Open(store.path());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto f = (*m)->Create(kRootIno, "f", Node(S_IFREG | 0644));
  ASSERT_TRUE(f.ok());
  auto orphan = (*m)->Create(kRootIno, "o", Node(S_IFREG | 0644));
  ASSERT_TRUE(orphan.ok());
  ASSERT_TRUE((*m)->Unlink(kRootIno, "o").ok());

  TestRedis::Get().Wipe();  // FLUSHDB: the namespace is gone
  // Never ENOENT: a caller would take every local file for deleted.
  EXPECT_ERRNO((*m)->GetAttr(f->ino), EIO);
  EXPECT_ERRNO((*m)->Lookup(kRootIno, "f"), EIO);
  EXPECT_ERRNO((*m)->ReadDir(kRootIno), EIO);
  EXPECT_ERRNO((*m)->Orphans(), EIO);
  EXPECT_ERRNO((*m)->Create(kRootIno, "g", Node(S_IFREG | 0644)), EIO);
  EXPECT_ERRNO((*m)->Drop(orphan->ino), EIO);
  NamespaceState s = (*m)->Namespace();
  EXPECT_FALSE(s.intact);
  EXPECT_NE(s.problem.find("lost namespace " + s.id), std::string::npos) << s.problem;
  EXPECT_NE(s.problem.find("--join-new-namespace"), std::string::npos) << s.problem;
  auto st = (*m)->GetAttr(f->ino);
  EXPECT_NE(st.status().message().find("fenced"), std::string::npos) << st.status().ToString();
  EXPECT_EQ(DbSize(), 0) << "a fenced engine wrote to the empty Redis";
}

TEST_F(RedisNamespaceTest, OpeningAStoreWhoseNamespaceRedisLostIsRefusedUntilJoinNew) {
  TempDir store("ns");
  std::string old_id;
  {
    auto m = Open(store.path());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    old_id = (*m)->Namespace().id;
  }
  // The store holds data of the old namespace.
  ASSERT_EQ(mkdir((store.path() + "/data").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((store.path() + "/data/02").c_str(), 0700), 0);
  std::string data_file = store.path() + "/data/02/0000000000000002";
  {
    int fd = open(data_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "old", 3), 3);
    close(fd);
  }
  TestRedis::Get().Wipe();
  auto refused = Open(store.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_ERRNO(refused, EIO);
  const std::string msg = refused.status().message();
  EXPECT_NE(msg.find("holds no tempfs namespace"), std::string::npos) << msg;
  EXPECT_NE(msg.find(old_id), std::string::npos) << msg;
  EXPECT_NE(msg.find("--join-new-namespace"), std::string::npos) << msg;
  EXPECT_EQ(DbSize(), 0) << "a refused open wrote to Redis";
  EXPECT_TRUE(PathExists(data_file));

  auto joined = Open(store.path(), /*join_new=*/true);
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  NamespaceState s = (*joined)->Namespace();
  EXPECT_TRUE(s.intact);
  EXPECT_NE(s.id, old_id);
  EXPECT_EQ(s.left, old_id);
  EXPECT_EQ((*ReadStoreIdentity(store.path()))->ns, s.id);
  // The old data is set aside, not removed, and not where the new namespace looks.
  EXPECT_FALSE(PathExists(data_file));
  EXPECT_TRUE(PathExists(store.path() + "/lost+found/namespace-" + old_id + "/data/02/0000000000000002"));
}

TEST_F(RedisNamespaceTest, AStoreOfAnotherNamespaceIsRefused) {
  TempDir a("ns"), b("ns");
  std::string a_id;
  {
    auto m = Open(a.path());
    ASSERT_TRUE(m.ok());
    a_id = (*m)->Namespace().id;
  }
  TestRedis::Get().Wipe();
  auto mb = Open(b.path());  // a new namespace in the same Redis
  ASSERT_TRUE(mb.ok());
  std::string b_id = (*mb)->Namespace().id;
  ASSERT_NE(a_id, b_id);
  auto refused = Open(a.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("holds another namespace (" + b_id + ")"), std::string::npos)
      << refused.status().message();
  // The running engine of the new namespace is not disturbed.
  EXPECT_TRUE((*mb)->Namespace().intact);
  EXPECT_TRUE((*mb)->GetAttr(kRootIno).ok());
}

TEST_F(RedisNamespaceTest, GarbageCollectionOfAFencedNodeRemovesNothing) {
  TempDir dir("ns");
  auto started = ClusterVfs(dir.path());
  ASSERT_NE(started, nullptr);
  Vfs& vfs = *started;
  std::vector<Ino> inos;
  for (int i = 0; i < 20; i++) {
    auto f = vfs.Create(Caller{}, kRootIno, "f" + std::to_string(i), 0644, O_RDWR);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_EQ(pwrite(f->handle->fd, "data", 4, 0), 4);
    vfs.Release(f->handle);
    inos.push_back(f->attr.ino);
  }
  auto deleted = vfs.Create(Caller{}, kRootIno, "gone", 0644, O_RDWR);
  ASSERT_TRUE(deleted.ok());
  vfs.Release(deleted->handle);
  EXPECT_EQ(vfs.CollectGarbage(), 0u);  // everything is known

  TestRedis::Get().Wipe();
  EXPECT_EQ(vfs.CollectGarbage(), 0u) << "the pass removed data on the word of an empty Redis";
  for (Ino ino : inos) EXPECT_TRUE(PathExists(dir.path() + "/data/" + LocalStore::DataName(ino))) << ino;
  EXPECT_FALSE(vfs.meta().Namespace().intact);
  EXPECT_EQ(DbSize(), 0);
}

// A Redis restored from an older copy keeps the namespace id but knows none
// of the files made after that copy: their data files are numbered above the
// inode counter it brought back, and the pass must keep them.
TEST_F(RedisNamespaceTest, GarbageCollectionKeepsDataNewerThanARestoredNamespace) {
  TempDir dir("ns");
  auto started = ClusterVfs(dir.path());
  ASSERT_NE(started, nullptr);
  Vfs& vfs = *started;
  auto make = [&](const std::string& name) {
    auto f = vfs.Create(Caller{}, kRootIno, name, 0644, O_RDWR);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    if (!f.ok()) return Ino{0};
    EXPECT_EQ(pwrite(f->handle->fd, "data", 4, 0), 4);
    vfs.Release(f->handle);
    return f->attr.ino;
  };
  Ino old_file = make("before-backup");
  // The backup: every key as DUMP gives it.
  RedisClient c = Client();
  auto keys = c.Command({"KEYS", "*"});
  ASSERT_TRUE(keys.ok());
  std::vector<std::pair<std::string, std::string>> backup;
  for (const auto& k : keys->elements) {
    auto d = c.Command({"DUMP", k.str});
    ASSERT_TRUE(d.ok() && !d->nil()) << k.str;
    backup.emplace_back(k.str, d->str);
  }
  std::vector<Ino> newer = {make("after-1"), make("after-2")};
  // The restore.
  ASSERT_TRUE(c.Command({"FLUSHALL"}).ok());
  for (const auto& [k, v] : backup) ASSERT_TRUE(c.Command({"RESTORE", k, "0", v}).ok()) << k;

  EXPECT_EQ(vfs.CollectGarbage(), 0u) << "the pass removed data the restored namespace never knew";
  for (Ino ino : newer) EXPECT_TRUE(PathExists(dir.path() + "/data/" + LocalStore::DataName(ino))) << ino;
  EXPECT_TRUE(PathExists(dir.path() + "/data/" + LocalStore::DataName(old_file)));
}

// ---------------------------------------------------------------- registry

class RegistryTest : public RedisNamespaceTest {
 protected:
  void SetUp() override {
    RedisNamespaceTest::SetUp();
    if (IsSkipped()) return;
    meta_ = std::make_unique<TempDir>("reg");
    auto m = Open(meta_->path());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ns_ = (*m)->Namespace().id;
  }
  std::unique_ptr<NodeRegistry> Registry(const std::string& name, int port, NodeRegistry::Identity id,
                                         std::chrono::milliseconds ttl = std::chrono::seconds(10)) {
    return std::make_unique<NodeRegistry>(client_, name, HostPort{"127.0.0.1", port}, ttl, std::move(id));
  }
  RedisClient client_ = Client();
  std::unique_ptr<TempDir> meta_;
  std::string ns_;
};

TEST_F(RegistryTest, NumbersAreTakenOnlyInTheStoresNamespaceAndMustMatchTheRecord) {
  auto foreign = Registry("A", 1000, {"0123456789abcdef0123456789abcdef", "aa", 0});
  auto r = foreign->Join();
  EXPECT_ERRNO(r, EIO);
  auto seq = client_.Command({"GET", "tfs:node:seq"});
  ASSERT_TRUE(seq.ok());
  EXPECT_TRUE(seq->nil()) << "a number was taken for a store of another namespace";

  uint32_t a_num = 0;
  {
    auto a = Registry("A", 1000, {ns_, "aa", 0});
    auto n = a->Join();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    a_num = *n;
  }
  // The store recorded another number than Redis gives its name.
  auto wrong = Registry("A", 1000, {ns_, "aa", a_num + 7});
  auto w = wrong->Join();
  EXPECT_ERRNO(w, EIO);
  EXPECT_NE(w.status().message().find("#" + std::to_string(a_num + 7)), std::string::npos) << w.status().message();
  // The recorded number works.
  auto right = Registry("A", 1000, {ns_, "aa", a_num});
  auto ok = right->Join();
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, a_num);
}

TEST_F(RegistryTest, AlreadyLiveComparesStoresNotAddresses) {
  auto first = Registry("A", 1000, {ns_, "aa", 0});
  auto n = first->Join();
  ASSERT_TRUE(n.ok());
  // Another store under the same name and number, even at the same address: refused.
  auto other = Registry("A", 1000, {ns_, "bb", *n});
  auto o = other->Join();
  EXPECT_ERRNO(o, EEXIST);
  EXPECT_NE(o.status().message().find("another store"), std::string::npos) << o.status().message();
  // The same store at a new address (a killed daemon started again): taken over.
  auto again = Registry("A", 2000, {ns_, "aa", *n});
  auto a = again->Join();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto addr = again->Address(*n);
  ASSERT_TRUE(addr.ok()) << addr.status().ToString();
  EXPECT_EQ(addr->port, 2000);
  other.reset();  // the refused one leaves the live heartbeat alone
  auto still = client_.Command({"GET", "tfs:node:hb:" + std::to_string(*n)});
  ASSERT_TRUE(still.ok());
  EXPECT_FALSE(still->nil());
}

TEST_F(RegistryTest, HeartbeatStopsAndReportsWhenTheNamespaceIsGone) {
  std::atomic<int> lost{0};
  auto reg = Registry("A", 1000, {ns_, "aa", 0}, std::chrono::milliseconds(300));
  reg->set_on_namespace_lost([&](const std::string&) { lost++; });
  auto n = reg->Join();
  ASSERT_TRUE(n.ok());
  TestRedis::Get().Wipe();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (lost.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(lost.load(), 1);
  EXPECT_EQ(DbSize(), 0) << "the heartbeat wrote into the empty Redis";
}

// ------------------------------------------------------------- consistency

class RedisConsistencyTest : public RedisNamespaceTest {
 protected:
  void SetUp() override {
    RedisNamespaceTest::SetUp();
    if (IsSkipped()) return;
    da_ = std::make_unique<TempDir>("ca");
    db_ = std::make_unique<TempDir>("cb");
    auto a = Open(da_->path());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    a_ = std::move(*a);
    auto b = Open(db_->path());
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    b_ = std::move(*b);
  }
  void TearDown() override {
    if (a_) a_->set_read_hook_for_testing(nullptr);
    a_.reset();
    b_.reset();
    RedisNamespaceTest::TearDown();
  }
  // Removes `name` (and its inode) through engine B while engine A's next
  // transaction is between reading the name and reading its inode.
  void RemoveBetweenReads(const std::string& name) {
    auto fired = std::make_shared<bool>(false);
    a_->set_read_hook_for_testing([this, name, fired](const std::string& key) {
      if (*fired || key != "tfs:d:" + std::to_string(kRootIno)) return;
      *fired = true;
      auto e = b_->Lookup(kRootIno, name);
      ASSERT_TRUE(e.ok());
      if (S_ISDIR(e->mode)) {
        ASSERT_TRUE(b_->Rmdir(kRootIno, name).ok());
      } else {
        ASSERT_TRUE(b_->Unlink(kRootIno, name).ok());
      }
      ASSERT_TRUE(b_->Drop(e->ino).ok());
    });
  }
  std::unique_ptr<TempDir> da_, db_;
  std::unique_ptr<RedisMeta> a_, b_;
};

TEST_F(RedisConsistencyTest, NameRemovedBetweenReadsIsEnoentNotEio) {
  const NewNode dir = Node(S_IFDIR | 0755), file = Node(S_IFREG | 0644);
  ASSERT_TRUE(a_->Create(kRootIno, "d1", dir).ok());
  RemoveBetweenReads("d1");
  EXPECT_ERRNO(a_->Lookup(kRootIno, "d1"), ENOENT);

  ASSERT_TRUE(a_->Create(kRootIno, "d2", dir).ok());
  RemoveBetweenReads("d2");
  EXPECT_ERRNO(a_->Rmdir(kRootIno, "d2"), ENOENT);

  ASSERT_TRUE(a_->Create(kRootIno, "f3", file).ok());
  RemoveBetweenReads("f3");
  EXPECT_ERRNO(a_->Unlink(kRootIno, "f3"), ENOENT);

  ASSERT_TRUE(a_->Create(kRootIno, "f4", file).ok());
  RemoveBetweenReads("f4");
  EXPECT_ERRNO(a_->Rename(kRootIno, "f4", kRootIno, "f5", 0), ENOENT);
  a_->set_read_hook_for_testing(nullptr);
  EXPECT_ERRNO(a_->Lookup(kRootIno, "f5"), ENOENT);
}

// Engine B churns mkdir/rmdir (and drops) of a few names; engine A does
// everything else on the same names. Only what a local disk could answer.
TEST_F(RedisConsistencyTest, ChurnByAnotherClientGivesOnlyPosixErrnos) {
  const std::vector<std::string> names = {"n0"};
  std::atomic<bool> stop{false};
  std::atomic<int> churned{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::thread churner([&] {
    for (int i = 0; i < 20000 && !stop.load() && std::chrono::steady_clock::now() < deadline; i++) {
      const std::string& n = names[i % names.size()];
      if (b_->Create(kRootIno, n, Node(S_IFDIR | 0755)).ok()) churned++;
      auto r = b_->Rmdir(kRootIno, n);
      if (r.ok()) (void)b_->Drop(r->ino);
    }
  });
  const std::set<int> allowed = {0, ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR};
  std::map<std::string, int> eio;
  int ops = 0;
  for (int i = 0; i < 3000 && std::chrono::steady_clock::now() < deadline; i++, ops++) {
    const std::string& n = names[i % names.size()];
    int e = 0;
    std::string op;
    switch (i % 5) {
      case 0:
        op = "lookup";
        e = a_->Lookup(kRootIno, n).err();
        break;
      case 1:
        op = "unlink";
        e = a_->Unlink(kRootIno, n).err();
        break;
      case 2: {
        op = "rename";
        auto r = a_->Rename(kRootIno, n, kRootIno, n + "x", 0);
        e = r.err();
        if (r.ok()) {
          (void)a_->Rename(kRootIno, n + "x", kRootIno, n, kRenameNoReplace);
          (void)a_->Rmdir(kRootIno, n + "x");
        }
        break;
      }
      case 3:
        op = "rmdir";
        e = a_->Rmdir(kRootIno, n).err();
        break;
      default: {
        op = "create";
        auto c = a_->Create(kRootIno, n, Node(S_IFREG | 0644));
        e = c.err();
        if (c.ok()) (void)a_->Unlink(kRootIno, n);
      }
    }
    if (allowed.count(e) == 0) eio[op + " " + ErrName(e)]++;
  }
  stop = true;
  churner.join();
  EXPECT_GT(churned.load(), 0);
  EXPECT_GT(ops, 100);
  for (auto& [what, count] : eio) ADD_FAILURE() << what << ": " << count << " of " << ops;
}

}  // namespace
}  // namespace tempfs
