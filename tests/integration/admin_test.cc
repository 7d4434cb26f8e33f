// tempfs-admin against real mounts: a single node and a 2-node cluster with
// a real redis-server. Every command's --json output is parsed and checked
// field by field; the effects (prefetch, evict, drain) are checked through
// the data path and the daemons' own counters.
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/json.h"
#include "csi/volume_store.h"
#include "daemon/control.h"
#include "support/cluster_fixture.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

constexpr size_t kMiB = 1 << 20;

std::string AdminBin() { return TEMPFS_ADMIN_BIN; }

CommandResult Admin(const std::string& mnt, std::vector<std::string> args) {
  std::vector<std::string> argv = {AdminBin(), "--mount", mnt};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(120));
}

// Runs `tempfs-admin --mount MNT --json ARGS...`, expects success and
// returns the parsed output (a null Json, with a test failure, otherwise).
Json AdminJson(const std::string& mnt, std::vector<std::string> args) {
  args.insert(args.begin(), "--json");
  CommandResult r = Admin(mnt, args);
  EXPECT_EQ(r.exit_code, 0) << "tempfs-admin " << args[1] << ": " << r.err;
  auto j = Json::Parse(r.out);
  EXPECT_TRUE(j.ok()) << "not JSON: " << r.out;
  return j.ok() ? *j : Json();
}

// One line on stderr, non-zero exit, containing `what`.
void ExpectOneLineFailure(const CommandResult& r, const std::string& what) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.err.rfind("tempfs-admin: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << "expected '" << what << "' in: " << r.err;
}

bool Write(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

uint64_t InoOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

int64_t Counter(const std::string& mnt, const char* name) {
  Json s = AdminJson(mnt, {"status"});
  const Json* k = s.Find("counters");
  const Json* v = k != nullptr ? k->Find(name) : nullptr;
  EXPECT_NE(v, nullptr) << "no counter " << name << " in " << s.Dump();
  return v != nullptr ? v->as_int() : -1;
}

Json FirstFile(const Json& locate) {
  const Json* files = locate.Find("files");
  if (files == nullptr || files->size() != 1) {
    ADD_FAILURE() << "locate: expected one file in " << locate.Dump();
    return Json();
  }
  return files->items()[0];
}

bool Field(const Json& j, const char* key) {
  const Json* v = j.Find(key);
  EXPECT_TRUE(v != nullptr && v->is_bool()) << key << " in " << j.Dump();
  return v != nullptr && v->is_bool() && v->as_bool();
}
int64_t IntField(const Json& j, const char* key) {
  const Json* v = j.Find(key);
  EXPECT_TRUE(v != nullptr && v->is_int()) << key << " in " << j.Dump();
  return v != nullptr && v->is_int() ? v->as_int() : -1;
}
std::string StrField(const Json& j, const char* key) {
  const Json* v = j.Find(key);
  EXPECT_TRUE(v != nullptr && v->is_string()) << key << " in " << j.Dump();
  return v != nullptr && v->is_string() ? v->as_string() : "";
}

// ---- single node ----

TEST(AdminSingleNodeTest, StatusReportsTheNode) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-status");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(Write(m->mnt() + "/a", Pattern(1, 3 * kMiB)));
  ASSERT_TRUE(Write(m->mnt() + "/b", Pattern(2, 5000)));
  std::string back;
  ASSERT_TRUE(ReadWholeFile(m->mnt() + "/a", &back));

  Json s = AdminJson(m->mnt(), {"status"});
  EXPECT_EQ(StrField(s, "mode"), "single node");
  EXPECT_EQ(StrField(s, "node"), "");
  EXPECT_EQ(StrField(s, "version"), "0.1.0");
  EXPECT_EQ(StrField(s, "store"), m->store());
  EXPECT_EQ(StrField(s, "mountpoint"), m->mnt());
  EXPECT_EQ(IntField(s, "pid"), m->daemon_pid());
  EXPECT_GE(IntField(s, "uptime_s"), 0);
  EXPECT_FALSE(StrField(s, "data_path").empty());
  const Json* meta = s.Find("meta");
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(StrField(*meta, "engine"), "embedded");
  EXPECT_TRUE(Field(*meta, "healthy"));
  const Json* cap = s.Find("capacity");
  ASSERT_NE(cap, nullptr);
  EXPECT_EQ(IntField(*cap, "own_files"), 2);
  EXPECT_GE(IntField(*cap, "own_bytes"), static_cast<int64_t>(3 * kMiB + 5000));
  EXPECT_EQ(IntField(*cap, "cached_files"), 0);
  EXPECT_GT(IntField(*cap, "total_bytes"), IntField(*cap, "free_bytes"));
  EXPECT_GE(IntField(*s.Find("counters"), "local_opens"), 3);
  EXPECT_EQ(s.Find("peers")->size(), 0u);
  EXPECT_TRUE(s.Find("metrics") != nullptr && s.Find("metrics")->is_null()) << "metrics are off by default";

  // The table form names the same things.
  CommandResult t = Admin(m->mnt(), {"status"});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find(m->store()), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("embedded: healthy"), std::string::npos) << t.out;
}

