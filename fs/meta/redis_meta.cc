#include "meta/redis_meta.h"

#include <sys/stat.h>

#include <thread>

#include "common/log.h"
#include "meta/codec.h"

namespace tempfs {
namespace {

constexpr int kMaxAttempts = 64;

std::string IKey(Ino ino) { return "tfs:i:" + std::to_string(ino); }
std::string DKey(Ino ino) { return "tfs:d:" + std::to_string(ino); }
std::string XKey(Ino ino) { return "tfs:x:" + std::to_string(ino); }
const char kNextIno[] = "tfs:nextino";
const char kOrphans[] = "tfs:orphans";
const char kCount[] = "tfs:icount";

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

// Reads go to Redis at once (WATCHed in a writing transaction); writes are
// queued and sent as one MULTI/EXEC.
class RedisMeta::Txn final : public MetaTxn {
 public:
  Txn(RedisClient::Conn& c, bool writable) : c_(c), writable_(writable) {}

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

  // Returns false on a conflict (a watched key changed).
  Result<bool> Commit() {
    if (writes_.empty()) {
      if (watching_) {
        auto r = c_.Command({"UNWATCH"});
        if (!r.ok()) return r.status();
      }
      return true;
    }
    std::vector<std::vector<std::string>> cmds;
    cmds.push_back({"MULTI"});
    for (auto& w : writes_) cmds.push_back(std::move(w));
    if (created_ > 0) cmds.push_back({"INCRBY", kCount, std::to_string(created_)});
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
    if (!writable_) return c_.Command(cmd);
    auto r = c_.Pipeline({{"WATCH", key}, std::move(cmd)});
    if (!r.ok()) return r.status();
    watching_ = true;
    if (Status st = ReplyError((*r)[1]); !st.ok()) return st;
    return std::move((*r)[1]);
  }

  RedisClient::Conn& c_;
  bool writable_;
  bool watching_ = false;
  int created_ = 0;
  std::vector<std::vector<std::string>> writes_;
};

Result<std::unique_ptr<RedisMeta>> RedisMeta::Open(const std::string& uri, std::chrono::milliseconds timeout) {
  auto addr = RedisAddress::Parse(uri);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<RedisMeta> m(new RedisMeta(*addr, timeout));
  auto ping = m->client_.Command({"PING"});
  if (!ping.ok()) return ping.status();
  if (Status st = ReplyError(*ping); !st.ok()) return st;
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

Status RedisMeta::Transact(TxnKind kind, const std::function<Status(MetaTxn&)>& body) {
  for (int attempt = 0; attempt < kMaxAttempts; attempt++) {
    auto conn = client_.Borrow();
    if (!conn.ok()) return conn.status();
    Txn t(**conn, kind != TxnKind::kRead);
    Status st = body(t);
    Result<bool> committed = true;
    if (st.ok()) {
      committed = t.Commit();
    } else if (kind != TxnKind::kRead) {
      auto r = (*conn)->Command({"UNWATCH"});
      (void)r;
    }
    bool broken = (*conn)->broken();
    client_.Return(std::move(*conn));
    // A pooled connection that died with a Redis restart: run again on a new one.
    if (broken && attempt == 0) continue;
    if (!st.ok()) return st;
    if (!committed.ok()) return committed.status();
    if (*committed) return Status::Ok();
    // Another node changed what we read: back off a little and run again.
    std::this_thread::sleep_for(std::chrono::microseconds(100 * (attempt + 1)));
  }
  return Status::Err(EIO, "metadata transaction kept conflicting");
}

Result<std::vector<Ino>> RedisMeta::Orphans() {
  auto v = client_.Command({"SMEMBERS", kOrphans});
  if (!v.ok()) return v.status();
  std::vector<Ino> out;
  for (auto& e : v->elements) out.push_back(std::stoull(e.str));
  return out;
}

uint64_t RedisMeta::InodeCount() {
  auto v = client_.Command({"GET", kCount});
  if (!v.ok() || v->nil()) return 0;
  return std::stoull(v->str);
}

Status RedisMeta::Sync() {
  // Durability of the namespace is Redis's configuration (AOF/RDB).
  return Status::Ok();
}

}  // namespace tempfs
