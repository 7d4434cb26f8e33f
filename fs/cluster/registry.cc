#include "cluster/registry.h"

#include <algorithm>
#include <cstdlib>

#include "common/log.h"

namespace tempfs {

NodeRegistry::NodeRegistry(RedisClient& redis, std::string name, HostPort advertise, std::chrono::milliseconds ttl)
    : redis_(redis), name_(std::move(name)), advertise_(std::move(advertise)), ttl_(ttl) {}

NodeRegistry::~NodeRegistry() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (beat_.joinable()) beat_.join();
  if (self_ != 0) {
    // Leave at once rather than when the heartbeat expires.
    auto r = redis_.Command({"DEL", "tfs:node:hb:" + std::to_string(self_)});
    (void)r;
  }
}

Result<uint32_t> NodeRegistry::Join() {
  auto get = redis_.Command({"HGET", "tfs:node:num", name_});
  if (!get.ok()) return get.status();
  if (get->nil()) {
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
  // A live node with this name elsewhere would serve other data under the same number.
  auto hb = redis_.Command({"SET", "tfs:node:hb:" + std::to_string(self_), advertise_.ToString(), "PX",
                            std::to_string(ttl_.count()), "NX"});
  if (!hb.ok()) return hb.status();
  if (hb->nil()) {
    auto cur = redis_.Command({"GET", "tfs:node:hb:" + std::to_string(self_)});
    std::string where = cur.ok() && !cur->nil() ? cur->str : "?";
    if (where != advertise_.ToString()) {
      return Status::Err(EEXIST, "node id " + name_ + " is already live in the cluster (at " + where + ")");
    }
  }
  beat_ = std::thread([this] { Beat(); });
  return self_;
}

void NodeRegistry::Beat() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto r = redis_.Command({"SET", "tfs:node:hb:" + std::to_string(self_), advertise_.ToString(), "PX",
                             std::to_string(ttl_.count())});
    if (!r.ok()) TLOG_WARN("heartbeat: %s", r.status().ToString().c_str());
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
  auto hp = HostPort::Parse(r->str);
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
      m.address = addr->str;
      m.heartbeat_age_ms = std::max<int64_t>(0, ttl_.count() - left->integer);
    }
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) { return a.num < b.num; });
  return out;
}

}  // namespace tempfs