// Issue 10, finding 11: after `rm -rf` of many files the daemon kept its
// peak memory (hash tables keep their buckets, malloc keeps freed blocks).
// Table sizes are exact; resident memory is checked only loosely.
TEST(AdminSingleNodeTest, MemoryComesBackAfterManyFilesAreRemoved) {
  TEMPFS_SKIP_IF_NO_FUSE();
  constexpr int kFiles = 20000;  // enough to grow every table far past its floor
  TempDir dir("admin-memory");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  auto memory = [&] {
    Json s = AdminJson(m->mnt(), {"status"});
    const Json* mem = s.Find("memory");
    return mem != nullptr ? *mem : Json::Object();
  };
  const Json start = memory();
  ASSERT_GT(IntField(start, "rss_bytes"), 0);
  const std::string tree = m->mnt() + "/tree";
  ASSERT_EQ(mkdir(tree.c_str(), 0755), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  for (int i = 0; i < kFiles; i++) {
    std::string sub = tree + "/" + std::to_string(i % 16);
    if (i < 16) {
      ASSERT_EQ(mkdir(sub.c_str(), 0755), 0);
    }
    int fd =
        open((sub + "/file-with-a-longer-name-" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << "file " << i << ": " << strerror(errno);
    close(fd);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "creating files took too long (" << i << " made)";
  }
  const Json peak = memory();
  EXPECT_EQ(IntField(peak, "meta_inodes"), IntField(start, "meta_inodes") + kFiles + 17);
  EXPECT_GT(IntField(peak, "meta_buckets"), kFiles);
  CommandResult rm = RunCommand({"rm", "-rf", tree}, std::chrono::minutes(3));
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  // The kernel forgets the removed inodes asynchronously: wait (bounded).
  Json after;
  bool settled = WaitFor(
      [&] {
        after = memory();
        return IntField(after, "kernel_inodes") == IntField(start, "kernel_inodes") &&
               IntField(after, "meta_inodes") == IntField(start, "meta_inodes");
      },
      std::chrono::seconds(60));
  ASSERT_TRUE(settled) << "tables did not empty: " << after.Dump(0);
  // Back near their floor: a few thousand buckets at most, not the peak's tens of thousands.
  EXPECT_LE(IntField(after, "meta_buckets"), 4096) << after.Dump(0);
  EXPECT_LE(IntField(after, "kernel_inode_buckets"), 4096) << after.Dump(0);
  // Loosely: at least a third of what the files took is given back.
  int64_t grown = IntField(peak, "rss_bytes") - IntField(start, "rss_bytes");
  int64_t kept = IntField(after, "rss_bytes") - IntField(start, "rss_bytes");
  EXPECT_GT(grown, 0);
  EXPECT_LT(kept, grown * 2 / 3) << "start " << IntField(start, "rss_bytes") << ", peak " << IntField(peak, "rss_bytes")
                                 << ", after rm " << IntField(after, "rss_bytes");
}

TEST(AdminSingleNodeTest, LocateEvictAndBadPaths) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-locate");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  const std::string f = m->mnt() + "/f", data = Pattern(3, 70000);
  ASSERT_TRUE(Write(f, data));
  const Json loc = FirstFile(AdminJson(m->mnt(), {"locate", f}));
  EXPECT_EQ(IntField(loc, "ino"), static_cast<int64_t>(InoOf(f)));
  EXPECT_EQ(IntField(loc, "size"), static_cast<int64_t>(data.size()));
  EXPECT_EQ(StrField(loc, "type"), "file");
  EXPECT_EQ(StrField(loc, "path"), f);
  EXPECT_TRUE(Field(loc, "owned_here"));
  EXPECT_TRUE(Field(loc, "local_copy"));
  EXPECT_FALSE(Field(loc, "fetching"));

  // The only copy is never evicted, and stays readable.
  ExpectOneLineFailure(Admin(m->mnt(), {"evict", f}), "only copy");
  std::string back;
  ASSERT_TRUE(ReadWholeFile(f, &back));
  EXPECT_EQ(back == data, true);
  // In a tree, owned files are kept and counted.
  Json ev = AdminJson(m->mnt(), {"evict", m->mnt()});
  EXPECT_EQ(IntField(ev, "kept_owned"), 1);
  EXPECT_EQ(IntField(ev, "evicted_files"), 0);

  ExpectOneLineFailure(Admin(m->mnt(), {"locate", dir.path()}), "not on the tempfs mount");
  ExpectOneLineFailure(Admin(m->mnt(), {"locate", m->mnt() + "/missing"}), "No such file");
  ExpectOneLineFailure(Admin(m->mnt(), {"locate", m->mnt()}), "not a regular file");
  ExpectOneLineFailure(Admin(m->mnt(), {"drain"}), "not in cluster mode");
  ExpectOneLineFailure(Admin(dir.path(), {"status"}), "not a mount point");
  CommandResult bad = Admin(m->mnt(), {"frobnicate"});
  EXPECT_NE(bad.exit_code, 0);
}

TEST(AdminSingleNodeTest, PinIsKeptAcrossRestarts) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-pin");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  const std::string f = m->mnt() + "/f";
  ASSERT_TRUE(Write(f, "x"));
  EXPECT_EQ(IntField(AdminJson(m->mnt(), {"pin", f}), "pinned"), 1);
  EXPECT_TRUE(Field(FirstFile(AdminJson(m->mnt(), {"locate", f})), "pinned"));
  ASSERT_EQ(m->Unmount().exit_code, 0);
  ASSERT_TRUE(m->Remount());
  EXPECT_TRUE(Field(FirstFile(AdminJson(m->mnt(), {"locate", f})), "pinned"));
  EXPECT_EQ(IntField(*AdminJson(m->mnt(), {"status"}).Find("capacity"), "pinned_files"), 1);
  AdminJson(m->mnt(), {"unpin", f});
  EXPECT_FALSE(Field(FirstFile(AdminJson(m->mnt(), {"locate", f})), "pinned"));
}

TEST(AdminSingleNodeTest, DaemonNotRunning) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-dead");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  m->KillDaemon(SIGKILL);
  ExpectOneLineFailure(Admin(m->mnt(), {"status"}), "not running");
}

