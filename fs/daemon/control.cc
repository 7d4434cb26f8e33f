#include "daemon/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "cluster/net.h"
#include "cluster/peer_client.h"
#include "cluster/peer_server.h"
#include "cluster/registry.h"
#include "common/log.h"
#include "meta/redis_client.h"
#include "vfs/vfs.h"

#ifndef TEMPFS_VERSION
#define TEMPFS_VERSION "unknown"
#endif

namespace tempfs {
namespace {

constexpr size_t kMaxRequest = 64 * 1024;

// Calls `fn` with the address of the Unix socket at `path`. sun_path holds
// 107 bytes; a longer path is reached through its directory's descriptor.
Status WithUnixAddress(const std::string& path, const std::function<int(const sockaddr*, socklen_t)>& fn) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::string p = path;
  int dir_fd = -1;
  if (p.size() >= sizeof sa.sun_path) {
    std::string dir = p.substr(0, p.rfind('/'));
    dir_fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return Status::FromErrno(dir);
    p = "/proc/self/fd/" + std::to_string(dir_fd) + p.substr(p.rfind('/'));
    if (p.size() >= sizeof sa.sun_path) {
      close(dir_fd);
      return Status::Err(ENAMETOOLONG, path);
    }
  }
  memcpy(sa.sun_path, p.c_str(), p.size() + 1);
  int rc = fn(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  int err = errno;
  if (dir_fd >= 0) close(dir_fd);
  if (rc != 0) return Status::Err(err, path);
  return Status::Ok();
}

bool WriteLine(int fd, const Json& j) {
  std::string line = j.Dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

// Reads one line (without the newline) of at most kMaxRequest bytes.
Result<std::string> ReadLine(int fd, std::string& buffer) {
  for (;;) {
    size_t nl = buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    if (buffer.size() > kMaxRequest) return Status::Err(EMSGSIZE, "line too long");
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Status::Err(ECONNRESET, "connection closed");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Err(ETIMEDOUT, "no answer in time");
      return Status::FromErrno("recv");
    }
    buffer.append(buf, n);
  }
}

Json ErrorJson(const Status& st) {
  return Json::Object().Set("ok", false).Set("errno", st.err()).Set("error", st.message().empty() ? std::string(strerror(st.err())) : st.message());
}

Result<Ino> InoOf(const Json& request) {
  const Json* ino = request.Find("ino");
  if (ino == nullptr || !ino->is_int() || ino->as_int() <= 0) return Status::Err(EINVAL, "request needs \"ino\": a positive integer");
  return static_cast<Ino>(ino->as_int());
}

std::string Hex(uint64_t v) {
  char b[17];
  snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

const char* TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symlink";
    default: return "special";
  }
}

}  // namespace

ControlServer::ControlServer(ControlContext ctx) : ctx_(std::move(ctx)) {}

ControlServer::~ControlServer() { Stop(); }

