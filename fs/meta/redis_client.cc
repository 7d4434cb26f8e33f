#include "meta/redis_client.h"

#include <hiredis/hiredis.h>

#include <cstdlib>

namespace tempfs {
namespace {

constexpr size_t kMaxIdle = 16;

RedisValue Convert(const redisReply* r) {
  RedisValue v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.type = RedisValue::kString;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = RedisValue::kStatus;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = RedisValue::kError;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = RedisValue::kInteger;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = RedisValue::kArray;
      for (size_t i = 0; i < r->elements; i++) v.elements.push_back(Convert(r->element[i]));
      break;
    default:
      v.type = RedisValue::kNil;
  }
  return v;
}

}  // namespace

Result<RedisAddress> RedisAddress::Parse(const std::string& uri) {
  const std::string scheme = "redis://";
  if (uri.compare(0, scheme.size(), scheme) != 0) return Status::Err(EINVAL, "not a redis:// URI: " + uri);
  std::string rest = uri.substr(scheme.size());
  RedisAddress a;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    std::string db = rest.substr(slash + 1);
    rest.resize(slash);
    if (!db.empty()) {
      char* end = nullptr;
      long v = strtol(db.c_str(), &end, 10);
      if (*end != '\0' || v < 0 || v > 1000) return Status::Err(EINVAL, "bad database number in " + uri);
      a.db = static_cast<int>(v);
    }
  }
  // HOST:PORT, where HOST may be a bracketed IPv6 address.
  size_t colon = rest.rfind(':');
  bool has_port = !rest.empty() && colon != std::string::npos && (rest.front() != '[' || (colon > 0 && rest[colon - 1] == ']'));
  if (has_port) {
    std::string port = rest.substr(colon + 1);
    rest.resize(colon);
    char* end = nullptr;
    long v = strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || v <= 0 || v > 65535) return Status::Err(EINVAL, "bad port in " + uri);
    a.port = static_cast<int>(v);
  }
  if (rest.size() >= 2 && rest.front() == '[' && rest.back() == ']') rest = rest.substr(1, rest.size() - 2);
  if (!rest.empty()) a.host = rest;
  return a;
}

std::string RedisAddress::ToString() const {
  return "redis://" + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

RedisClient::RedisClient(RedisAddress addr, std::chrono::milliseconds timeout)
    : addr_(std::move(addr)), timeout_(timeout) {}

RedisClient::~RedisClient() = default;

RedisClient::Conn::~Conn() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

Result<std::vector<RedisValue>> RedisClient::Conn::Pipeline(const std::vector<std::vector<std::string>>& cmds) {
  for (auto& args : cmds) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
      broken_ = true;
      return Status::Err(EIO, std::string("redis: ") + ctx_->errstr);
    }
  }
  std::vector<RedisValue> out;
  out.reserve(cmds.size());
  for (size_t i = 0; i < cmds.size(); i++) {
    void* reply = nullptr;
    if (redisGetReply(ctx_, &reply) != REDIS_OK || reply == nullptr) {
      broken_ = true;
      return Status::Err(EIO, std::string("redis: ") + (ctx_->errstr[0] ? ctx_->errstr : "no reply"));
    }
    out.push_back(Convert(static_cast<redisReply*>(reply)));
    freeReplyObject(reply);
  }
  return out;
}

Result<RedisValue> RedisClient::Conn::Command(const std::vector<std::string>& args) {
  auto r = Pipeline({args});
  if (!r.ok()) return r.status();
  return std::move((*r)[0]);
}

Result<std::unique_ptr<RedisClient::Conn>> RedisClient::Borrow() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  timeval tv{static_cast<time_t>(timeout_.count() / 1000), static_cast<suseconds_t>((timeout_.count() % 1000) * 1000)};
  redisContext* ctx = redisConnectWithTimeout(addr_.host.c_str(), addr_.port, tv);
  if (ctx == nullptr) return Status::Err(ENOMEM, "redis: cannot allocate a connection");
  if (ctx->err) {
    std::string msg = "redis " + addr_.host + ":" + std::to_string(addr_.port) + ": " + ctx->errstr;
    redisFree(ctx);
    return Status::Err(EIO, msg);
  }
  redisSetTimeout(ctx, tv);
  std::unique_ptr<Conn> c(new Conn(ctx));
  if (addr_.db != 0) {
    auto r = c->Command({"SELECT", std::to_string(addr_.db)});
    if (!r.ok()) return r.status();
    if (r->type == RedisValue::kError) return Status::Err(EINVAL, "redis SELECT: " + r->str);
  }
  return c;
}

void RedisClient::Return(std::unique_ptr<Conn> conn) {
  std::lock_guard lock(mu_);
  if (conn == nullptr) return;
  if (conn->broken()) {
    // Redis went away (or restarted): the idle connections are dead too.
    idle_.clear();
    return;
  }
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
}

Result<RedisValue> RedisClient::Command(const std::vector<std::string>& args) {
  // A connection that broke since its last use is replaced once.
  for (int attempt = 0;; attempt++) {
    auto c = Borrow();
    if (!c.ok()) return c.status();
    auto r = (*c)->Command(args);
    bool broken = (*c)->broken();
    Return(std::move(*c));
    if (r.ok() || !broken || attempt > 0) return r;
  }
}

}  // namespace tempfs
