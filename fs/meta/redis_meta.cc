#include "meta/redis_meta.h"

#include <sys/stat.h>

#include <thread>

#include "common/log.h"
#include "meta/codec.h"
#include "meta/namespace_identity.h"

namespace tempfs {
namespace {

constexpr int kMaxAttempts = 64;

std::string IKey(Ino ino) { return "tfs:i:" + std::to_string(ino); }
std::string DKey(Ino ino) { return "tfs:d:" + std::to_string(ino); }
std::string XKey(Ino ino) { return "tfs:x:" + std::to_string(ino); }
const char kNextIno[] = "tfs:nextino";
const char kOrphans[] = "tfs:orphans";
const char kCount[] = "tfs:icount";
const char kNamespace[] = "tfs:namespace";

std::string EncodeEntry(Ino ino, uint32_t type) {
  Encoder e;
  e.U64(ino);
  e.U32(type);
  return std::move(e.buffer());
}

bool DecodeEntry(std::string_view s, Ino* ino, uint32_t* type) {
  Decoder d(s);
  *ino = d.U64();
  *type = d.U32();
  return !d.failed();
}

Status ReplyError(const RedisValue& v) {
  if (v.type == RedisValue::kError) return Status::Err(EIO, "redis: " + v.str);
  return Status::Ok();
}

}  // namespace

// Reads go to Redis at once, each WATCHed (the first with the namespace id);
// writes are queued and sent as one MULTI/EXEC.
class RedisMeta::Txn final : public MetaTxn {
 public:
  Txn(RedisMeta& m, RedisClient::Conn& c, bool writable) : m_(m), c_(c), writable_(writable) {}
  // The namespace id did not match: the engine is fenced.
  bool fenced() const { return fenced_; }

  Result<std::optional<InodeRecord>> GetInode(Ino ino) override {
    auto v = Read(IKey(ino), {"GET", IKey(ino)});
    if (!v.ok()) return v.status();
    if (v->nil()) return std::optional<InodeRecord>();
    InodeRecord r;
    if (!DecodeInodeRecord(v->str, &r)) return Status::Err(EIO, "damaged inode record " + IKey(ino));
    return std::optional<InodeRecord>(std::move(r));
  }
  Result<std::optional<Ino>> GetEntry(Ino parent, std::string_view name) override {
    auto v = Read(DKey(parent), {"HGET", DKey(parent), std::string(name)});
    if (!v.ok()) return v.status();
    if (v->nil()) return std::optional<Ino>();
    Ino ino;
    uint32_t type;
    if (!DecodeEntry(v->str, &ino, &type)) return Status::Err(EIO, "damaged entry in " + DKey(parent));
    return std::optional<Ino>(ino);
  }
  Result<std::vector<DirEntry>> ListEntries(Ino dir) override {
    auto v = Read(DKey(dir), {"HGETALL", DKey(dir)});
    if (!v.ok()) return v.status();
    std::vector<DirEntry> out;
    for (size_t i = 0; i + 1 < v->elements.size(); i += 2) {
      DirEntry e;
      e.name = v->elements[i].str;
      if (!DecodeEntry(v->elements[i + 1].str, &e.ino, &e.mode)) return Status::Err(EIO, "damaged entry");
      out.push_back(std::move(e));
    }
    // Redis hashes have no order; readers expect a stable one.
    std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    return out;
  }
  Result<bool> HasEntries(Ino dir) override {
    auto v = Read(DKey(dir), {"HLEN", DKey(dir)});
    if (!v.ok()) return v.status();
    return v->integer > 0;
  }
  Result<std::optional<std::string>> GetXattr(Ino ino, std::string_view name) override {
    auto v = Read(XKey(ino), {"HGET", XKey(ino), std::string(name)});
    if (!v.ok()) return v.status();
    if (v->nil()) return std::optional<std::string>();
    return std::optional<std::string>(std::move(v->str));
  }
  Result<std::vector<std::string>> ListXattrs(Ino ino) override {
    auto v = Read(XKey(ino), {"HKEYS", XKey(ino)});
    if (!v.ok()) return v.status();
    std::vector<std::string> out;
    for (auto& e : v->elements) out.push_back(e.str);
    std::sort(out.begin(), out.end());
    return out;
  }
  Result<Ino> NewIno() override {
    if (!writable_) return Status::Err(EROFS, "read transaction");
    if (!ns_checked_) {
      // Never count up in a Redis whose namespace is not ours.
      auto ns = Read(kNamespace, {"GET", kNamespace});
      if (!ns.ok()) return ns.status();
    }
    auto v = c_.Command({"INCR", kNextIno});
    if (!v.ok()) return v.status();
    if (Status st = ReplyError(*v); !st.ok()) return st;
    created_++;
    return static_cast<Ino>(v->integer);
  }
  void PutInode(const InodeRecord& rec) override {
    Ino ino = rec.attr.ino;
    writes_.push_back({"SET", IKey(ino), EncodeInodeRecord(rec)});
    if (rec.attr.nlink == 0 && ino != kRootIno) writes_.push_back({"SADD", kOrphans, std::to_string(ino)});
  }
  void DelInode(Ino ino) override {
    writes_.push_back({"DEL", IKey(ino), DKey(ino), XKey(ino)});
    writes_.push_back({"SREM", kOrphans, std::to_string(ino)});
    writes_.push_back({"DECR", kCount});
  }
  void PutEntry(Ino parent, std::string_view name, Ino ino, uint32_t mode) override {
    writes_.push_back({"HSET", DKey(parent), std::string(name), EncodeEntry(ino, mode & S_IFMT)});
  }
  void DelEntry(Ino parent, std::string_view name) override {
    writes_.push_back({"HDEL", DKey(parent), std::string(name)});
  }
  void PutXattr(Ino ino, std::string_view name, std::string_view value) override {
    writes_.push_back({"HSET", XKey(ino), std::string(name), std::string(value)});
  }
  void DelXattr(Ino ino, std::string_view name) override {
    writes_.push_back({"HDEL", XKey(ino), std::string(name)});
  }

