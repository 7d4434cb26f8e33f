// tempfs-admin: see and steer a tempfs node and its cluster.
//
// Talks to the node's daemon over its control socket (STORE/control.sock,
// see fs/daemon/control.h). Paths are resolved here, on the mount, into
// inode numbers; the daemon never gets a path. Every command prints a table
// (or JSON with --json) and exits 0, or prints one line
// "tempfs-admin: <reason>" and exits non-zero.
#include <CLI/CLI.hpp>

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "common/json.h"
#include "csi/file_util.h"
#include "csi/volume_store.h"
#include "daemon/control.h"
#include "daemon/mount_table.h"
#include "parse.h"

namespace tempfs {
namespace {

using Clock = std::chrono::steady_clock;

// A failure that ends the command with one line and exit code 1.
struct Failure {
  std::string message;
};

[[noreturn]] void Fail(const std::string& message) { throw Failure{message}; }

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) {
    b /= 1024;
    u++;
  }
  char buf[32];
  if (u == 0) snprintf(buf, sizeof buf, "%.0f B", b);
  else snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

std::string Duration(double s) {
  char buf[32];
  if (s < 1) snprintf(buf, sizeof buf, "%.0f ms", s * 1000);
  else if (s < 60) snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 3600) snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
  return buf;
}

int64_t Int(const Json& j, const char* key) {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_number() ? v->as_int() : 0;
}
double Num(const Json& j, const char* key) {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_number() ? v->as_double() : 0;
}
std::string Str(const Json& j, const char* key) {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : "";
}
bool Bool(const Json& j, const char* key) {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_bool() && v->as_bool();
}
const Json& Obj(const Json& j, const char* key) {
  static const Json kEmpty = Json::Object();
  const Json* v = j.Find(key);
  return v != nullptr ? *v : kEmpty;
}

// A plain table: columns padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> head) { rows_.push_back(std::move(head)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print() const {
    std::vector<size_t> w;
    for (auto& r : rows_) {
      for (size_t i = 0; i < r.size(); i++) {
        if (w.size() <= i) w.push_back(0);
        w[i] = std::max(w[i], r[i].size());
      }
    }
    for (auto& r : rows_) {
      if (&r == &rows_[0] && std::all_of(r.begin(), r.end(), [](const std::string& c) { return c.empty(); })) continue;
      std::string line;
      for (size_t i = 0; i < r.size(); i++) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
      }
      printf("%s\n", line.c_str());
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Progress of a long command: a bar redrawn in place on a terminal, a plain
// line a second otherwise. Goes to stderr, so stdout stays the result.
class ProgressBar {
 public:
  ProgressBar(std::string what, uint64_t total) : what_(std::move(what)), total_(total), tty_(isatty(STDERR_FILENO)) {}

  void Update(uint64_t done, const std::string& extra = "") {
    auto now = Clock::now();
    if (now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000))) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? done / secs : 0;
    double pct = total_ > 0 ? 100.0 * done / total_ : 100;
    std::string eta = rate > 0 && done < total_ ? Duration((total_ - done) / rate) : "-";
    char line[256];
    if (tty_) {
      int filled = static_cast<int>(std::min(100.0, pct) / 100 * 24);
      snprintf(line, sizeof line, "\r%s [%s%s] %3.0f%% %s/%s %s/s ETA %s %s\033[K", what_.c_str(),
               std::string(filled, '#').c_str(), std::string(24 - filled, ' ').c_str(), pct, Bytes(done).c_str(),
               Bytes(total_).c_str(), Bytes(rate).c_str(), eta.c_str(), extra.c_str());
    } else {
      snprintf(line, sizeof line, "%s: %s of %s (%.0f%%), %s/s, ETA %s %s\n", what_.c_str(), Bytes(done).c_str(),
               Bytes(total_).c_str(), pct, Bytes(rate).c_str(), eta.c_str(), extra.c_str());
    }
    fputs(line, stderr);
    drawn_ = true;
  }
  void Done() {
    if (tty_ && drawn_) fputs("\r\033[K", stderr);
  }

 private:
  std::string what_;
  uint64_t total_;
  bool tty_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
};

struct Node {
  std::string mountpoint;
  std::string store;
  dev_t dev = 0;
};