Status ControlServer::Start() {
  const std::string path = SocketPath(ctx_.store);
  // Only the daemon holding the store's lock gets here: an old socket is stale.
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("unlink " + path);
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Status::FromErrno("socket");
  TEMPFS_RETURN_IF_ERROR(WithUnixAddress(path, [&](const sockaddr* sa, socklen_t len) { return bind(listen_fd_, sa, len); }));
  if (chmod(path.c_str(), 0600) != 0) return Status::FromErrno("chmod " + path);
  if (listen(listen_fd_, 16) != 0) return Status::FromErrno("listen " + path);
  if (pipe2(stop_pipe_, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
  accept_ = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

void ControlServer::Stop() {
  if (accept_.joinable()) {
    char c = 0;
    ssize_t n = write(stop_pipe_[1], &c, 1);
    (void)n;
    accept_.join();
  }
  // Connections are shut down: long commands fail at their next progress
  // line or stop check, and every command's work is bounded, so the wait
  // ends (the threads use this object until they are done).
  connections_.CloseAll();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    unlink(SocketPath(ctx_.store).c_str());
  }
  for (int& fd : stop_pipe_) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

void ControlServer::AcceptLoop() {
  for (;;) {
    int fd = AcceptUntilStopped(listen_fd_, stop_pipe_[0]);
    if (fd == kAcceptStopped) return;
    if (fd < 0) continue;
    if (!connections_.Spawn(fd, [this](int c) { Serve(c); })) {
      WriteLine(fd, ErrorJson(Status::Err(EBUSY, "too many admin connections")));
      close(fd);
    }
  }
}

void ControlServer::Serve(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
  if (cred.uid != 0 && cred.uid != geteuid()) {
    TLOG_WARN("control: refused a caller with uid %u (pid %d)", cred.uid, cred.pid);
    WriteLine(fd, ErrorJson(Status::Err(EACCES, "permission denied: the control socket serves only root and uid " +
                                                    std::to_string(geteuid()))));
    return;
  }
  SetSocketTimeout(fd, SO_RCVTIMEO, std::chrono::seconds(5));
  SetSocketTimeout(fd, SO_SNDTIMEO, std::chrono::seconds(10));
  std::string buffer;
  auto line = ReadLine(fd, buffer);
  if (!line.ok()) return;
  auto request = Json::Parse(*line);
  if (!request.ok() || !request->is_object()) {
    WriteLine(fd, ErrorJson(Status::Err(EINVAL, "a request is one JSON object on one line")));
    return;
  }
  auto progress = [&](Json p) {
    return !connections_.closing() && WriteLine(fd, Json::Object().Set("progress", std::move(p)));
  };
  auto result = Handle(*request, progress);
  if (!result.ok()) {
    WriteLine(fd, ErrorJson(result.status()));
    return;
  }
  WriteLine(fd, Json::Object().Set("ok", true).Set("result", std::move(*result)));
}

Result<Json> ControlServer::Handle(const Json& request, const std::function<bool(Json)>& progress) {
  const Json* cmd = request.Find("cmd");
  if (cmd == nullptr || !cmd->is_string()) return Status::Err(EINVAL, "request needs \"cmd\"");
  const std::string& c = cmd->as_string();
  Vfs& vfs = *ctx_.vfs;
  if (c == "status") return Status_();
  if (c == "locate") return Locate(request);
  if (c == "tree") return Tree(request);
  if (c == "prefetch") return Prefetch(request, progress);
  if (c == "peers") return Peers();
  if (c == "drain") return Drain(progress);
  if (c == "evict") {
    auto ino = InoOf(request);
    if (!ino.ok()) return ino.status();
    auto freed = vfs.Evict(*ino);
    if (!freed.ok()) return freed.status();
    return Json::Object().Set("ino", *ino).Set("freed_bytes", *freed);
  }
  if (c == "pin") {
    auto ino = InoOf(request);
    if (!ino.ok()) return ino.status();
    const Json* on = request.Find("on");
    if (on == nullptr || !on->is_bool()) return Status::Err(EINVAL, "pin needs \"on\": true or false");
    Status st = vfs.Pin(*ino, on->as_bool());
    if (!st.ok()) return st;
    return Json::Object().Set("ino", *ino).Set("pinned", on->as_bool());
  }
  if (c == "gc") {
    if (!vfs.clustered()) return Json::Object().Set("removed_files", 0);
    return Json::Object().Set("removed_files", static_cast<int64_t>(vfs.CollectGarbage()));
  }
  return Status::Err(EINVAL, "unknown command '" + c + "'");
}

namespace {

// Resident size of this process, from /proc/self/statm (0 if unreadable).
uint64_t ResidentBytes() {
  FILE* f = fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

Json MemoryStatus(Vfs& vfs) {
  VfsTables t = vfs.Tables();
  return Json::Object()
      .Set("rss_bytes", ResidentBytes())
      .Set("kernel_inodes", t.kernel_inodes)
      .Set("kernel_inode_buckets", t.kernel_inode_buckets)
      .Set("cluster_entries", t.cluster_entries)
      .Set("meta_inodes", t.meta_inodes)
      .Set("meta_buckets", t.meta_buckets);
}

}  // namespace

Result<Json> ControlServer::Status_() {
  Vfs& vfs = *ctx_.vfs;
  auto usage = vfs.Usage();
  if (!usage.ok()) return usage.status();
  const VfsCounters& k = vfs.counters();
  auto now = std::chrono::system_clock::now();
  Json meta = Json::Object().Set("engine", ctx_.meta);
  if (ctx_.redis != nullptr) {
    auto t0 = std::chrono::steady_clock::now();
    auto pong = ctx_.redis->Command({"PING"});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    meta.Set("healthy", pong.ok()).Set("latency_ms", ms);
    if (!pong.ok()) meta.Set("error", pong.status().ToString());
  } else {
    meta.Set("healthy", true);
  }
  // A lost or foreign namespace: the node keeps its data and serves nothing.
  NamespaceState ns = vfs.meta().Namespace();
  if (!ns.id.empty()) meta.Set("namespace", ns.id);
  meta.Set("fenced", !ns.intact);
  if (!ns.intact) meta.Set("healthy", false).Set("error", "fenced: " + ns.problem);
  // Volumes, as the CSI plugin files them: volumes/<namespace>/<name>.
  int64_t volumes = 0;
  if (auto top = vfs.meta().Lookup(kRootIno, "volumes"); top.ok() && S_ISDIR(top->mode)) {
    if (auto nss = vfs.meta().ReadDir(top->ino); nss.ok()) {
      for (const DirEntry& ns : *nss) {
        auto vols = vfs.meta().ReadDir(ns.ino);
        if (!vols.ok()) continue;
        for (const DirEntry& v : *vols) {
          if (v.name != "_id") {
            volumes++;
          } else if (auto ids = vfs.meta().ReadDir(v.ino); ids.ok()) {
            volumes += static_cast<int64_t>(ids->size());
          }
        }
      }
    }
  }
  Json out = Json::Object()
                 .Set("node", ctx_.node_id)
                 .Set("version", TEMPFS_VERSION)
                 .Set("pid", static_cast<int64_t>(getpid()))
                 .Set("mode", vfs.clustered() ? "cluster" : "single node")
                 .Set("data_path", ctx_.data_path ? ctx_.data_path() : "")
                 .Set("store", ctx_.store)
                 .Set("mountpoint", ctx_.mountpoint)
                 .Set("meta", std::move(meta))
                 .Set("metrics", [&] {
                   std::lock_guard lock(mu_);
                   return metrics_address_.empty() ? Json() : Json(metrics_address_);
                 }())
                 .Set("uptime_s", std::chrono::duration_cast<std::chrono::seconds>(now - ctx_.started).count())
                 .Set("capacity", Json::Object()
                                      .Set("total_bytes", usage->total_bytes)
                                      .Set("free_bytes", usage->free_bytes)
                                      .Set("own_bytes", usage->own_bytes)
                                      .Set("own_files", usage->own_files)
                                      .Set("cached_bytes", usage->cached_bytes)
                                      .Set("cached_files", usage->cached_files)
                                      .Set("pinned_files", usage->pinned_files))
                 .Set("volumes", volumes)
                 .Set("memory", MemoryStatus(vfs))
                 .Set("counters", Json::Object()
                                      .Set("local_opens", k.local_opens.load())
                                      .Set("remote_fetches", k.remote_fetches.load())
                                      .Set("bytes_fetched", k.bytes_fetched.load())
                                      .Set("fetch_failures", k.fetch_failures.load())
                                      .Set("checksum_failures", k.checksum_failures.load())
                                      .Set("versions_committed", k.versions_committed.load())
                                      .Set("write_conflicts", k.write_conflicts.load())
                                      .Set("evictions", k.evictions.load()));
  if (ctx_.registry != nullptr) {
    auto peers = Peers();
    if (!peers.ok()) return peers.status();
    const Json* list = peers->Find("peers");
    out.Set("peers", list != nullptr ? *list : Json::Array());
  } else {
    out.Set("peers", Json::Array());
  }
  return out;
}

std::string ControlServer::OwnerName(const Attr& a) {
  if (!ctx_.vfs->clustered() || a.owner == 0) return ctx_.node_id;
  return ctx_.registry != nullptr ? ctx_.registry->Name(a.owner) : "";
}

Result<Json> ControlServer::Locate(const Json& request) {
  const Json* inos = request.Find("inos");
  if (inos == nullptr || !inos->is_array()) return Status::Err(EINVAL, "locate needs \"inos\": [ino, ...]");
  Json files = Json::Array();
  for (const Json& j : inos->items()) {
    if (!j.is_int() || j.as_int() <= 0) return Status::Err(EINVAL, "inode numbers are positive integers");
    auto loc = ctx_.vfs->Locate(static_cast<Ino>(j.as_int()));
    if (!loc.ok()) {
      files.Push(Json::Object().Set("ino", j.as_int()).Set("errno", loc.err()).Set("error", loc.status().ToString()));
      continue;
    }
    const Attr& a = loc->attr;
    bool clustered = ctx_.vfs->clustered();
    files.Push(Json::Object()
                   .Set("ino", static_cast<int64_t>(a.ino))
                   .Set("type", TypeName(a.mode))
                   .Set("size", a.size)
                   .Set("version", a.version)
                   .Set("checksum", clustered && a.owner != 0 ? Json(Hex(a.checksum)) : Json())
                   .Set("owner", OwnerName(a))
                   .Set("owned_here", loc->owned_here)
                   .Set("local_copy", loc->local_current)
                   .Set("lost", loc->lost)
                   .Set("pinned", loc->pinned)
                   .Set("fetching", loc->fetching)
                   .Set("fetched_bytes", loc->fetched_bytes));
  }
  return Json::Object().Set("files", std::move(files));
}

Result<Json> ControlServer::Tree(const Json& request) {
  auto root = InoOf(request);
  if (!root.ok()) return root.status();
  MetaEngine& meta = ctx_.vfs->meta();
  auto top = meta.GetAttr(*root);
  if (!top.ok()) return top.status();
  int64_t files = 0, dirs = 0;
  uint64_t bytes = 0, local_bytes = 0;
  std::map<std::string, std::pair<int64_t, uint64_t>> by_owner;  // node -> files, bytes
  std::vector<Ino> stack;
  if (S_ISDIR(top->mode)) {
    stack.push_back(*root);
  } else {
    stack.clear();
  }
  auto count_file = [&](Ino ino) {
    auto loc = ctx_.vfs->Locate(ino);
    if (!loc.ok() || !S_ISREG(loc->attr.mode)) return;
    files++;
    bytes += loc->attr.size;
    if (loc->local_current) local_bytes += loc->attr.size;
    const Attr& a = loc->attr;
    auto& o = by_owner[OwnerName(a)];
    o.first++;
    o.second += a.size;
  };
  if (!S_ISDIR(top->mode)) count_file(*root);
  while (!stack.empty()) {
    if (connections_.closing()) return Status::Err(ECANCELED, "the daemon is stopping");
    Ino dir = stack.back();
    stack.pop_back();
    dirs++;
    auto entries = meta.ReadDir(dir);
    if (!entries.ok()) continue;  // removed meanwhile
    for (const DirEntry& e : *entries) {
      if (S_ISDIR(e.mode)) {
        stack.push_back(e.ino);
      } else if (S_ISREG(e.mode)) {
        count_file(e.ino);
      }
    }
  }
  Json owners = Json::Array();
  for (auto& [node, fb] : by_owner) {
    owners.Push(Json::Object().Set("node", node).Set("files", fb.first).Set("bytes", fb.second));
  }
  return Json::Object()
      .Set("ino", static_cast<int64_t>(*root))
      .Set("files", files)
      .Set("directories", dirs)
      .Set("bytes", bytes)
      .Set("local_bytes", local_bytes)
      .Set("owners", std::move(owners));
}

Result<Json> ControlServer::Prefetch(const Json& request, const std::function<bool(Json)>& progress) {
  auto ino = InoOf(request);
  if (!ino.ok()) return ino.status();
  auto f = ctx_.vfs->Prefetch(*ino);
  if (!f.ok()) return f.status();
  if (!*f) return Json::Object().Set("ino", static_cast<int64_t>(*ino)).Set("already_local", true).Set("bytes", 0);
  std::shared_ptr<Fetch> fetch = *f;
  while (!fetch->finished()) {
    (void)fetch->WaitDone(std::chrono::milliseconds(250));
    if (fetch->finished()) break;
    if (!progress(Json::Object().Set("ino", static_cast<int64_t>(*ino)).Set("bytes", fetch->bytes()).Set("size", fetch->attr().size))) {
      return Status::Err(ECANCELED, "cancelled (the copy goes on in the background)");
    }
  }
  Status st = fetch->result();
  if (!st.ok()) return st;
  return Json::Object()
      .Set("ino", static_cast<int64_t>(*ino))
      .Set("already_local", false)
      .Set("bytes", fetch->bytes())
      .Set("ms", static_cast<int64_t>(fetch->elapsed().count()));
}

Result<Json> ControlServer::Peers() {
  Json list = Json::Array();
  if (ctx_.registry == nullptr) return Json::Object().Set("cluster", false).Set("peers", std::move(list));
  auto members = ctx_.registry->Members();
  if (!members.ok()) return members.status();
  std::map<uint32_t, uint64_t> served, fetched;
  if (ctx_.peer_server != nullptr) served = ctx_.peer_server->BytesServed();
  if (ctx_.peer_client != nullptr) fetched = ctx_.peer_client->BytesFetched();
  for (const auto& m : *members) {
    list.Push(Json::Object()
                  .Set("node", m.name)
                  .Set("number", static_cast<int64_t>(m.num))
                  .Set("self", m.num == ctx_.registry->self())
                  .Set("address", m.address)
                  .Set("alive", m.heartbeat_age_ms >= 0)
                  .Set("heartbeat_age_ms", m.heartbeat_age_ms)
                  .Set("bytes_served_to", served[m.num])
                  .Set("bytes_fetched_from", fetched[m.num]));
  }
  return Json::Object().Set("cluster", true).Set("peers", std::move(list));
}

Result<Json> ControlServer::Drain(const std::function<bool(Json)>& progress) {
  DrainProgress last;
  auto t0 = std::chrono::steady_clock::now();
  Status st = ctx_.vfs->Drain(
      [&](const DrainProgress& p) {
        last = p;
        return progress(Json::Object()
                            .Set("files_total", p.files_total)
                            .Set("files_done", p.files_done)
                            .Set("bytes_total", p.bytes_total)
                            .Set("bytes_done", p.bytes_done));
      },
      std::chrono::seconds(60), [this] {
        uint64_t total = 0;
        if (ctx_.peer_server != nullptr) {
          for (auto& [node, bytes] : ctx_.peer_server->BytesServed()) total += bytes;
        }
        return total;
      });
  if (!st.ok()) return st;
  return Json::Object()
      .Set("files", last.files_done)
      .Set("bytes", last.bytes_done)
      .Set("ms", static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - t0).count()));
}

Result<Json> ControlCall(const std::string& store, const Json& request, const std::function<void(const Json&)>& progress,
                         std::chrono::milliseconds timeout) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  const std::string path = ControlServer::SocketPath(store);
  Status st = WithUnixAddress(path, [&](const sockaddr* sa, socklen_t len) { return connect(fd, sa, len); });
  if (!st.ok()) {
    if (st.err() == ENOENT || st.err() == ECONNREFUSED) {
      return Status::Err(st.err(), "the tempfs daemon of " + store + " is not running (no " + path + ")");
    }
    if (st.err() == EACCES) return Status::Err(EACCES, "permission denied on " + path + " (run as root or the daemon's user)");
    return st;
  }
  SetSocketTimeout(fd, SO_RCVTIMEO, timeout);
  SetSocketTimeout(fd, SO_SNDTIMEO, timeout);
  // A daemon that refuses the caller answers and closes at once, maybe
  // before the request is sent: its answer is what counts.
  int send_err = WriteLine(fd, request) ? 0 : errno;
  std::string buffer;
  for (;;) {
    auto line = ReadLine(fd, buffer);
    if (!line.ok()) {
      if (send_err != 0) return Status::Err(send_err, "send to the daemon");
      if (line.err() == ECONNRESET) return Status::Err(ECONNRESET, "the daemon closed the connection without an answer");
      return Status::Err(line.err(), "waiting for the daemon: " + line.status().message());
    }
    auto j = Json::Parse(*line);
    if (!j.ok() || !j->is_object()) return Status::Err(EPROTO, "the daemon sent something that is not JSON");
    if (const Json* p = j->Find("progress")) {
      if (progress) progress(*p);
      continue;
    }
    const Json* ok = j->Find("ok");
    if (ok != nullptr && ok->is_bool() && ok->as_bool()) {
      const Json* r = j->Find("result");
      return r != nullptr ? *r : Json();
    }
    const Json* err = j->Find("errno");
    const Json* msg = j->Find("error");
    return Status::Err(err != nullptr && err->is_int() ? static_cast<int>(err->as_int()) : EIO,
                       msg != nullptr && msg->is_string() ? msg->as_string() : "the daemon failed");
  }
}

}  // namespace tempfs