// The socket file is the owner's only; and even through a socket opened to
// everyone, the daemon itself refuses other users.
TEST(AdminSingleNodeTest, ControlSocketServesOnlyItsOwner) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-perm");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  const std::string sock = ControlServer::SocketPath(m->store());
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  ASSERT_EQ(chmod(m->store().c_str(), 0755), 0);

  // As uid/gid 65534: the errno the call failed with, or 0.
  auto call_as_nobody = [&]() -> int {
    pid_t pid = fork();
    if (pid == 0) {
      if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(99);
      auto r = ControlCall(m->store(), Json::Object().Set("cmd", "status"), {}, std::chrono::seconds(10));
      _exit(r.ok() ? 0 : r.err() & 0x7f);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(call_as_nobody(), EACCES) << "connect through a 0600 socket";
  ASSERT_EQ(chmod(sock.c_str(), 0666), 0);
  EXPECT_EQ(call_as_nobody(), EACCES) << "the daemon's own check (SO_PEERCRED)";
  EXPECT_NE(m->LogTail().find("control: refused a caller with uid 65534"), std::string::npos) << m->LogTail();
  // Root still gets its answer.
  auto r = ControlCall(m->store(), Json::Object().Set("cmd", "status"), {}, std::chrono::seconds(10));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  // Malformed requests get a clear error, not a hang.
  auto bad = ControlCall(m->store(), Json::Object().Set("cmd", "locate").Set("inos", "x"), {}, std::chrono::seconds(10));
  EXPECT_EQ(bad.err(), EINVAL);
  auto unknown = ControlCall(m->store(), Json::Object().Set("cmd", "nope"), {}, std::chrono::seconds(10));
  EXPECT_EQ(unknown.err(), EINVAL);
}

// Volumes as the CSI plugin files them, and gc of the expired ones.
TEST(AdminSingleNodeTest, VolumesAndGc) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-volumes");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  csi::VolumeStore volumes(m->mnt(), "node1");
  csi::VolumeSpec kept{{"pipeline", "shuffle", false}, 1 << 30, {csi::Retention::Kind::kKeepFor, 3600}, ""};
  csi::VolumeSpec live{{"pipeline", "live", false}, 0, {csi::Retention::Kind::kDelete, 0}, "pipeline/consumer-0"};
  ASSERT_TRUE(volumes.Acquire(kept, "/pods/p1/vol").ok());
  ASSERT_TRUE(volumes.Acquire(live, "/pods/p2/vol").ok());
  ASSERT_TRUE(volumes.Acquire(live, "/pods/p3/vol").ok());
  ASSERT_TRUE(Write(volumes.DataDir(kept.key) + "/part-0", Pattern(4, 100000)));
  ASSERT_TRUE(Write(volumes.DataDir(kept.key) + "/part-1", Pattern(5, 20000)));
  ASSERT_TRUE(Write(volumes.DataDir(live.key) + "/x", "x"));
  ASSERT_TRUE(volumes.Release(kept.key, "/pods/p1/vol", kept.retention).ok());

  Json v = AdminJson(m->mnt(), {"volumes"});
  const Json* list = v.Find("volumes");
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->size(), 2u) << v.Dump();
  for (const Json& vol : list->items()) {
    if (StrField(vol, "volume") == "pipeline/shuffle") {
      EXPECT_EQ(IntField(vol, "files"), 2);
      EXPECT_EQ(IntField(vol, "bytes"), 120000);
      EXPECT_EQ(IntField(vol, "local_bytes"), 120000);
      EXPECT_EQ(IntField(vol, "capacity_bytes"), 1 << 30);
      EXPECT_EQ(StrField(vol, "retention"), "3600s");
      EXPECT_EQ(IntField(vol, "publications"), 0);
      EXPECT_GT(IntField(vol, "expires_unix"), time(nullptr));
    } else {
      EXPECT_EQ(StrField(vol, "volume"), "pipeline/live");
      EXPECT_EQ(IntField(vol, "files"), 1);
      EXPECT_EQ(IntField(vol, "publications"), 2);
      ASSERT_EQ(vol.Find("pods_here")->size(), 2u);
      EXPECT_EQ(vol.Find("pods_here")->items()[0].as_string(), "pipeline/consumer-0");
      EXPECT_EQ(IntField(vol, "capacity_bytes"), 0);
    }
  }
  // Not yet expired: gc keeps it. Then its time is up: gc deletes it.
  Json g = AdminJson(m->mnt(), {"gc"});
  EXPECT_EQ(g.Find("deleted_volumes")->size(), 0u);
  std::ofstream(m->mnt() + "/.tempfs-csi/pipeline/shuffle/expires") << (time(nullptr) - 1) << "\n";
  g = AdminJson(m->mnt(), {"gc"});
  ASSERT_EQ(g.Find("deleted_volumes")->size(), 1u) << g.Dump();
  EXPECT_EQ(g.Find("deleted_volumes")->items()[0].as_string(), "pipeline/shuffle");
  struct stat st;
  EXPECT_NE(stat(volumes.DataDir(kept.key).c_str(), &st), 0);
  EXPECT_EQ(stat(volumes.DataDir(live.key).c_str(), &st), 0) << "a live volume was collected";
}