// The node whose mount is `mnt`, or the only tempfs mount on the machine.
Node PickNode(const std::string& mnt) {
  std::vector<MountEntry> ours;
  for (auto& m : AllMounts()) {
    if (!StoreOf(m).empty() && m.root == "/") ours.push_back(m);
  }
  Node n;
  if (!mnt.empty()) {
    std::string abs = LexicalAbsolute(mnt);
    auto m = FindMount(abs);
    if (!m) Fail(abs + " is not a mount point");
    n.store = StoreOf(*m);
    if (n.store.empty()) Fail(abs + " is not a tempfs mount (" + m->fstype + ")");
    n.mountpoint = abs;
  } else {
    if (ours.empty()) Fail("no tempfs mount on this machine (is the daemon running?)");
    if (ours.size() > 1) {
      std::string list;
      for (auto& m : ours) list += (list.empty() ? "" : ", ") + m.mountpoint;
      Fail("several tempfs mounts (" + list + "): pick one with --mount");
    }
    n.store = StoreOf(ours[0]);
    n.mountpoint = ours[0].mountpoint;
  }
  struct stat st;
  if (stat(n.mountpoint.c_str(), &st) != 0 && errno == EIO) {
    // A fenced node (lost namespace) answers EIO to everything; its control
    // socket still works and says why.
    return n;
  }
  if (stat(n.mountpoint.c_str(), &st) != 0) {
    Fail(IsDeadMountErrno(errno) ? "the tempfs daemon of " + n.mountpoint + " is not running (dead mount)"
                           : n.mountpoint + ": " + strerror(errno));
  }
  n.dev = st.st_dev;
  return n;
}

Json Call(const Node& n, const Json& request, const std::function<void(const Json&)>& progress = {},
          std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto r = ControlCall(n.store, request, progress, timeout);
  if (!r.ok()) Fail(r.status().message().empty() ? r.status().ToString() : r.status().message());
  return *r;
}

struct FileRef {
  std::string path;
  uint64_t ino = 0;
  uint64_t size = 0;
  bool explicit_arg = false;  // named on the command line, not found in a tree
};

// Regular files named by `paths` (directories: every file under them), all
// on the node's mount.
std::vector<FileRef> ResolveFiles(const Node& n, const std::vector<std::string>& paths, bool allow_dirs) {
  static std::vector<FileRef>* out_files;
  static dev_t dev;
  std::vector<FileRef> out;
  for (const std::string& p : paths) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) Fail(p + ": " + strerror(errno));
    if (st.st_dev != n.dev) Fail(p + " is not on the tempfs mount at " + n.mountpoint);
    if (S_ISREG(st.st_mode)) {
      out.push_back(FileRef{p, st.st_ino, static_cast<uint64_t>(st.st_size), true});
    } else if (S_ISDIR(st.st_mode) && allow_dirs) {
      out_files = &out;
      dev = n.dev;
      int rc = nftw(
          p.c_str(),
          [](const char* path, const struct stat* s, int type, FTW*) {
            if (type == FTW_F && S_ISREG(s->st_mode) && s->st_dev == dev) {
              out_files->push_back(FileRef{path, s->st_ino, static_cast<uint64_t>(s->st_size), false});
            }
            return 0;
          },
          64, FTW_PHYS | FTW_MOUNT);
      if (rc != 0) Fail(p + ": " + strerror(errno));
    } else {
      Fail(p + " is not a regular file" + std::string(allow_dirs ? " or a directory" : ""));
    }
  }
  return out;
}

void PrintJson(const Json& j) { printf("%s\n", j.Dump(2).c_str()); }

// ---- commands ----

