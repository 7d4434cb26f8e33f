// RedisClient: a small pool of synchronous hiredis connections with
// timeouts, so that a Redis that is down or slow turns into an error within
// a bound instead of a hang. A broken connection is dropped and a new one
// made on the next call: the client recovers when Redis comes back.
//
// Thread safety: all methods may be called concurrently; a Conn is used by
// one thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

struct redisContext;

namespace tempfs {

struct RedisValue {
  enum Type { kNil, kString, kInteger, kArray, kStatus, kError };
  Type type = kNil;
  std::string str;
  long long integer = 0;
  std::vector<RedisValue> elements;
  bool nil() const { return type == kNil; }
};

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  // Parses redis://HOST:PORT[/DB].
  static Result<RedisAddress> Parse(const std::string& uri);
  std::string ToString() const;
};

class RedisClient {
 public:
  class Conn {
   public:
    ~Conn();
    // Sends every command, then reads every reply (one round trip).
    Result<std::vector<RedisValue>> Pipeline(const std::vector<std::vector<std::string>>& cmds);
    Result<RedisValue> Command(const std::vector<std::string>& args);
    bool broken() const { return broken_; }

   private:
    friend class RedisClient;
    explicit Conn(redisContext* c) : ctx_(c) {}
    redisContext* ctx_;
    bool broken_ = false;
  };

  RedisClient(RedisAddress addr, std::chrono::milliseconds timeout);
  ~RedisClient();

  Result<std::unique_ptr<Conn>> Borrow();
  void Return(std::unique_ptr<Conn> conn);
  // One command on a borrowed connection.
  Result<RedisValue> Command(const std::vector<std::string>& args);

  const RedisAddress& address() const { return addr_; }

 private:
  RedisAddress addr_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_;  // guarded by mu_
};

}  // namespace tempfs