// GET http://127.0.0.1:port/metrics: the body ("" on failure).
std::string Scrape(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string resp;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, n);
    }
  }
  close(fd);
  EXPECT_EQ(resp.rfind("HTTP/1.1 200", 0), 0u) << resp.substr(0, 200);
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

// The value of the sample `series` (name with labels, exactly as rendered),
// or -1 when it is missing.
double Sample(const std::string& text, const std::string& series) {
  size_t pos = 0;
  while ((pos = text.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return strtod(text.c_str() + pos + series.size() + 1, nullptr);
    pos++;
  }
  return -1;
}

TEST(AdminSingleNodeTest, MetricsAreServedWhenAskedFor) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-metrics");
  // Port 0: the daemon picks a free one and status says which.
  auto m = TempfsMount::Start(dir.path(), {"--metrics", "127.0.0.1:0"});
  ASSERT_NE(m, nullptr);
  const std::string where = StrField(AdminJson(m->mnt(), {"status"}), "metrics");
  ASSERT_EQ(where.rfind("127.0.0.1:", 0), 0u) << where;
  const int port = atoi(where.c_str() + strlen("127.0.0.1:"));
  ASSERT_GT(port, 0);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(Write(m->mnt() + "/f" + std::to_string(i), "data"));
  struct stat st;
  EXPECT_NE(stat((m->mnt() + "/missing").c_str(), &st), 0);
  // An operation is observed just after its reply: the last create may be
  // counted a moment after the program saw it return.
  std::string text;
  EXPECT_TRUE(WaitFor(
      [&] {
        text = Scrape(port);
        return Sample(text, "tempfs_fuse_op_seconds_count{op=\"create\"}") >= 5;
      },
      std::chrono::seconds(10)))
      << text.substr(0, 2000);
  EXPECT_NE(text.find("# TYPE tempfs_fuse_op_seconds histogram\n"), std::string::npos) << text.substr(0, 500);
  EXPECT_NE(text.find("# TYPE tempfs_local_opens_total counter\n"), std::string::npos);
  EXPECT_GE(Sample(text, "tempfs_fuse_op_seconds_count{op=\"lookup\"}"), 1);
  EXPECT_EQ(Sample(text, "tempfs_fuse_op_seconds_count{op=\"lookup\"}"),
            Sample(text, "tempfs_fuse_op_seconds_bucket{op=\"lookup\",le=\"+Inf\"}"));
  EXPECT_GE(Sample(text, "tempfs_fuse_op_seconds_sum{op=\"create\"}"), 0);
  EXPECT_GT(Sample(text, "tempfs_store_bytes{kind=\"total\"}"), 0);
  EXPECT_EQ(Sample(text, "tempfs_info{version=\"0.1.0\",node=\"\"}"), 1);
  // The counters are the ones status reports.
  EXPECT_EQ(Sample(text, "tempfs_local_opens_total"), Counter(m->mnt(), "local_opens"));
  // Off unless asked for; a bad address is refused before anything starts.
  TempDir dir2("admin-nometrics");
  CommandResult bad = RunCommand({TempfsBin(), "mount", "--store", dir2.path(), "--metrics", "nonsense", dir2.path()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--metrics"), std::string::npos) << bad.err;
}

// ---- cluster ----

TEST(AdminClusterTest, LocatePrefetchEvictPinPeers) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  o.extra_mount_args = {"--metrics", "127.0.0.1:0"};
  ClusterFixture c(o);
  if (!c.Start()) return;
  const std::string data = Pattern(7, 24 * kMiB);
  ASSERT_TRUE(Write(c.Path(0, "big"), data));
  const std::string on_b = c.Path(1, "big");

  Json loc = FirstFile(AdminJson(c.mnt(1), {"locate", on_b}));
  EXPECT_EQ(StrField(loc, "owner"), "A");
  EXPECT_FALSE(Field(loc, "owned_here"));
  EXPECT_FALSE(Field(loc, "local_copy"));
  EXPECT_EQ(IntField(loc, "size"), static_cast<int64_t>(data.size()));
  EXPECT_EQ(StrField(loc, "checksum").size(), 16u);
  EXPECT_GE(IntField(loc, "version"), 1);
  Json loc_a = FirstFile(AdminJson(c.mnt(0), {"locate", c.Path(0, "big")}));
  EXPECT_TRUE(Field(loc_a, "owned_here"));
  EXPECT_EQ(StrField(loc_a, "checksum"), StrField(loc, "checksum"));

  // Prefetch, then the read is served locally: no new fetch.
  const int64_t fetches0 = Counter(c.mnt(1), "remote_fetches");
  Json pf = AdminJson(c.mnt(1), {"prefetch", on_b});
  EXPECT_EQ(IntField(pf, "fetched_files"), 1);
  EXPECT_EQ(IntField(pf, "bytes_fetched"), static_cast<int64_t>(data.size()));
  EXPECT_TRUE(Field(FirstFile(AdminJson(c.mnt(1), {"locate", on_b})), "local_copy"));
  EXPECT_EQ(Counter(c.mnt(1), "remote_fetches"), fetches0 + 1);
  std::string back;
  ASSERT_TRUE(ReadWholeFile(on_b, &back));
  EXPECT_TRUE(back == data);
  EXPECT_EQ(Counter(c.mnt(1), "remote_fetches"), fetches0 + 1) << "the read after a prefetch fetched again";
  // The peer traffic shows in both nodes' metrics.
  const std::string mb = StrField(AdminJson(c.mnt(1), {"status"}), "metrics");
  const std::string ma = StrField(AdminJson(c.mnt(0), {"status"}), "metrics");
  const std::string text_b = Scrape(atoi(mb.c_str() + mb.rfind(':') + 1));
  const std::string text_a = Scrape(atoi(ma.c_str() + ma.rfind(':') + 1));
  EXPECT_GE(Sample(text_b, "tempfs_peer_fetch_seconds_count"), 1) << text_b.substr(0, 300);
  EXPECT_GE(Sample(text_b, "tempfs_fetched_bytes_total"), static_cast<double>(data.size()));
  EXPECT_GE(Sample(text_a, "tempfs_peer_served_bytes_total"), static_cast<double>(data.size()));
  EXPECT_EQ(Sample(text_a, "tempfs_info{version=\"0.1.0\",node=\"A\"}"), 1);
  // A second prefetch has nothing to do.
  EXPECT_EQ(IntField(AdminJson(c.mnt(1), {"prefetch", on_b}), "already_local"), 1);

  // Status on B counts the cached copy.
  Json s = AdminJson(c.mnt(1), {"status"});
  EXPECT_EQ(StrField(s, "mode"), "cluster");
  EXPECT_EQ(StrField(s, "node"), "B");
  EXPECT_EQ(IntField(*s.Find("capacity"), "cached_files"), 1);
  EXPECT_GE(IntField(*s.Find("capacity"), "cached_bytes"), static_cast<int64_t>(data.size()));
  EXPECT_GE(IntField(*s.Find("counters"), "bytes_fetched"), static_cast<int64_t>(data.size()));
  EXPECT_TRUE(Field(*s.Find("meta"), "healthy"));

  // Peers: both alive, and A served B what B fetched.
  Json p = AdminJson(c.mnt(0), {"peers"});
  ASSERT_EQ(p.Find("peers")->size(), 2u) << p.Dump();
  for (const Json& n : p.Find("peers")->items()) {
    EXPECT_TRUE(Field(n, "alive"));
    EXPECT_GE(IntField(n, "heartbeat_age_ms"), 0);
    if (StrField(n, "node") == "B") {
      EXPECT_GE(IntField(n, "bytes_served_to"), static_cast<int64_t>(data.size()));
      EXPECT_EQ(StrField(n, "address"), "127.0.0.1:" + std::to_string(c.peer_port(1)));
    } else {
      EXPECT_EQ(StrField(n, "node"), "A");
      EXPECT_TRUE(Field(n, "self"));
    }
  }
  Json pb = AdminJson(c.mnt(1), {"peers"});
  for (const Json& n : pb.Find("peers")->items()) {
    if (StrField(n, "node") == "A") {
      EXPECT_GE(IntField(n, "bytes_fetched_from"), static_cast<int64_t>(data.size()));
    }
  }

  // Evict on B, then the next read fetches again.
  Json ev = AdminJson(c.mnt(1), {"evict", on_b});
  EXPECT_EQ(IntField(ev, "evicted_files"), 1);
  EXPECT_GE(IntField(ev, "freed_bytes"), static_cast<int64_t>(data.size()));
  EXPECT_FALSE(Field(FirstFile(AdminJson(c.mnt(1), {"locate", on_b})), "local_copy"));
  ASSERT_TRUE(ReadWholeFile(on_b, &back));
  EXPECT_TRUE(back == data);
  EXPECT_EQ(Counter(c.mnt(1), "remote_fetches"), fetches0 + 2);
  // The owner's data is never evicted.
  ExpectOneLineFailure(Admin(c.mnt(0), {"evict", c.Path(0, "big")}), "only copy");

  // Pinned on B: status counts it.
  EXPECT_EQ(IntField(AdminJson(c.mnt(1), {"pin", on_b}), "pinned"), 1);
  EXPECT_TRUE(Field(FirstFile(AdminJson(c.mnt(1), {"locate", on_b})), "pinned"));
  EXPECT_EQ(IntField(*AdminJson(c.mnt(1), {"status"}).Find("capacity"), "pinned_files"), 1);
}

// A volume seen from both nodes, and gc of a copy whose file was deleted on
// its owner.
TEST(AdminClusterTest, VolumesAcrossNodesAndGc) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  ClusterFixture c(o);
  if (!c.Start()) return;
  csi::VolumeStore on_a(c.mnt(0), "A"), on_b(c.mnt(1), "B");
  csi::VolumeSpec spec{{"etl", "stage1", false}, 0, {csi::Retention::Kind::kKeep, 0}, "etl/producer"};
  csi::VolumeSpec spec_b = spec;
  spec_b.pod = "etl/consumer";
  ASSERT_TRUE(on_a.Acquire(spec, "/pods/producer/v").ok());
  ASSERT_TRUE(on_b.Acquire(spec_b, "/pods/consumer/v").ok());
  ASSERT_TRUE(Write(on_a.DataDir(spec.key) + "/from-a", Pattern(30, 300000)));
  ASSERT_TRUE(Write(on_b.DataDir(spec.key) + "/from-b", Pattern(31, 100000)));
  std::string back;
  ASSERT_TRUE(ReadWholeFile(on_b.DataDir(spec.key) + "/from-a", &back));

  for (size_t n : {0, 1}) {
    Json v = AdminJson(c.mnt(n), {"volumes"});
    ASSERT_EQ(v.Find("volumes")->size(), 1u) << v.Dump();
    const Json& vol = v.Find("volumes")->items()[0];
    EXPECT_EQ(IntField(vol, "files"), 2);
    EXPECT_EQ(IntField(vol, "bytes"), 400000);
    // A holds its own file; B its own and a copy of A's.
    EXPECT_EQ(IntField(vol, "local_bytes"), n == 0 ? 300000 : 400000) << c.name(n);
    std::map<std::string, int64_t> owners;
    for (const Json& o : vol.Find("nodes")->items()) owners[StrField(o, "node")] = IntField(o, "bytes");
    EXPECT_EQ(owners, (std::map<std::string, int64_t>{{"A", 300000}, {"B", 100000}})) << vol.Dump();
    EXPECT_EQ(IntField(vol, "publications"), 2);
    ASSERT_EQ(vol.Find("pods_here")->size(), 1u);
    EXPECT_EQ(vol.Find("pods_here")->items()[0].as_string(), n == 0 ? "etl/producer" : "etl/consumer");
  }

  // Deleted on A: B's copy is garbage, and gc on B removes it.
  const uint64_t ino = InoOf(on_a.DataDir(spec.key) + "/from-a");
  ASSERT_EQ(unlink((on_a.DataDir(spec.key) + "/from-a").c_str()), 0);
  struct stat st;
  ASSERT_EQ(stat(c.DataFile(1, ino).c_str(), &st), 0) << "B had no copy to collect";
  // B's kernel may still hold the name for --cache-timeout; gc looks at the
  // namespace, not at B's kernel.
  Json g = AdminJson(c.mnt(1), {"gc"});
  EXPECT_GE(IntField(g, "removed_data_files"), 1) << g.Dump();
  EXPECT_NE(stat(c.DataFile(1, ino).c_str(), &st), 0) << "B's copy of a deleted file is still there";
}

