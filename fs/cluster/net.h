// Small socket helpers for the peer protocol: addresses, connecting with a
// bound, and whole reads and writes that give up after the socket's timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>

#include "common/status.h"

namespace tempfs {

struct HostPort {
  std::string host;
  int port = 0;
  // HOST:PORT, [V6]:PORT.
  static Result<HostPort> Parse(const std::string& s);
  std::string ToString() const;
};

Result<int> Listen(const HostPort& addr);
// Connects within `timeout`; reads and writes on the socket then time out
// after `timeout` without progress.
Result<int> Connect(const HostPort& addr, std::chrono::milliseconds timeout);
Status ReadFull(int fd, void* buf, size_t n);
// Reads exactly n bytes by `deadline`, however the bytes trickle in: a peer
// that sends one byte now and then does not extend it (ETIMEDOUT).
Status ReadFullBy(int fd, void* buf, size_t n, std::chrono::steady_clock::time_point deadline);
// Reads exactly n bytes within `limit` from now on a socket whose SO_RCVTIMEO
// is `limit` (a peer connection), with few system calls for large frames:
// bytes that trickle in slower than that are ETIMEDOUT, not a wait without
// end. Leaves SO_RCVTIMEO at `limit`.
Status ReadFullWithin(int fd, void* buf, size_t n, std::chrono::milliseconds limit);
Status WriteFull(int fd, const void* buf, size_t n);
std::string PeerName(int fd);
// SO_RCVTIMEO or SO_SNDTIMEO (`opt`) of a socket.
void SetSocketTimeout(int fd, int opt, std::chrono::milliseconds t);
// A peer connection: reads and writes give up after `timeout` without
// progress; small requests are not delayed (TCP_NODELAY).
void ConfigurePeerSocket(int fd, std::chrono::milliseconds timeout);

// Accept loops: waits for a connection on `listen_fd` until `stop_fd` becomes
// readable. Returns the accepted descriptor (close-on-exec), -1 when the
// caller should simply call again, or kAcceptStopped. Out of descriptors, it
// waits a little before returning -1, so a loop does not spin.
constexpr int kAcceptStopped = -2;
int AcceptUntilStopped(int listen_fd, int stop_fd);

// The connections a server serves, each on its own thread, all ended
// together when the server stops. Thread-safe.
//
// With `max_pending` > 0 a new connection is pending until its thread
// Admit()s it (it authenticated): at most `max_pending` are pending, and a
// new one pushes the oldest pending one out (shuts it down) rather than
// being refused, so connections that never authenticate cannot keep a real
// peer out. Admitted connections have their own budget, `max`. With
// `max_pending` 0 every connection is admitted at once, at most `max`.
class ConnectionSet {
 public:
  explicit ConnectionSet(size_t max, size_t max_pending = 0) : max_(max), max_pending_(max_pending) {}
  // Serves `fd` with `serve` on a new thread, which closes `fd` after it.
  // False when full or closing: `fd` is left to the caller.
  bool Spawn(int fd, std::function<void(int)> serve);
  // Called by the thread serving `fd`: moves it from pending to admitted.
  // False if the admitted budget is full or `fd` was pushed out meanwhile;
  // the thread should then end the connection.
  bool Admit(int fd);
  // Shuts every connection down (their reads and writes fail at once) and
  // waits until their threads are done. Spawn refuses from then on.
  void CloseAll();
  bool closing() const;
  // Pending connections pushed out by newer ones, since the start.
  uint64_t evicted() const;

 private:
  void Forget(int fd);  // with mu_ held

  const size_t max_;
  const size_t max_pending_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::set<int> fds_;        // every connection with a thread; guarded by mu_
  std::deque<int> pending_;  // not admitted yet, oldest first; guarded by mu_
  std::set<int> admitted_;   // guarded by mu_
  uint64_t evicted_ = 0;     // guarded by mu_
  bool closing_ = false;     // guarded by mu_
};

}  // namespace tempfs