void CmdStatus(const Node& n, bool json) {
  Json s = Call(n, Json::Object().Set("cmd", "status"));
  if (json) return PrintJson(s);
  const Json& cap = Obj(s, "capacity");
  const Json& k = Obj(s, "counters");
  const Json& meta = Obj(s, "meta");
  Table t({"", ""});
  t.Add({"node", Str(s, "node").empty() ? "single node (embedded metadata)" : Str(s, "node") + " (cluster)"});
  t.Add({"version", Str(s, "version") + " (pid " + std::to_string(Int(s, "pid")) + ", up " + Duration(Num(s, "uptime_s")) + ")"});
  t.Add({"mount", Str(s, "mountpoint") + " (store " + Str(s, "store") + ")"});
  t.Add({"data path", Str(s, "data_path")});
  if (!Str(s, "metrics").empty()) t.Add({"metrics", "http://" + Str(s, "metrics") + "/metrics"});
  char lat[64] = "";
  if (meta.Find("latency_ms") != nullptr) snprintf(lat, sizeof lat, ", %.2f ms", Num(meta, "latency_ms"));
  t.Add({"metadata", Str(meta, "engine") + ": " + (Bool(meta, "healthy") ? "healthy" : "UNHEALTHY " + Str(meta, "error")) + lat});
  if (!Str(meta, "namespace").empty()) {
    t.Add({"namespace", Str(meta, "namespace") + (Bool(meta, "fenced") ? " (FENCED: local data kept, nothing removed)" : "")});
  }
  t.Add({"store", Bytes(Num(cap, "total_bytes")) + " total, " + Bytes(Num(cap, "free_bytes")) + " free"});
  t.Add({"  own data", Bytes(Num(cap, "own_bytes")) + " in " + std::to_string(Int(cap, "own_files")) + " files"});
  t.Add({"  cached copies", Bytes(Num(cap, "cached_bytes")) + " in " + std::to_string(Int(cap, "cached_files")) + " files (" +
                               std::to_string(Int(cap, "pinned_files")) + " pinned)"});
  t.Add({"volumes", std::to_string(Int(s, "volumes"))});
  if (const Json* mem = s.Find("memory"); mem != nullptr) {
    t.Add({"memory", Bytes(Num(*mem, "rss_bytes")) + " resident; " + std::to_string(Int(*mem, "meta_inodes")) +
                         " inodes, " + std::to_string(Int(*mem, "kernel_inodes")) + " known to the kernel"});
  }
  t.Add({"local opens", std::to_string(Int(k, "local_opens"))});
  t.Add({"remote fetches", std::to_string(Int(k, "remote_fetches")) + " (" + Bytes(Num(k, "bytes_fetched")) + ")"});
  t.Add({"fetch failures", std::to_string(Int(k, "fetch_failures")) + " (checksum mismatches " +
                               std::to_string(Int(k, "checksum_failures")) + ")"});
  t.Add({"evictions", std::to_string(Int(k, "evictions"))});
  t.Add({"versions written", std::to_string(Int(k, "versions_committed")) + " (write conflicts " +
                                 std::to_string(Int(k, "write_conflicts")) + ")"});
  const Json* peers = s.Find("peers");
  std::string ps;
  if (peers != nullptr) {
    for (const Json& p : peers->items()) {
      if (Bool(p, "self")) continue;
      ps += (ps.empty() ? "" : ", ") + Str(p, "node") + " " +
            (Bool(p, "alive") ? "alive (" + Duration(Num(p, "heartbeat_age_ms") / 1000) + " ago)" : "gone");
    }
  }
  t.Add({"peers", ps.empty() ? "-" : ps});
  t.Print();
}

void CmdLocate(const Node& n, const std::vector<std::string>& paths, bool json) {
  auto files = ResolveFiles(n, paths, false);
  Json inos = Json::Array();
  for (auto& f : files) inos.Push(f.ino);
  Json r = Call(n, Json::Object().Set("cmd", "locate").Set("inos", inos));
  const Json* list = r.Find("files");
  if (list == nullptr || list->size() != files.size()) Fail("the daemon answered for another number of files");
  Json out = Json::Array();
  Table t({"PATH", "SIZE", "VERSION", "CHECKSUM", "OWNER", "THIS NODE"});
  size_t i = 0;
  for (const Json& f : list->items()) {
    const FileRef& ref = files[i++];
    if (f.Find("errno") != nullptr) Fail(ref.path + ": " + Str(f, "error"));
    Json o = f;
    o.Set("path", ref.path);
    out.Push(o);
    std::string here = Bool(f, "lost")         ? "owner, data lost (reads fail; delete the file)"
                       : Bool(f, "owned_here") ? "owner"
                       : Bool(f, "fetching") ? "arriving (" + Bytes(Num(f, "fetched_bytes")) + ")"
                       : Bool(f, "local_copy") ? "valid copy"
                                               : "no copy";
    if (Bool(f, "pinned")) here += ", pinned";
    t.Add({ref.path, Bytes(Num(f, "size")), std::to_string(Int(f, "version")),
           Str(f, "checksum").empty() ? "-" : Str(f, "checksum"), Str(f, "owner").empty() ? "this node" : Str(f, "owner"), here});
  }
  if (json) return PrintJson(Json::Object().Set("files", out));
  t.Print();
}

