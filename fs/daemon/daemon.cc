#include "daemon/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "cluster/auth.h"
#include "cluster/peer_client.h"
#include "cluster/peer_server.h"
#include "cluster/registry.h"
#include "common/log.h"
#include "common/metrics.h"
#include "daemon/control.h"
#include "daemon/metrics_server.h"
#include "daemon/mount_table.h"
#include "fuse/fuse_adapter.h"
#include "meta/meta_engine.h"
#include "meta/namespace_identity.h"
#include "meta/redis_meta.h"
#include "store/local_store.h"
#include "vfs/vfs.h"

namespace tempfs {
namespace {

int Fail(const std::string& msg) {
  fprintf(stderr, "tempfs: %s\n", msg.c_str());
  return 1;
}

void LibfuseLog(enum fuse_log_level level, const char* fmt, va_list ap) {
  VLogf(level <= FUSE_LOG_ERR ? LogLevel::kError : level <= FUSE_LOG_WARNING ? LogLevel::kWarn
                                                                                : LogLevel::kInfo,
        fmt, ap);
}

bool Clustered(const MountConfig& c) { return c.meta_uri.rfind("redis://", 0) == 0; }

// Cluster options must come together, and only with a shared engine.
Status CheckClusterOptions(const MountConfig& c) {
  bool any = !c.node_id.empty() || !c.listen.empty() || !c.secret_file.empty() || !c.advertise.empty();
  if (!Clustered(c)) {
    if (c.join_new_namespace) return Status::Err(EINVAL, "--join-new-namespace needs --meta redis://HOST:PORT");
    if (any) return Status::Err(EINVAL, "--node-id, --listen, --advertise and --secret-file need --meta redis://HOST:PORT");
    return Status::Ok();
  }
  if (c.node_id.empty() || c.listen.empty() || c.secret_file.empty()) {
    return Status::Err(EINVAL, "cluster mode (--meta redis://...) needs --node-id, --listen and --secret-file");
  }
  if (c.node_id.size() > 63 || c.node_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos) {
    return Status::Err(EINVAL, "node id '" + c.node_id + "' must be 1-63 letters, digits, '.', '_' or '-'");
  }
  if (c.peer_timeout <= 0 || c.peer_timeout > 3600) return Status::Err(EINVAL, "--peer-timeout must be in (0, 3600] seconds");
  if (c.cache_timeout < 0 || c.cache_timeout > 3600) return Status::Err(EINVAL, "--cache-timeout must be in [0, 3600] seconds");
  auto l = HostPort::Parse(c.listen);
  if (!l.ok()) return Status::Err(EINVAL, "--listen: " + l.status().message());
  if (!c.advertise.empty()) {
    auto a = HostPort::Parse(c.advertise);
    if (!a.ok()) return Status::Err(EINVAL, "--advertise: " + a.status().message());
  }
  auto sec = ReadSecretFile(c.secret_file);
  if (!sec.ok()) return sec.status();
  return Status::Ok();
}

// Checks that can be made before anything is touched.
Status Precheck(const std::string& store, const std::string& mnt) {
  struct stat st;
  if (stat(store.c_str(), &st) != 0) return Status::FromErrno("store " + store);
  if (!S_ISDIR(st.st_mode)) return Status::Err(ENOTDIR, "store " + store);
  if (auto m = FindMount(mnt)) {
    if (stat(mnt.c_str(), &st) != 0 && IsDeadMountErrno(errno)) {
      return Status::Err(EBUSY, mnt + " holds a dead tempfs mount; run 'tempfs umount " + mnt + "' first");
    }
    return Status::Err(EBUSY, mnt + " is already a mount point (" + m->fstype + ")");
  }
  if (stat(mnt.c_str(), &st) != 0) return Status::FromErrno("mountpoint " + mnt);
  if (!S_ISDIR(st.st_mode)) return Status::Err(ENOTDIR, "mountpoint " + mnt);
  pid_t pid = 0;
  if (StoreLock::IsHeld(store, &pid)) {
    return Status::Err(EBUSY, "store " + store + " is already served by tempfs (pid " + std::to_string(pid) + ")");
  }
  return Status::Ok();
}

// --metrics HOST:PORT; port 0 asks for a free one (status tells which).
Result<HostPort> ParseMetricsAddress(const std::string& s) {
  bool any_port = s.size() > 2 && s.compare(s.size() - 2, 2, ":0") == 0;
  auto hp = HostPort::Parse(any_port ? s.substr(0, s.size() - 1) + "1" : s);
  if (!hp.ok()) return Status::Err(EINVAL, "bad address '" + s + "' (HOST:PORT)");
  if (any_port) hp->port = 0;
  return hp;
}

// The node's counters as Prometheus metrics (the FUSE and peer latency
// histograms are registered where they are observed).
void RegisterNodeMetrics(MetricsRegistry& m, Vfs& vfs, PeerServer* server, const std::string& node) {
  const VfsCounters& k = vfs.counters();
  auto counter = [&](const char* name, const char* help, const std::atomic<uint64_t>& v) {
    m.AddCounterCallback(name, help, {}, [&v] { return v.load(); });
  };
  counter("tempfs_local_opens_total", "Opens served from data on this node", k.local_opens);
  counter("tempfs_remote_fetches_total", "Copies of other nodes' files started", k.remote_fetches);
  counter("tempfs_fetched_bytes_total", "Bytes copied from other nodes", k.bytes_fetched);
  counter("tempfs_fetch_failures_total", "Copies that failed (peer gone, timeout, checksum)", k.fetch_failures);
  counter("tempfs_checksum_failures_total", "Copies whose checksum did not match", k.checksum_failures);
  counter("tempfs_versions_committed_total", "New file versions published by this node", k.versions_committed);
  counter("tempfs_write_conflicts_total", "Closes refused because another node wrote first", k.write_conflicts);
  counter("tempfs_evictions_total", "Cached copies dropped", k.evictions);
  if (server != nullptr) {
    m.AddCounterCallback("tempfs_peer_served_bytes_total", "Bytes served to other nodes", {},
                         [server] { return server->bytes_served.load(); });
    m.AddCounterCallback("tempfs_peer_rejected_requests_total", "Peer requests refused for bad authentication", {},
                         [server] { return server->rejected.load(); });
    m.AddCounterCallback("tempfs_peer_unauthenticated_closed_total",
                         "Peer connections ended before they authenticated", {{"why", "deadline"}},
                         [server] { return server->unauthenticated_closed.load(); });
    m.AddCounterCallback("tempfs_peer_unauthenticated_closed_total",
                         "Peer connections ended before they authenticated", {{"why", "pushed_out"}},
                         [server] { return server->unauthenticated_pushed_out(); });
  }
  auto store_bytes = [&vfs](bool free) {
    auto sv = vfs.store().StatFs();
    if (!sv.ok()) return 0.0;
    return static_cast<double>(free ? sv->f_bavail : sv->f_blocks) * sv->f_frsize;
  };
  m.AddGaugeCallback("tempfs_store_bytes", "Size of the store's file system", {{"kind", "total"}},
                     [store_bytes] { return store_bytes(false); });
  m.AddGaugeCallback("tempfs_store_bytes", "Size of the store's file system", {{"kind", "free"}},
                     [store_bytes] { return store_bytes(true); });
  m.AddGaugeCallback("tempfs_info", "The node's version and id", {{"version", TEMPFS_VERSION}, {"node", node}},
                     [] { return 1.0; });
}

// The serving half: runs in the daemon. `report` gets one line, "OK" once
// the mount serves, or the reason it could not.
int Serve(const MountConfig& c, const std::function<void(const std::string&)>& report) {
  auto lock = StoreLock::Acquire(c.store);
  if (!lock.ok()) {
    report(lock.status().message());
    return 1;
  }
  auto store = LocalStore::Open(c.store);
  if (!store.ok()) {
    report(store.status().ToString());
    return 1;
  }
  MetaOpenOptions mo;
  mo.join_new_namespace = c.join_new_namespace;
  auto meta = OpenMetaEngine(c.meta_uri, c.store, mo);
  if (!meta.ok()) {
    // Damage comes with its own message, which says what to do.
    report(meta.err() == EUCLEAN ? meta.status().message() : "metadata: " + meta.status().ToString());
    return 1;
  }
  if (!(*meta)->Namespace().left.empty()) {
    // The old namespace's data was set aside: start the store afresh.
    store->reset();
    store = LocalStore::Open(c.store);
    if (!store.ok()) {
      report(store.status().ToString());
      return 1;
    }
  }
  auto* redis_meta = dynamic_cast<RedisMeta*>(meta->get());
  // Declared before everything that keeps a metric of it.
  std::unique_ptr<MetricsRegistry> metrics;
  if (!c.metrics.empty()) metrics = std::make_unique<MetricsRegistry>();
  VfsOptions vo;
  std::chrono::milliseconds peer_timeout(static_cast<long>(c.peer_timeout * 1000));
  std::unique_ptr<RedisClient> cluster_redis;
  std::unique_ptr<NodeRegistry> registry;
  std::unique_ptr<PeerClient> peers;
  std::string secret;
  HostPort listen;
  if (Clustered(c)) {
    secret = *ReadSecretFile(c.secret_file);
    listen = *HostPort::Parse(c.listen);
    HostPort advertise = c.advertise.empty() ? listen : *HostPort::Parse(c.advertise);
    cluster_redis = std::make_unique<RedisClient>(*RedisAddress::Parse(c.meta_uri), std::chrono::seconds(5));
    auto ident = ReadStoreIdentity(c.store);  // the engine recorded the namespace
    if (!ident.ok() || !ident->has_value()) {
      report("cluster: " + (ident.ok() ? StoreIdentityPath(c.store) + " is missing" : ident.status().ToString()));
      return 1;
    }
    StoreIdentity& rec = **ident;
    registry = std::make_unique<NodeRegistry>(*cluster_redis, c.node_id, advertise, std::chrono::seconds(10),
                                              NodeRegistry::Identity{rec.ns, rec.store_id, rec.node});
    // The heartbeat checks the namespace every few seconds, also while no
    // metadata operation runs.
    if (redis_meta != nullptr) {
      registry->set_on_namespace_lost([redis_meta](const std::string& why) { redis_meta->Fence(why); });
    }
    auto num = registry->Join();
    if (!num.ok()) {
      report("cluster: " + num.status().ToString());
      return 1;
    }
    if (rec.node != *num) {
      rec.node = *num;
      if (Status ws = WriteStoreIdentity(c.store, rec); !ws.ok()) {
        report("cluster: " + ws.ToString());
        return 1;
      }
    }
    peers = std::make_unique<PeerClient>(*registry, secret, peer_timeout);
    if (metrics) {
      peers->set_fetch_latency(&metrics->AddHistogram("tempfs_peer_fetch_seconds",
                                                      "Duration of range requests to other nodes (up to 4 MiB each)"));
    }
    vo.cluster.self = *num;
    vo.cluster.transport = peers.get();
    TLOG_INFO("joined the cluster as node %s (#%u), advertised at %s", c.node_id.c_str(), *num,
              advertise.ToString().c_str());
  }
  Vfs vfs(std::move(*meta), std::move(*store), vo);
  Status st = vfs.Start();
  if (!st.ok()) {
    report(st.ToString());
    return 1;
  }
  std::unique_ptr<PeerServer> server;
  // Cluster mode: data of files deleted or rewritten on other nodes is
  // removed in the background.
  std::mutex gc_mu;
  std::condition_variable gc_cv;
  bool gc_stop = false;
  std::thread gc;
  if (Clustered(c)) {
    gc = std::thread([&] {
      std::unique_lock lock(gc_mu);
      do {
        lock.unlock();
        vfs.CollectGarbage();
        lock.lock();
      } while (!gc_cv.wait_for(lock, std::chrono::seconds(30), [&] { return gc_stop; }));
    });
  }
  struct GcStopper {
    std::function<void()> fn;
    ~GcStopper() { fn(); }
  } stop_gc{[&] {
    {
      std::lock_guard lock(gc_mu);
      gc_stop = true;
    }
    gc_cv.notify_all();
    if (gc.joinable()) gc.join();
  }};
  if (Clustered(c)) {
    server = std::make_unique<PeerServer>(vfs, secret, peer_timeout);
    Status ss = server->Start(listen);
    if (!ss.ok()) {
      report("peers: " + ss.ToString());
      return 1;
    }
  }
  FuseAdapterOptions fo;
  fo.passthrough = c.passthrough;
  fo.writeback_cache = c.writeback_cache;
  if (Clustered(c)) {
    // Other nodes change the namespace: the kernel may trust what it cached
    // only briefly (opens always check versions).
    fo.entry_timeout = fo.attr_timeout = fo.negative_timeout = c.cache_timeout;
  }
  std::mutex mode_mu;
  std::string data_path = "starting";
  fo.metrics = metrics.get();
  fo.on_ready = [&](const std::string& mode) {
    {
      std::lock_guard lock(mode_mu);
      data_path = mode;
    }
    report("OK");
  };
  FuseAdapter adapter(vfs, fo);

  ControlContext cc;
  cc.vfs = &vfs;
  cc.node_id = Clustered(c) ? c.node_id : "";
  cc.store = c.store;
  cc.mountpoint = c.mountpoint;
  cc.meta = c.meta_uri.empty() ? "embedded" : c.meta_uri;
  cc.data_path = [&] {
    std::lock_guard lock(mode_mu);
    return data_path;
  };
  cc.registry = registry.get();
  cc.peer_client = peers.get();
  cc.peer_server = server.get();
  cc.redis = cluster_redis.get();
  ControlServer control(cc);
  if (Status cs = control.Start(); !cs.ok()) {
    report("control socket: " + cs.ToString());
    return 1;
  }
  std::unique_ptr<MetricsServer> metrics_server;
  if (metrics) {
    RegisterNodeMetrics(*metrics, vfs, server.get(), Clustered(c) ? c.node_id : "");
    metrics_server = std::make_unique<MetricsServer>([&] { return metrics->RenderPrometheus(); });
    HostPort where = *ParseMetricsAddress(c.metrics);
    if (Status ms = metrics_server->Start(where); !ms.ok()) {
      report("metrics on " + c.metrics + ": " + ms.ToString());
      return 1;
    }
    where.port = metrics_server->port();  // port 0 picks a free one
    control.set_metrics_address(where.ToString());
    TLOG_INFO("serving metrics on http://%s/metrics", where.ToString().c_str());
  }

  std::string opts = "allow_other,default_permissions,fsname=tempfs:" + c.store + ",subtype=tempfs";
  for (auto& o : c.fuse_options) opts += "," + o;
  std::vector<std::string> argv_s = {"tempfs", "-o", opts};
  if (c.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* se = fuse_session_new(&args, &FuseAdapter::Ops(), sizeof(fuse_lowlevel_ops), &adapter);
  if (se == nullptr) {
    report("cannot start a FUSE session with options '" + opts + "' (see the log)");
    return 1;
  }
  adapter.set_session(se);
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    report("cannot install signal handlers");
    return 1;
  }
  if (fuse_session_mount(se, c.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    report("cannot mount on " + c.mountpoint + " (see the log)");
    return 1;
  }
  TLOG_INFO("mounted %s on %s", c.store.c_str(), c.mountpoint.c_str());
  fuse_loop_config* lc = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(lc, 1);
  fuse_loop_cfg_set_max_threads(lc, 16);
  int rc = fuse_session_loop_mt(se, lc);
  fuse_loop_cfg_destroy(lc);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  Status sst = vfs.meta().Sync();
  if (!sst.ok()) TLOG_WARN("sync metadata: %s", sst.ToString().c_str());
  TLOG_INFO("unmounted %s", c.mountpoint.c_str());
  // A loop ended by SIGTERM, SIGINT or SIGHUP (libfuse returns the signal
  // number) is an orderly stop.
  bool by_signal = rc == SIGTERM || rc == SIGINT || rc == SIGHUP || rc == -SIGTERM || rc == -SIGINT || rc == -SIGHUP;
  return rc == 0 || by_signal ? 0 : 1;
}

}  // namespace

int RunMount(const MountConfig& config) {
  MountConfig c = config;
  c.store = LexicalAbsolute(c.store);
  c.mountpoint = LexicalAbsolute(c.mountpoint);
  if (c.debug) SetLogLevel(LogLevel::kDebug);
  fuse_set_log_func(LibfuseLog);
  Status st = CheckClusterOptions(c);
  if (!st.ok()) return Fail(st.message().empty() ? st.ToString() : st.message());
  if (!c.metrics.empty()) {
    if (auto m = ParseMetricsAddress(c.metrics); !m.ok()) return Fail("--metrics: " + m.status().message());
  }
  st = Precheck(c.store, c.mountpoint);
  if (!st.ok()) return Fail(st.ToString());
  if (c.log_file.empty() && !c.foreground) c.log_file = c.store + "/tempfs.log";

  if (c.foreground) {
    if (!c.log_file.empty()) {
      int fd = open(c.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0) return Fail("log " + c.log_file + ": " + strerror(errno));
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    bool ready = false;
    std::string failure;
    int rc = Serve(c, [&](const std::string& line) {
      if (line == "OK") ready = true;
      else failure = line;
    });
    if (!failure.empty()) {
      Logf(LogLevel::kError, "%s", failure.c_str());
      if (!c.log_file.empty()) fprintf(stdout, "tempfs: %s\n", failure.c_str());
    }
    return rc;
  }

  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return Fail(std::string("pipe: ") + strerror(errno));
  pid_t pid = fork();
  if (pid < 0) return Fail(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    close(pfd[0]);
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = open(c.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      dup2(null, STDOUT_FILENO);
    }
    dup2(log >= 0 ? log : null, STDERR_FILENO);
    int report_fd = pfd[1];
    auto report = [&report_fd](const std::string& line) {
      if (report_fd < 0) return;
      std::string l = line + "\n";
      ssize_t n = write(report_fd, l.data(), l.size());
      (void)n;
      close(report_fd);
      report_fd = -1;
    };
    int rc = Serve(c, report);
    if (report_fd >= 0) report("daemon exited before serving (see " + c.log_file + ")");
    _exit(rc);
  }
  close(pfd[1]);
  // Wait for the daemon's one line, bounded: a mount that never answers the
  // kernel's INIT must not hang the caller.
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (line.find('\n') == std::string::npos) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) {
      kill(pid, SIGTERM);
      return Fail("the daemon did not start serving within 30 s (see " + c.log_file + ")");
    }
    pollfd p{pfd[0], POLLIN, 0};
    int pr = poll(&p, 1, left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    char buf[512];
    ssize_t n = read(pfd[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, n);
  }
  close(pfd[0]);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (line == "OK") return 0;
  int status = 0;
  waitpid(pid, &status, 0);
  return Fail(line.empty() ? "the daemon exited before serving (see " + c.log_file + ")" : line);
}

int RunUmount(const std::string& mountpoint, bool lazy) {
  std::string mnt = LexicalAbsolute(mountpoint);
  auto m = FindMount(mnt);
  if (!m) return Fail(mnt + " is not mounted");
  std::string store = StoreOf(*m);
  if (store.empty()) return Fail(mnt + " is not a tempfs mount (" + m->fstype + ")");
  pid_t pid = 0;
  bool alive = StoreLock::IsHeld(store, &pid);
  if (umount2(mnt.c_str(), lazy ? MNT_DETACH : 0) != 0) {
    int err = errno;
    struct stat st;
    bool dead = stat(mnt.c_str(), &st) != 0 && IsDeadMountErrno(errno);
    if (err == EBUSY && dead) {
      // A killed daemon's mount that something still uses: detach it so a new
      // mount can take its place; users see ENOTCONN until they let go.
      if (umount2(mnt.c_str(), MNT_DETACH) != 0) return Fail("umount " + mnt + ": " + strerror(errno));
    } else if (err == EBUSY) {
      return Fail(mnt + " is busy (files or directories open on it); use --lazy to detach it anyway");
    } else {
      return Fail("umount " + mnt + ": " + strerror(err));
    }
  }
  if (!alive) return 0;
  // The daemon sees the unmount and exits; wait for it to let go of the store.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (StoreLock::IsHeld(store, nullptr)) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Fail("unmounted, but the daemon (pid " + std::to_string(pid) + ") still holds " + store);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

}  // namespace tempfs