TEST(AdminClusterTest, DrainThenStopTheNode) {
  TEMPFS_SKIP_IF_NO_CLUSTER();
  ClusterOptions o;
  o.nodes = 2;
  ClusterFixture c(o);
  if (!c.Start()) return;
  std::vector<std::string> data;
  ASSERT_EQ(mkdir(c.Path(0, "d").c_str(), 0755), 0);
  for (int i = 0; i < 6; i++) {
    data.push_back(Pattern(20 + i, (i + 1) * 700 * 1024));
    ASSERT_TRUE(Write(c.Path(0, "d/f" + std::to_string(i)), data[i]));
  }
  // One of them B has already read: its copy is taken over without a copy.
  std::string back;
  ASSERT_TRUE(ReadWholeFile(c.Path(1, "d/f0"), &back));
  const int64_t fetches_b = Counter(c.mnt(1), "remote_fetches");

  Json d = AdminJson(c.mnt(0), {"drain"});
  EXPECT_EQ(IntField(d, "files"), 6);
  EXPECT_EQ(Counter(c.mnt(1), "remote_fetches"), fetches_b + 5) << "f0 was copied again";
  for (int i = 0; i < 6; i++) {
    Json loc = FirstFile(AdminJson(c.mnt(1), {"locate", c.Path(1, "d/f" + std::to_string(i))}));
    EXPECT_EQ(StrField(loc, "owner"), "B") << i;
    EXPECT_TRUE(Field(loc, "owned_here")) << i;
  }
  Json s = AdminJson(c.mnt(0), {"status"});
  EXPECT_EQ(IntField(*s.Find("capacity"), "own_files"), 0) << s.Dump();
  // A goes away: everything is still readable on B.
  c.KillNode(0);
  for (int i = 0; i < 6; i++) {
    ASSERT_TRUE(ReadWholeFile(c.Path(1, "d/f" + std::to_string(i)), &back)) << i << ": " << ErrName(errno);
    EXPECT_TRUE(back == data[i]) << i;
  }
}