void CmdPrefetch(const Node& n, const std::vector<std::string>& paths, bool json) {
  auto files = ResolveFiles(n, paths, true);
  uint64_t total = 0;
  for (auto& f : files) total += f.size;
  ProgressBar bar("prefetch", total);
  uint64_t done = 0, fetched = 0;
  int64_t copied = 0, already = 0;
  auto t0 = Clock::now();
  for (auto& f : files) {
    Json r = Call(
        n, Json::Object().Set("cmd", "prefetch").Set("ino", f.ino),
        [&](const Json& p) { bar.Update(done + Int(p, "bytes"), f.path); }, std::chrono::seconds(120));
    done += f.size;
    if (Bool(r, "already_local")) {
      already++;
    } else {
      copied++;
      fetched += Int(r, "bytes");
    }
    bar.Update(done, f.path);
  }
  bar.Done();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (json) {
    return PrintJson(Json::Object()
                         .Set("files", static_cast<int64_t>(files.size()))
                         .Set("fetched_files", copied)
                         .Set("already_local", already)
                         .Set("bytes_fetched", fetched)
                         .Set("seconds", secs));
  }
  printf("prefetched %" PRId64 " files (%s) in %s; %" PRId64 " already here\n", copied, Bytes(fetched).c_str(),
         Duration(secs).c_str(), already);
}

void CmdEvict(const Node& n, const std::vector<std::string>& paths, bool json) {
  auto files = ResolveFiles(n, paths, true);
  int64_t evicted = 0, owned = 0, absent = 0;
  uint64_t freed = 0;
  for (auto& f : files) {
    auto r = ControlCall(n.store, Json::Object().Set("cmd", "evict").Set("ino", f.ino), {}, std::chrono::seconds(30));
    if (!r.ok()) {
      // Data this node owns is the only copy: a tree may hold some, and
      // they stay; naming one explicitly is an error.
      if (r.err() == EPERM && !f.explicit_arg) {
        owned++;
        continue;
      }
      Fail(f.path + ": " + (r.status().message().empty() ? r.status().ToString() : r.status().message()));
    }
    uint64_t b = Int(*r, "freed_bytes");
    (b > 0 ? evicted : absent)++;
    freed += b;
  }
  if (json) {
    return PrintJson(Json::Object()
                         .Set("evicted_files", evicted)
                         .Set("freed_bytes", freed)
                         .Set("not_cached", absent)
                         .Set("kept_owned", owned));
  }
  printf("evicted %" PRId64 " copies (%s freed); %" PRId64 " had no copy here; %" PRId64 " kept (this node owns them)\n",
         evicted, Bytes(freed).c_str(), absent, owned);
}

void CmdPin(const Node& n, const std::vector<std::string>& paths, bool on, bool json) {
  auto files = ResolveFiles(n, paths, true);
  for (auto& f : files) Call(n, Json::Object().Set("cmd", "pin").Set("ino", f.ino).Set("on", on));
  if (json) return PrintJson(Json::Object().Set(on ? "pinned" : "unpinned", static_cast<int64_t>(files.size())));
  printf("%s %zu files\n", on ? "pinned" : "unpinned", files.size());
}

void CmdPeers(const Node& n, bool json) {
  Json r = Call(n, Json::Object().Set("cmd", "peers"));
  if (json) return PrintJson(r);
  if (!Bool(r, "cluster")) {
    printf("single node (embedded metadata): no peers\n");
    return;
  }
  Table t({"NODE", "ADDRESS", "STATE", "HEARTBEAT", "SERVED TO", "FETCHED FROM"});
  for (const Json& p : Obj(r, "peers").items()) {
    bool alive = Bool(p, "alive");
    t.Add({Str(p, "node") + (Bool(p, "self") ? " (this node)" : ""), alive ? Str(p, "address") : "-", alive ? "alive" : "gone",
           alive ? Duration(Num(p, "heartbeat_age_ms") / 1000) + " ago" : "-", Bytes(Num(p, "bytes_served_to")),
           Bytes(Num(p, "bytes_fetched_from"))});
  }
  t.Print();
}

