#include "cluster/registry.h"

#include <algorithm>
#include <cstdlib>

#include "common/log.h"

namespace tempfs {
namespace {

const char kNamespaceKey[] = "tfs:namespace";

// KEYS: namespace id, heartbeat. ARGV: the store's namespace, the value, the
// TTL (ms), this store's id, the address alone (a heartbeat written before
// heartbeats named their store). Returns 1 when the heartbeat is this
// node's now, or the value of another store's live heartbeat; an error when
// the namespace is not the store's.
const char kJoinScript[] = R"(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('NONAMESPACE') end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[5] then
  local sp = string.find(cur, ' ', 1, true)
  if not sp or string.sub(cur, sp + 1) ~= ARGV[4] then return cur end
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
)";

// KEYS: namespace id, heartbeat. ARGV: the store's namespace, the value, the
// TTL (ms). Returns 0 (and writes nothing) when the namespace is gone.
const char kBeatScript[] = R"(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
)";

// KEYS: heartbeat. ARGV: this node's value. Deletes the heartbeat if it is ours.
const char kLeaveScript[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 0";

// A heartbeat's address (its value up to the store id).
std::string AddressOf(const std::string& heartbeat) { return heartbeat.substr(0, heartbeat.find(' ')); }

}  // namespace

NodeRegistry::NodeRegistry(RedisClient& redis, std::string name, HostPort advertise, std::chrono::milliseconds ttl,
                           Identity identity)
    : redis_(redis), name_(std::move(name)), advertise_(std::move(advertise)), ttl_(ttl),
      identity_(std::move(identity)) {}

NodeRegistry::~NodeRegistry() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (beat_.joinable()) beat_.join();
  if (self_ != 0) {
    // Leave at once rather than when the heartbeat expires (only our own:
    // after a namespace was lost the number may be another node's).
    auto r = redis_.Command({"EVAL", kLeaveScript, "1", "tfs:node:hb:" + std::to_string(self_), HeartbeatValue()});
    (void)r;
  }
}

Result<uint32_t> NodeRegistry::Join() {
  auto ns = redis_.Command({"GET", kNamespaceKey});
  if (!ns.ok()) return ns.status();
  if (ns->nil() || ns->str != identity_.ns) {
    return Status::Err(EIO, "Redis does not hold this store's namespace " + identity_.ns + ": no node number taken");
  }
  auto get = redis_.Command({"HGET", "tfs:node:num", name_});
  if (!get.ok()) return get.status();
  if (identity_.recorded != 0) {
    // The store has a number in this namespace: only that one is its own.
    std::string mine = std::to_string(identity_.recorded);
    if (get->nil() || get->str != mine) {
      return Status::Err(EIO, "this store is node #" + mine + " of namespace " + identity_.ns + ", but Redis " +
                                  (get->nil() ? "has no node " + name_ : "has node " + name_ + " as #" + get->str) +
                                  ": the registry changed; no number taken");
    }
  } else if (!get->nil()) {
    // A store without a number, under a name that has one: the store was made
    // anew (a tmpfs store after a reboot, a wiped disk). It takes the number
    // back, so what that node owned is looked for here and found missing.
    TLOG_WARN("node %s was #%s of namespace %s with another store; this store (%s) has none of its data: files "
              "owned by #%s are lost, read as EIO on every node and can be deleted",
              name_.c_str(), get->str.c_str(), identity_.ns.c_str(), identity_.store_id.c_str(), get->str.c_str());
  } else {
    auto seq = redis_.Command({"INCR", "tfs:node:seq"});
    if (!seq.ok()) return seq.status();
    auto set = redis_.Command({"HSETNX", "tfs:node:num", name_, std::to_string(seq->integer)});
    if (!set.ok()) return set.status();
    get = redis_.Command({"HGET", "tfs:node:num", name_});  // whoever won the race
    if (!get.ok()) return get.status();
  }
  if (get->nil()) return Status::Err(EIO, "cannot register node " + name_);
  self_ = static_cast<uint32_t>(std::stoul(get->str));
  auto nm = redis_.Command({"HSET", "tfs:node:name", std::to_string(self_), name_});
  if (!nm.ok()) return nm.status();
  // A live node of another store under this number would serve other data.
  std::string hb_key = "tfs:node:hb:" + std::to_string(self_);
  auto hb = redis_.Command({"EVAL", kJoinScript, "2", kNamespaceKey, hb_key, identity_.ns, HeartbeatValue(),
                            std::to_string(ttl_.count()), identity_.store_id, advertise_.ToString()});
  if (!hb.ok()) return hb.status();
  if (hb->type == RedisValue::kError) {
    self_ = 0;
    if (hb->str.find("NONAMESPACE") != std::string::npos) {
      return Status::Err(EIO, "Redis lost this store's namespace " + identity_.ns + " while joining");
    }
    return Status::Err(EIO, "redis: " + hb->str);
  }
  if (hb->type == RedisValue::kString) {
    uint32_t num = self_;
    self_ = 0;  // not ours: leave its heartbeat alone
    return Status::Err(EEXIST, "node id " + name_ + " (#" + std::to_string(num) +
                                   ") is already live in the cluster for another store (at " + AddressOf(hb->str) +
                                   ")");
  }
  beat_ = std::thread([this] { Beat(); });
  return self_;
}