// A file whose data file is gone from the store: locate says it is lost.
TEST(AdminSingleNodeTest, LocateReportsLostData) {
  TEMPFS_SKIP_IF_NO_FUSE();
  TempDir dir("admin-lost");
  auto m = TempfsMount::Start(dir.path());
  ASSERT_NE(m, nullptr);
  const std::string f = m->mnt() + "/f", g = m->mnt() + "/g";
  ASSERT_TRUE(Write(f, Pattern(4, 5000)));
  ASSERT_TRUE(Write(g, Pattern(5, 5000)));
  const uint64_t ino = InoOf(f);
  EXPECT_FALSE(Field(FirstFile(AdminJson(m->mnt(), {"locate", f})), "lost"));
  ASSERT_EQ(m->Unmount().exit_code, 0);
  char name[64];
  snprintf(name, sizeof name, "/data/%02x/%016llx", static_cast<unsigned>(ino & 0xff),
           static_cast<unsigned long long>(ino));
  ASSERT_EQ(unlink((m->store() + name).c_str()), 0) << strerror(errno);
  ASSERT_TRUE(m->Remount());
  const Json loc = FirstFile(AdminJson(m->mnt(), {"locate", f}));
  EXPECT_TRUE(Field(loc, "lost"));
  EXPECT_FALSE(Field(loc, "local_copy"));
  EXPECT_FALSE(Field(FirstFile(AdminJson(m->mnt(), {"locate", g})), "lost"));
  CommandResult text = Admin(m->mnt(), {"locate", f});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("data lost"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace tempfs::testing