void CmdDrain(const Node& n, bool json) {
  std::unique_ptr<ProgressBar> bar;
  Json r = Call(
      n, Json::Object().Set("cmd", "drain"),
      [&](const Json& p) {
        if (!bar) bar = std::make_unique<ProgressBar>("drain", Int(p, "bytes_total"));
        bar->Update(Int(p, "bytes_done"), std::to_string(Int(p, "files_done")) + "/" + std::to_string(Int(p, "files_total")) + " files");
      },
      std::chrono::seconds(120));
  if (bar) bar->Done();
  if (json) return PrintJson(r);
  printf("drained %" PRId64 " files (%s) to other nodes in %s: this node holds no data that exists only here\n",
         Int(r, "files"), Bytes(Num(r, "bytes")).c_str(), Duration(Num(r, "ms") / 1000).c_str());
}

void CmdGc(const Node& n, bool json) {
  Json r = Call(n, Json::Object().Set("cmd", "gc"));
  csi::VolumeStore volumes(n.mountpoint, "");
  Json deleted = Json::Array();
  for (auto& rel : volumes.CollectExpired(static_cast<int64_t>(time(nullptr)))) deleted.Push(rel);
  if (json) return PrintJson(Json::Object().Set("removed_data_files", Int(r, "removed_files")).Set("deleted_volumes", deleted));
  printf("removed %" PRId64 " data files of deleted or rewritten files; deleted %zu expired volumes\n", Int(r, "removed_files"),
         deleted.size());
  for (const Json& d : deleted.items()) printf("  %s\n", d.as_string().c_str());
}

// Volumes as the CSI plugin files them (fs/csi/volume_store.h).
void CmdVolumes(const Node& n, bool json) {
  Json status = Call(n, Json::Object().Set("cmd", "status"));
  std::string self = Str(status, "node");
  struct Vol {
    std::string ns, name, rel;
  };
  std::vector<Vol> vols;
  const std::string root = n.mountpoint + "/volumes";
  if (auto nss = csi::ListDir(root); nss.ok()) {
    for (auto& ns : *nss) {
      auto names = csi::ListDir(root + "/" + ns);
      if (!names.ok()) continue;
      for (auto& name : *names) {
        if (name != "_id") {
          vols.push_back({ns, name, ns + "/" + name});
          continue;
        }
        if (auto ids = csi::ListDir(root + "/" + ns + "/_id"); ids.ok()) {
          for (auto& id : *ids) vols.push_back({ns, id, ns + "/_id/" + id});
        }
      }
    }
  }
  Json out = Json::Array();
  Table t({"VOLUME", "FILES", "SIZE", "HERE", "NODES", "PODS HERE", "CAPACITY", "RETENTION"});
  int64_t now = static_cast<int64_t>(time(nullptr));
  for (auto& v : vols) {
    struct stat st;
    std::string dir = root + "/" + v.rel;
    if (lstat(dir.c_str(), &st) != 0) continue;  // deleted meanwhile
    Json tree = Call(n, Json::Object().Set("cmd", "tree").Set("ino", static_cast<uint64_t>(st.st_ino)));
    std::string state = n.mountpoint + "/.tempfs-csi/" + v.rel;
    auto attrs = csi::ReadSmallFile(state + "/attrs");
    std::map<std::string, std::string> kv;
    if (attrs.ok()) kv = csi::ParseKeyValues(*attrs);
    uint64_t capacity = strtoull(kv["capacity"].c_str(), nullptr, 10);
    std::string retention = kv.count("retention") ? kv["retention"] : "-";
    int64_t expires = 0;
    if (auto e = csi::ReadSmallFile(state + "/expires"); e.ok()) expires = strtoll(e->c_str(), nullptr, 10);
    Json pods = Json::Array();
    int64_t pubs_all = 0;
    if (auto pubs = csi::ListDir(state + "/pubs"); pubs.ok()) {
      for (auto& p : *pubs) {
        pubs_all++;
        std::string node = p.substr(0, p.find('~'));
        // On a single node every publication is this node's.
        if (!self.empty() && node != self) continue;
        auto m = csi::ReadSmallFile(state + "/pubs/" + p);
        auto mk = m.ok() ? csi::ParseKeyValues(*m) : std::map<std::string, std::string>{};
        pods.Push(mk.count("pod") ? mk["pod"] : mk["target"]);
      }
    }
    Json nodes = Json::Array();
    std::string nodes_text;
    for (const Json& o : Obj(tree, "owners").items()) {
      nodes.Push(o);
      nodes_text += (nodes_text.empty() ? "" : ",") + (Str(o, "node").empty() ? std::string("this") : Str(o, "node")) +
                    ":" + std::to_string(Int(o, "files"));
    }
    out.Push(Json::Object()
                 .Set("volume", v.rel)
                 .Set("namespace", v.ns)
                 .Set("name", v.name)
                 .Set("path", dir)
                 .Set("files", Int(tree, "files"))
                 .Set("bytes", Int(tree, "bytes"))
                 .Set("local_bytes", Int(tree, "local_bytes"))
                 .Set("nodes", nodes)
                 .Set("pods_here", pods)
                 .Set("publications", pubs_all)
                 .Set("capacity_bytes", capacity)
                 .Set("retention", retention)
                 .Set("expires_unix", expires > 0 ? Json(expires) : Json()));
    std::string ret = retention;
    if (expires > 0) ret += expires > now ? " (deleted in " + Duration(static_cast<double>(expires - now)) + ")" : " (expired)";
    t.Add({v.rel, std::to_string(Int(tree, "files")), Bytes(Num(tree, "bytes")), Bytes(Num(tree, "local_bytes")),
           nodes_text.empty() ? "-" : nodes_text, std::to_string(pods.size()), capacity ? Bytes(capacity) : "-", ret});
  }
  if (json) return PrintJson(Json::Object().Set("volumes", out));
  if (vols.empty()) {
    printf("no volumes (the CSI plugin files them under %s)\n", root.c_str());
    return;
  }
  t.Print();
}

}  // namespace
}  // namespace tempfs

