// MetricsServer: a minimal HTTP endpoint for Prometheus to scrape.
//
// Serves `GET /metrics` (and HEAD) with whatever `render` returns, as text
// exposition format 0.0.4, then closes the connection. Anything else gets a
// short error: 404 for another path, 405 for another method, 400 for a
// request it cannot read, 431 when the request head exceeds kMaxHead bytes.
//
// One thread runs a poll() loop over at most kMaxClients connections at a
// time, all non-blocking, so a slow client delays nobody. A client has
// kTimeout to send its request head and, while it is being answered, kTimeout
// without progress before it is dropped. `render` runs on that thread, one
// call at a time.
//
// Thread safety: Start, Stop and the destructor from one thread; port() from
// any once Start has returned.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "cluster/net.h"
#include "common/status.h"

namespace tempfs {

class MetricsServer {
 public:
  static constexpr size_t kMaxHead = 8192;
  static constexpr size_t kMaxClients = 8;
  static constexpr std::chrono::milliseconds kTimeout{5000};

  explicit MetricsServer(std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Listens on `addr` (port 0: any free port) and starts serving.
  Status Start(const HostPort& addr);
  // The bound port; 0 before Start.
  int port() const { return port_; }
  // Closes the listener and every open connection; joins the thread.
  void Stop();

 private:
  void Loop();

  const std::function<std::string()> render_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop() wakes the loop through it
  int port_ = 0;
  std::thread thread_;
};

}  // namespace tempfs
