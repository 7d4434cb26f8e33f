// FaultProxy: a TCP proxy on 127.0.0.1 in front of a server, the seam for
// tests of what a client does when the connection to its peer delays, cuts
// or changes bytes. It forwards both directions as they come and, for the
// connections a Plan names, applies one fault at an exact byte offset of the
// server-to-client stream: flip that byte, stall from there on (the
// connection stays open, nothing more is forwarded), or cut the connection
// there, or trickle from there on (kSlow: 100 bytes every 100 ms, about
// 1 KiB/s, so a peer that never stops yet never finishes). Offsets count from the connection's first byte, so a test can aim at
// a hello, a response head or a byte of file data.
//
// Loopback only. Stop() (also in the destructor) closes every connection and
// joins every thread, stalled ones included. Thread-safe.
#ifndef TEMPFS_TESTS_SUPPORT_FAULT_PROXY_H_
#define TEMPFS_TESTS_SUPPORT_FAULT_PROXY_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tempfs::testing {

class FaultProxy {
 public:
  enum class Fault { kNone, kFlip, kStall, kCut, kSlow };
  struct Plan {
    Fault fault = Fault::kNone;
    uint64_t at = 0;       // offset in a connection's server-to-client stream
    int connections = -1;  // how many of the next connections get it; -1: all
  };

  explicit FaultProxy(int target_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Listens on a free loopback port. False (with a test failure) if not.
  bool Start();
  void Stop();
  int port() const { return port_; }
  // For the connections accepted from now on.
  void Set(const Plan& plan);
  // Ends every connection open now (e.g. so that a client's pooled
  // connections do not escape the next Plan).
  void CutAll();
  int accepted() const { return accepted_; }
  // Faults applied so far (a flip counts once it was forwarded).
  int applied() const { return applied_; }

 private:
  struct Conn;
  void AcceptLoop();
  void Pump(Conn* c, bool to_client);

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::thread accept_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;                     // guarded by mu_
  Plan plan_;                                 // guarded by mu_
  std::vector<std::unique_ptr<Conn>> conns_;  // guarded by mu_
  std::atomic<int> accepted_{0};
  std::atomic<int> applied_{0};
};

}  // namespace tempfs::testing

#endif  // TEMPFS_TESTS_SUPPORT_FAULT_PROXY_H_