int main(int argc, char** argv) {
  using namespace tempfs;
  CLI::App app{"tempfs-admin: see and steer a tempfs node and its cluster"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tempfs-admin " TEMPFS_VERSION);
  std::string mnt;
  bool json = false;
  app.add_option("--mount", mnt, "the node's tempfs mount point (default: the only one on this machine)");
  app.add_flag("--json", json, "print JSON instead of a table");
  std::vector<std::string> paths;
  auto* status = app.add_subcommand("status", "the node: mode, store usage, counters, peers");
  auto* volumes = app.add_subcommand("volumes", "the volumes on this mount: size, nodes holding data, pods, limits");
  auto* locate = app.add_subcommand("locate", "where each file's data is");
  locate->add_option("paths", paths, "files on the mount")->required();
  auto* prefetch = app.add_subcommand("prefetch", "copy files (or trees) to this node before pods read them");
  prefetch->add_option("paths", paths, "files or directories on the mount")->required();
  auto* evict = app.add_subcommand("evict", "drop this node's cached copies (never the only copy)");
  evict->add_option("paths", paths, "files or directories on the mount")->required();
  auto* pin = app.add_subcommand("pin", "keep cached copies from eviction");
  pin->add_option("paths", paths, "files or directories on the mount")->required();
  auto* unpin = app.add_subcommand("unpin", "let pinned copies be evicted again");
  unpin->add_option("paths", paths, "files or directories on the mount")->required();
  auto* peers = app.add_subcommand("peers", "the cluster's nodes: address, heartbeat, traffic");
  auto* drain = app.add_subcommand("drain", "hand the data this node owns to other nodes (before removing it)");
  auto* gc = app.add_subcommand("gc", "remove data of deleted files and of volumes past their retention");
  if (auto rc = tempfs::ParseArgs(app, argc, argv, "tempfs-admin")) return *rc;
  try {
    Node n = PickNode(mnt);
    if (status->parsed()) CmdStatus(n, json);
    else if (volumes->parsed()) CmdVolumes(n, json);
    else if (locate->parsed()) CmdLocate(n, paths, json);
    else if (prefetch->parsed()) CmdPrefetch(n, paths, json);
    else if (evict->parsed()) CmdEvict(n, paths, json);
    else if (pin->parsed()) CmdPin(n, paths, true, json);
    else if (unpin->parsed()) CmdPin(n, paths, false, json);
    else if (peers->parsed()) CmdPeers(n, json);
    else if (drain->parsed()) CmdDrain(n, json);
    else if (gc->parsed()) CmdGc(n, json);
  } catch (const Failure& f) {
    fprintf(stderr, "tempfs-admin: %s\n", f.message.c_str());
    return 1;
  }
  return 0;
}