  // Ends the transaction: applies the writes if `apply`, and tells whether
  // what it read was one consistent state (false: a watched key changed, run
  // again). Without `apply` (the body refused), only the check is made.
  Result<bool> Commit(bool apply) {
    if (!apply) writes_.clear();
    if (writes_.empty() && !watching_) return true;
    std::vector<std::vector<std::string>> cmds;
    cmds.push_back({"MULTI"});
    for (auto& w : writes_) cmds.push_back(std::move(w));
    if (apply && created_ > 0) cmds.push_back({"INCRBY", kCount, std::to_string(created_)});
    cmds.push_back({"EXEC"});
    auto r = c_.Pipeline(cmds);
    if (!r.ok()) return r.status();
    for (auto& v : *r) {
      if (Status st = ReplyError(v); !st.ok()) return st;
    }
    return !r->back().nil();
  }

 private:
  Result<RedisValue> Read(const std::string& key, std::vector<std::string> cmd) {
    std::vector<std::vector<std::string>> cmds;
    if (ns_checked_) {
      cmds.push_back({"WATCH", key});
    } else {
      cmds.push_back({"WATCH", kNamespace, key});
      cmds.push_back({"GET", kNamespace});
    }
    cmds.push_back(std::move(cmd));
    auto r = c_.Pipeline(cmds);
    if (!r.ok()) return r.status();
    watching_ = true;
    if (!ns_checked_) {
      if (Status st = ReplyError((*r)[1]); !st.ok()) return st;
      if (!m_.NamespaceMatches((*r)[1])) {
        fenced_ = true;
        return m_.Fenced();
      }
      ns_checked_ = true;
    }
    if (Status st = ReplyError(r->back()); !st.ok()) return st;
    if (m_.read_hook_) m_.read_hook_(key);
    return std::move(r->back());
  }