void NodeRegistry::Beat() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto r = redis_.Command({"EVAL", kBeatScript, "2", kNamespaceKey, "tfs:node:hb:" + std::to_string(self_),
                             identity_.ns, HeartbeatValue(), std::to_string(ttl_.count())});
    if (!r.ok()) {
      TLOG_WARN("heartbeat: %s", r.status().ToString().c_str());
    } else if (r->type == RedisValue::kError) {
      TLOG_WARN("heartbeat: redis: %s", r->str.c_str());
    } else if (r->integer == 0) {
      // The namespace is gone: this node is in no cluster now.
      std::string why = "Redis " + redis_.address().ToString() + " no longer holds namespace " + identity_.ns +
                        " (restarted without persistence, or flushed): heartbeats stopped";
      TLOG_ERROR("cluster: %s", why.c_str());
      if (on_lost_) on_lost_(why);
      return;
    }
    lock.lock();
    stop_cv_.wait_for(lock, ttl_ / 3, [&] { return stop_; });
  }
}

Result<HostPort> NodeRegistry::Address(uint32_t node) {
  // Cached briefly: a fetch of a small file should not cost a Redis round
  // trip; a node that died meanwhile refuses the connection anyway.
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    auto it = addresses_.find(node);
    if (it != addresses_.end() && now - it->second.second < std::chrono::seconds(1)) return it->second.first;
  }
  auto r = redis_.Command({"GET", "tfs:node:hb:" + std::to_string(node)});
  if (!r.ok()) return r.status();
  if (r->nil()) return Status::Err(EHOSTUNREACH, "node " + Name(node) + " is not in the cluster (no heartbeat)");
  auto hp = HostPort::Parse(AddressOf(r->str));
  if (!hp.ok()) return hp;
  std::lock_guard lock(mu_);
  addresses_[node] = {*hp, now};
  return hp;
}

std::string NodeRegistry::Name(uint32_t node) {
  {
    std::lock_guard lock(mu_);
    auto it = names_.find(node);
    if (it != names_.end()) return it->second;
  }
  auto r = redis_.Command({"HGET", "tfs:node:name", std::to_string(node)});
  if (!r.ok() || r->nil()) return "#" + std::to_string(node);
  std::lock_guard lock(mu_);
  names_[node] = r->str;
  return r->str;
}

Result<std::vector<NodeRegistry::Member>> NodeRegistry::Members() {
  auto names = redis_.Command({"HGETALL", "tfs:node:name"});
  if (!names.ok()) return names.status();
  std::vector<Member> out;
  for (size_t i = 0; i + 1 < names->elements.size(); i += 2) {
    Member m;
    m.num = static_cast<uint32_t>(strtoul(names->elements[i].str.c_str(), nullptr, 10));
    m.name = names->elements[i + 1].str;
    // The heartbeat key is set with the full TTL at every beat, so its age
    // is what the TTL lost since.
    auto addr = redis_.Command({"GET", "tfs:node:hb:" + std::to_string(m.num)});
    auto left = redis_.Command({"PTTL", "tfs:node:hb:" + std::to_string(m.num)});
    if (!addr.ok()) return addr.status();
    if (!left.ok()) return left.status();
    if (!addr->nil() && left->integer >= 0) {
      m.address = AddressOf(addr->str);
      m.heartbeat_age_ms = std::max<int64_t>(0, ttl_.count() - left->integer);
    }
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) { return a.num < b.num; });
  return out;
}

}  // namespace tempfs