  RedisMeta& m_;
  RedisClient::Conn& c_;
  bool writable_;
  bool watching_ = false;
  bool ns_checked_ = false;
  bool fenced_ = false;
  int created_ = 0;
  std::vector<std::vector<std::string>> writes_;
};

Result<std::unique_ptr<RedisMeta>> RedisMeta::Open(const std::string& uri, std::chrono::milliseconds timeout,
                                                    const std::string& store_dir, const MetaOpenOptions& options) {
  auto addr = RedisAddress::Parse(uri);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<RedisMeta> m(new RedisMeta(*addr, timeout));
  auto ping = m->client_.Command({"PING"});
  if (!ping.ok()) return ping.status();
  if (Status st = ReplyError(*ping); !st.ok()) return st;
  // Before anything is written: a Redis that is not the store's is left as it is.
  if (Status st = m->JoinNamespace(store_dir, options); !st.ok()) return st;
  // Inode 1 is the root: numbers handed out start above it.
  auto init = m->client_.Command({"SETNX", kNextIno, std::to_string(kRootIno)});
  if (!init.ok()) return init.status();
  Status st = m->EnsureRoot();
  if (!st.ok()) return st;
  // The root is made without NewIno(): count it here, once.
  auto count = m->client_.Command({"SETNX", kCount, "1"});
  if (!count.ok()) return count.status();
  return m;
}

Status RedisMeta::JoinNamespace(const std::string& store_dir, const MetaOpenOptions& options) {
  auto rec = ReadStoreIdentity(store_dir);
  if (!rec.ok()) return rec.status();
  auto cur = client_.Command({"GET", kNamespace});
  if (!cur.ok()) return cur.status();
  if (Status st = ReplyError(*cur); !st.ok()) return st;
  std::string in_redis = cur->nil() ? "" : cur->str;
  StoreIdentity id = rec->value_or(StoreIdentity{});
  if (id.store_id.empty()) id.store_id = NewRandomId();
  std::string where = client_.address().ToString();
  if (!id.ns.empty() && id.ns != in_redis) {
    if (!options.join_new_namespace) {
      std::string what = in_redis.empty()
                             ? "holds no tempfs namespace (it lost its data: restarted without persistence, or "
                               "flushed; or it is another Redis)"
                             : "holds another namespace (" + in_redis + ")";
      return Status::Err(EIO, "Redis " + where + " " + what + ", but this store belongs to namespace " + id.ns +
                                  "; nothing was removed. Restore Redis's data and mount again, or mount with "
                                  "--join-new-namespace to join it (this store's data is set aside in " +
                                  store_dir + "/lost+found)");
    }
    left_ = id.ns;
    id.node = 0;  // a number of the old namespace means nothing in the new one
  }
  if (in_redis.empty()) {
    // A new namespace (or one made before namespaces had ids): name it, once.
    auto set = client_.Command({"SET", kNamespace, NewRandomId(), "NX"});
    if (!set.ok()) return set.status();
    auto get = client_.Command({"GET", kNamespace});  // whoever won the race
    if (!get.ok()) return get.status();
    if (get->nil() || get->type == RedisValue::kError) {
      return Status::Err(EIO, "cannot set the namespace id in Redis " + where);
    }
    in_redis = get->str;
    TLOG_INFO("namespace %s made in Redis %s", in_redis.c_str(), where.c_str());
  }
  ns_ = in_redis;
  if (!left_.empty()) {
    TLOG_WARN("this store leaves namespace %s and joins namespace %s (--join-new-namespace)", left_.c_str(),
              ns_.c_str());
  }
  if (rec->has_value() && id.ns == ns_) return Status::Ok();
  if (!left_.empty()) {
    // Before the record changes: a crash in between must not let the new
    // namespace see the old one's data.
    auto moved = SetAsideStoreData(store_dir, left_);
    if (!moved.ok()) return moved.status();
    if (!moved->empty()) TLOG_WARN("the data of namespace %s is kept in %s", left_.c_str(), moved->c_str());
  }
  id.ns = ns_;
  return WriteStoreIdentity(store_dir, id);
}

bool RedisMeta::NamespaceMatches(const RedisValue& v) {
  if (!v.nil() && v.str == ns_) return true;
  std::string where = client_.address().ToString();
  Fence(v.nil() ? "Redis " + where + " lost namespace " + ns_ +
                      " (restarted without persistence, or flushed): local data is kept, nothing is removed; "
                      "restore Redis's data and restart the node, or remount with --join-new-namespace"
                : "Redis " + where + " now holds namespace " + v.str + ", not this store's " + ns_ +
                      ": local data is kept, nothing is removed; point the node at its Redis, or remount "
                      "with --join-new-namespace");
  return false;
}

void RedisMeta::Fence(const std::string& problem) {
  std::lock_guard lock(fence_mu_);
  if (fenced_.load()) return;
  fence_problem_ = problem;
  fenced_ = true;
  TLOG_ERROR("metadata fenced: %s", problem.c_str());
}

Status RedisMeta::Fenced() {
  std::lock_guard lock(fence_mu_);
  return Status::Err(EIO, "metadata fenced: " + fence_problem_);
}

NamespaceState RedisMeta::Namespace() {
  NamespaceState s;
  s.id = ns_;
  s.left = left_;
  if (fenced_.load()) {
    std::lock_guard lock(fence_mu_);
    s.intact = false;
    s.problem = fence_problem_;
  }
  return s;
}

Status RedisMeta::CheckNamespace() {
  if (fenced_.load()) return Fenced();
  auto v = client_.Command({"GET", kNamespace});
  if (!v.ok()) return v.status();
  if (Status st = ReplyError(*v); !st.ok()) return st;
  if (!NamespaceMatches(*v)) return Fenced();
  return Status::Ok();
}

Status RedisMeta::Transact(TxnKind kind, const std::function<Status(MetaTxn&)>& body) {
  for (int attempt = 0; attempt < kMaxAttempts; attempt++) {
    if (fenced_.load()) return Fenced();
    auto conn = client_.Borrow();
    if (!conn.ok()) return conn.status();
    Txn t(*this, **conn, kind != TxnKind::kRead);
    Status st = body(t);
    Result<bool> consistent = true;
    if (!t.fenced() && !(*conn)->broken()) consistent = t.Commit(st.ok());
    bool broken = (*conn)->broken();
    client_.Return(std::move(*conn));
    if (t.fenced()) return st;
    // A pooled connection that died with a Redis restart: run again on a new one.
    if (broken && attempt == 0) continue;
    if (broken) return st.ok() ? consistent.status() : st;
    if (!consistent.ok()) return consistent.status();
    // The answer, a refusal included, stands only if nothing it read changed.
    if (*consistent) return st;
    // Another node changed what we read: back off a little and run again.
    std::this_thread::sleep_for(std::chrono::microseconds(100 * (attempt + 1)));
  }
  return Status::Err(EIO, "metadata transaction kept conflicting");
}

Result<std::vector<Ino>> RedisMeta::Orphans() {
  if (fenced_.load()) return Fenced();
  // The id and the set in one step: a foreign namespace's orphans must not
  // be taken for this one's (the caller removes their data).
  auto conn = client_.Borrow();
  if (!conn.ok()) return conn.status();
  auto r = (*conn)->Pipeline({{"MULTI"}, {"GET", kNamespace}, {"SMEMBERS", kOrphans}, {"EXEC"}});
  client_.Return(std::move(*conn));
  if (!r.ok()) return r.status();
  for (auto& v : *r) {
    if (Status st = ReplyError(v); !st.ok()) return st;
  }
  const RedisValue& exec = r->back();
  if (exec.elements.size() != 2) return Status::Err(EIO, "redis: unexpected reply to EXEC");
  if (!NamespaceMatches(exec.elements[0])) return Fenced();
  std::vector<Ino> out;
  for (auto& e : exec.elements[1].elements) out.push_back(std::stoull(e.str));
  return out;
}

uint64_t RedisMeta::InodeCount() {
  if (fenced_.load()) return 0;
  auto v = client_.Command({"GET", kCount});
  if (!v.ok() || v->nil()) return 0;
  return std::stoull(v->str);
}

Result<Ino> RedisMeta::LastIno() {
  // A counter read from a Redis that lost the namespace means nothing (and
  // seeing that the namespace is gone fences the engine).
  TEMPFS_RETURN_IF_ERROR(CheckNamespace());
  auto v = client_.Command({"GET", kNextIno});
  if (!v.ok()) return v.status();
  if (v->nil()) return Status::Err(EIO, "the namespace has no inode counter");
  return static_cast<Ino>(std::stoull(v->str));
}

Status RedisMeta::Sync() {
  // Durability of the namespace is Redis's configuration (AOF/RDB).
  return Status::Ok();
}

}  // namespace tempfs
